"""The web dashboard of the control center, served by the service itself.

:func:`setup` (called by :func:`ntxcp.service.api.create_app`) adds:

* ``GET /``: the dashboard page (``dashboard_assets/index.html``);
* ``GET /dashboard/<file>``: its scripts and styles, plain files of the package
  directory ``ntxcp/service/dashboard_assets`` (JavaScript modules, no build step).

Everything the page shows comes from the documented HTTP API (the live events and
all statuses from :mod:`.live_api`), and the command forms are built in the browser
from the message schemas in ``/openapi.json``.
"""

from __future__ import annotations

import hashlib
import html
import logging
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from ntxcp.service.access import add_route

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["ASSET_TYPES", "Asset", "load_assets", "setup"]

_log = logging.getLogger("ntxcp.service.dashboard")

ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""Content types of the files the dashboard serves, by suffix (others are not served)."""

# Nothing but the service itself: no inline script, no other host.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the dashboard, held in memory.

    Attributes:
        body: the file's bytes.
        content_type: its media type.
        etag: a strong entity tag of the content.
    """

    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Read every servable file of ``dashboard_assets`` (small: scripts and styles).

    Returns:
        The files by name.
    """
    folder = resources.files("ntxcp.service").joinpath("dashboard_assets")
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in ASSET_TYPES or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[entry.name] = Asset(body, ASSET_TYPES[suffix], etag)
    return assets


class _Dashboard:
    """The dashboard's request handlers, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.assets = load_assets()
        index = self.assets.get("index.html")
        if index is None:
            raise RuntimeError("the dashboard's index.html is missing from the package")
        page = index.body.decode("utf-8")
        page = page.replace("{{version}}", html.escape(service.version))
        page = page.replace("{{ws_url}}", html.escape(service.ws_url))
        self.page = page.encode("utf-8")

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.page, headers={**_HEADERS, "Content-Type": ASSET_TYPES[".html"]}
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        asset = self.assets.get(name)
        if asset is None or name == "index.html":
            raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
        headers = {**_HEADERS, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body, headers={**headers, "Content-Type": asset.content_type}
        )


def setup(app: web.Application, service: Service) -> None:
    """Add the dashboard's routes (the page and its files).

    Args:
        app: the API's application (routes may still be added).
        service: the running service.
    """
    dashboard = _Dashboard(service)
    add_route(app, "GET", "/", dashboard.index, "dashboard")
    add_route(app, "GET", "/dashboard/{name}", dashboard.asset, "dashboardAsset")
