"""The HTTP API of the control center service (aiohttp, JSON).

Routes (documented in full by ``GET /openapi.json``, see :mod:`.openapi`):

* ``/api/gateways`` (list, register), ``/api/gateways/{id}`` (read, delete);
* the data of a gateway: ``status``, ``meter-values``, ``messages`` (frame log),
  ``firmware-status``, ``diagnostics-status``, ``data-transfers``;
* ``POST /api/gateways/{id}/calls/{Action}``: send a C→G request (see :mod:`.commands`);
* ``/api/commands``: the requests sent and their outcomes;
* ``/healthz``, ``/metrics`` (Prometheus), ``/openapi.json``, ``/docs``, ``/``.

With a token configured, every ``/api/*`` route requires ``Authorization: Bearer
<token>``. Every client mistake is answered with a 4xx status and a JSON body
``{"error": "..."}``; an unexpected failure is logged and answered 500, and never
ends the process.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from ntxcp.service import dashboard, queries
from ntxcp.service.docs_page import DOCS_HTML
from ntxcp.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ntxcp.service.openapi import build_openapi
from ntxcp.service.passwords import hash_password
from ntxcp.transport import valid_gateway_id
from ntxcp.v10 import ACTIONS
from ntxcp.v10.codec import DECODE_ERRORS
from ntxcp.v10.types import Measurand, encode_datetime

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["MAX_LIMIT", "ApiError", "create_app", "json_response"]

_log = logging.getLogger("ntxcp.service.api")

MAX_LIMIT = 10_000
"""Largest ``limit`` any list query accepts."""
_MEASURANDS = {m.value for m in Measurand}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client mistake, answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, **extra}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response (encoded with msgspec)."""
    return web.Response(
        body=msgspec.json.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


# --- query parameters ---------------------------------------------------------------


def _int_param(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name!r} must be {low}..{high}, not {value}")
    return value


def _limit(request: web.Request, default: int) -> int:
    value = _int_param(request, "limit", default, 1, MAX_LIMIT)
    assert value is not None
    return value


def _time_param(request: web.Request, name: str) -> str | None:
    """An RFC 3339 date-time parameter, as stored text (spec §3: UTC, ms, ``Z``)."""
    text = request.query.get(name)
    if text is None or text == "":
        return None
    # An unencoded "+" of an offset arrives as a space in a query string.
    candidate = text.strip().replace(" ", "+") if "T" in text or "t" in text else text.strip()
    try:
        value = datetime.fromisoformat(candidate.replace("z", "Z"))
    except ValueError:
        raise ApiError(
            400,
            f"query parameter {name!r} must be an RFC 3339 date-time "
            f"(e.g. 2026-11-23T18:36:34Z), not {text!r}",
        ) from None
    if value.tzinfo is None:
        raise ApiError(400, f"query parameter {name!r} needs a UTC offset (e.g. 'Z'): {text!r}")
    return encode_datetime(value)


def _choice(request: web.Request, name: str, choices: set[str] | dict[str, Any]) -> str | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if text not in choices:
        listed = ", ".join(sorted(choices))
        raise ApiError(400, f"query parameter {name!r} must be one of {listed}; not {text!r}")
    return text


# --- middlewares ---------------------------------------------------------------------


def _error_middleware(service: Service) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = json_response(exc.body, exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = json_response(
                {"error": exc.reason if exc.text is None else _http_text(exc)},
                exc.status,
                {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)},
            )
        except Exception:  # a bad request never ends the process
            _log.exception("%s %s failed", request.method, request.path)
            response = json_response({"error": "internal error"}, 500)
        service.metrics.api_requests.inc((request.method, str(response.status)))
        return response

    return middleware


def _http_text(exc: web.HTTPException) -> str:
    text = (exc.text or "").strip()
    if text.startswith(f"{exc.status}:"):
        text = text.split(":", 1)[1].strip()
    return text or exc.reason


def _auth_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/api" or request.path.startswith("/api/"):
            given = request.headers.get("Authorization", "").strip().encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return json_response(
                    {"error": "missing or invalid bearer token (Authorization: Bearer <token>)"},
                    401,
                    {"WWW-Authenticate": 'Bearer realm="ntxcp"'},
                )
        return await handler(request)

    return middleware


# --- routes --------------------------------------------------------------------------


class _Routes:
    """The request handlers, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.storage = service.storage
        self.started = time.monotonic()
        self._openapi: bytes | None = None

    def _known(self, request: web.Request) -> str:
        gateway_id = request.match_info["id"]
        if gateway_id not in self.storage.gateways:
            raise ApiError(404, f"unknown gateway {gateway_id!r}")
        return gateway_id

    def _live(self, gateway: dict[str, Any]) -> dict[str, Any]:
        """Overlay the live connection state (the database may lag a moment)."""
        connected = self.service.control_center.is_connected(gateway["id"])
        gateway["connected"] = connected
        if not connected:
            gateway["connectedSince"] = None
        return gateway

    async def healthz(self, request: web.Request) -> web.Response:
        storage = self.storage
        return json_response(
            {
                "status": "degraded" if storage.alarms else "ok",
                "version": self.service.version,
                "connectedGateways": len(self.service.control_center.gateways()),
                "knownGateways": len(self.storage.gateways),
                "durability": self.storage.durability.value,
                "uptimeSeconds": round(time.monotonic() - self.started, 3),
                "alarms": list(storage.alarms),
                "databaseBytes": storage.database_bytes,
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(text=self.service.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        if self._openapi is None:  # generated once, on first use
            self._openapi = msgspec.json.encode(build_openapi(self.service.version))
        return web.Response(body=self._openapi, content_type="application/json")

    async def docs(self, request: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html")

    async def list_gateways(self, request: web.Request) -> web.Response:
        items = await self.storage.read(queries.gateways)
        return json_response({"items": [self._live(g) for g in items], "count": len(items)})

    async def get_gateway(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        item = await self.storage.read(queries.gateway, gateway_id)
        if item is None:
            raise ApiError(404, f"unknown gateway {gateway_id!r}")
        return json_response(self._live(item))

    async def register_gateway(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw or b"null")
        except DECODE_ERRORS as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(422, 'body must be a JSON object {"id": ..., "password": ...}')
        unknown = sorted(set(body) - {"id", "password"})
        if unknown:
            raise ApiError(422, f"unknown field(s): {', '.join(unknown)}", path=unknown[0])
        gateway_id = body.get("id")
        if not isinstance(gateway_id, str) or not valid_gateway_id(gateway_id):
            raise ApiError(
                422,
                "id must be 1..48 printable ASCII characters without '/' (spec §1)",
                path="id",
            )
        password = body.get("password")
        if password is not None and (not isinstance(password, str) or not password):
            raise ApiError(422, "password must be a non-empty string", path="password")
        if len((password or "").encode()) > 1024:
            raise ApiError(422, "password must be at most 1024 bytes", path="password")
        record = self.storage.gateways.get(gateway_id)
        if record is not None and record.registered:
            raise ApiError(409, f"gateway {gateway_id!r} is already registered")
        # The KDF takes tens of milliseconds: keep it off the event loop.
        password_hash = (
            None if password is None else await asyncio.to_thread(hash_password, password)
        )
        if not await self.storage.register_gateway(gateway_id, password_hash):
            raise ApiError(409, f"gateway {gateway_id!r} is already registered")
        item = await self.storage.read(queries.gateway, gateway_id)
        assert item is not None
        self._live(item)
        self.service.events.publish(
            "gateway", gateway_id, {"change": "registered", "gateway": item}
        )
        location = f"/api/gateways/{quote(gateway_id, safe='')}"
        return json_response(item, 201, {"Location": location})

    async def delete_gateway(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        await self.storage.delete_gateway(gateway_id)
        self.service.events.publish("gateway", gateway_id, {"change": "removed"})
        return web.Response(status=204)

    async def status(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        history = _int_param(request, "history", 100, 0, MAX_LIMIT)
        result = await self.storage.read(queries.status, gateway_id, history)
        return json_response(result)

    async def meter_values(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        since = _time_param(request, "since")
        until = _time_param(request, "until")
        if since is not None and until is not None and since > until:
            raise ApiError(400, "'since' is after 'until'")
        query = queries.MeterFilter(
            service=_int_param(request, "service", None, 0, 2**31 - 1),
            measurand=_choice(request, "measurand", _MEASURANDS),
            since=since,
            until=until,
            limit=_limit(request, 1000),
            ascending=_choice(request, "order", {"asc", "desc"}) == "asc",
        )
        items = await self.storage.read(queries.meter_values, gateway_id, query)
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def messages(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        query = queries.FrameFilter(
            action=_choice(request, "action", dict(ACTIONS)),
            direction=_choice(request, "direction", {"in", "out"}),
            since=_time_param(request, "since"),
            limit=_limit(request, 100),
        )
        items = await self.storage.read(queries.frames, gateway_id, query)
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def firmware_status(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        result = await self.storage.read(
            queries.progress_status, "firmware_status", gateway_id, _limit(request, 100)
        )
        return json_response(result)

    async def diagnostics_status(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        result = await self.storage.read(
            queries.progress_status, "diagnostics_status", gateway_id, _limit(request, 100)
        )
        return json_response(result)

    async def data_transfers(self, request: web.Request) -> web.Response:
        gateway_id = self._known(request)
        items = await self.storage.read(queries.data_transfers, gateway_id, _limit(request, 100))
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def commands(self, request: web.Request) -> web.Response:
        gateway_id = request.query.get("gateway") or None
        action = _choice(request, "action", dict(ACTIONS))
        items = await self.storage.read(queries.commands, gateway_id, action, _limit(request, 100))
        return json_response({"count": len(items), "items": items})

    async def call(self, request: web.Request) -> web.Response:
        gateway_id = request.match_info["id"]
        action = request.match_info["action"]
        timeout = request.query.get("timeout")
        seconds: float | None = None
        if timeout:
            try:
                seconds = float(timeout)
            except ValueError:
                raise ApiError(
                    400, f"query parameter 'timeout' must be a number: {timeout!r}"
                ) from None
            if not 0 < seconds <= 600:
                raise ApiError(400, "query parameter 'timeout' must be > 0 and <= 600 seconds")
        body = await request.read()
        result = await self.service.commands.call(gateway_id, action, body, seconds)
        return json_response(result.body, result.status, result.headers)


def create_app(service: Service) -> web.Application:
    """Build the aiohttp application of the API for a (started) service.

    Args:
        service: the service whose storage, control center and metrics to serve.

    Returns:
        The application; the placeholder page at ``/`` comes from
        :mod:`ntxcp.service.dashboard`, which a dashboard may replace.
    """
    middlewares: list[Any] = [_error_middleware(service)]
    if service.config.api_token is not None:
        middlewares.append(_auth_middleware(service.config.api_token))
    app = web.Application(middlewares=middlewares, client_max_size=1024 * 1024)
    routes = _Routes(service)
    gateway = "/api/gateways/{id}"
    app.add_routes(
        [
            web.get("/healthz", routes.healthz),
            web.get("/metrics", routes.metrics),
            web.get("/openapi.json", routes.openapi),
            web.get("/docs", routes.docs),
            web.get("/api/gateways", routes.list_gateways),
            web.post("/api/gateways", routes.register_gateway),
            web.get(gateway, routes.get_gateway),
            web.delete(gateway, routes.delete_gateway),
            web.get(f"{gateway}/status", routes.status),
            web.get(f"{gateway}/meter-values", routes.meter_values),
            web.get(f"{gateway}/messages", routes.messages),
            web.get(f"{gateway}/firmware-status", routes.firmware_status),
            web.get(f"{gateway}/diagnostics-status", routes.diagnostics_status),
            web.get(f"{gateway}/data-transfers", routes.data_transfers),
            web.post(f"{gateway}/calls/{{action}}", routes.call),
            web.get("/api/commands", routes.commands),
        ]
    )
    dashboard.setup(app, service)
    return app
