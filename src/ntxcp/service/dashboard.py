"""The page at ``/`` of the HTTP API: a placeholder until the web dashboard lands.

A dashboard replaces this module, keeping its one entry point: :func:`setup` is called
by :func:`ntxcp.service.api.create_app` with the application and the running service,
and adds whatever routes the dashboard serves (at least ``GET /``). It can read the
same data as the API through ``service.storage`` (see :mod:`ntxcp.service.queries`)
and send commands through ``service.commands``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["setup"]

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ntxcp control center</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 680px; margin: 48px auto;
       color: #1d2330; }}
code {{ background: #f0f2f5; padding: 1px 5px; border-radius: 3px; }}
li {{ margin: 4px 0; }}
</style></head>
<body>
<h1>ntxcp control center</h1>
<p>Version {version}. Gateways connect to <code>{ws_url}/&lt;gatewayId&gt;</code>.</p>
<ul>
<li><a href="/docs">API documentation and console</a> (<a href="/openapi.json">OpenAPI</a>)</li>
<li><a href="/healthz">Health check</a></li>
<li><a href="/metrics">Prometheus metrics</a></li>
</ul>
</body>
</html>
"""


def setup(app: web.Application, service: Service) -> None:
    """Add the routes of the page at ``/``.

    Args:
        app: the API's application (routes may still be added).
        service: the running service.
    """

    async def index(request: web.Request) -> web.Response:
        page = _PAGE.format(
            version=html.escape(service.version), ws_url=html.escape(service.ws_url)
        )
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", index)
