"""The HTTP API of the control center service (aiohttp, JSON).

Routes (documented in full by ``GET /openapi.json``, see :mod:`.openapi`):

* ``/api/gateways`` (list, register), ``/api/gateways/{id}`` (read, delete),
  ``/api/gateways/{id}/password`` (set, clear or generate the Basic-auth secret),
  ``/api/gateway-imports`` (register many at once, all or none);
* ``/api/fleet``: the overview's page of gateways, filtered and sorted, with the
  fleet's counts (from memory, see :mod:`.fleet`);
* the data of a gateway: ``status``, ``meter-values``, ``meter-series`` (thinned to
  time buckets), ``messages`` (frame log),
  ``firmware-status``, ``diagnostics-status``, ``data-transfers``;
* ``POST /api/gateways/{id}/calls/{Action}``: send a C→G request (see :mod:`.commands`);
* ``/api/commands``: the requests sent and their outcomes;
* ``/healthz``, ``/metrics`` (Prometheus), ``/openapi.json``, ``/docs``, ``/``.

The request side of the contract (query parameters and their bounds, the bodies the
API defines itself) is declared once in :mod:`.api_contract`, which both the handlers
and the document read. With a token configured, every ``/api/*`` route requires
``Authorization: Bearer <token>`` (the scheme name in any case, RFC 7235). Every client
mistake is answered with a 4xx status and a JSON body ``{"error": "..."}``, from the
one exception → status table of :mod:`.http_errors`; an unexpected failure is logged
and answered 500, and never ends the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from ntxcp.service import dashboard, live_api, queries, tokens_api
from ntxcp.service.access import access_middleware, add_route, current_principal
from ntxcp.service.api_contract import (
    MAX_BODY,
    MAX_IMPORT_BODY,
    MAX_IMPORT_GATEWAYS,
    MAX_LIMIT,
    GatewaySecret,
    ImportedGateway,
    NewGateway,
    ParameterError,
    parse_query,
)
from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.docs_page import DOCS_HTML
from ntxcp.service.fleet import FleetQuery
from ntxcp.service.http_errors import (
    BodyError,
    BodyTimeoutError,
    UnsupportedMediaTypeError,
    json_response,
    status_for,
)
from ntxcp.service.machine_secrets import generate_secret, hash_machine_secret
from ntxcp.service.meter_series import SeriesFilter
from ntxcp.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ntxcp.service.metrics import KNOWN_HTTP_METHODS, known_label
from ntxcp.service.openapi import build_openapi
from ntxcp.service.passwords import hash_password
from ntxcp.service.request_body import BODY_TIMEOUT, ApiError, decode_body, in_time, json_body
from ntxcp.transport import valid_gateway_id
from ntxcp.v10.codec import DECODE_ERRORS, error_from_validation

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["MAX_LIMIT", "ApiError", "create_app", "json_body", "json_response", "query"]

_log = logging.getLogger("ntxcp.service.api")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The rule of each field of NewGateway, said plainly (msgspec's message names a regex).
_FIELD_RULES = {
    "id": "id must be a string of 1..48 printable ASCII characters without '/' (spec §1)",
    "password": "password must be a string of 1..256 characters, or null for none",
    "generatePassword": "generatePassword must be true or false",
}
_IMPORT_RULES = {
    "password": "an imported password is a machine secret of 22..256 characters (at least "
    "128 bits, stored with the keyed fast hash), or null; register a password chosen by a "
    "person with POST /api/gateways",
}


# --- request parts -------------------------------------------------------------------


def query(request: web.Request, operation: str) -> dict[str, Any]:
    """The request's query parameters, checked against the operation's declaration.

    Raises:
        ParameterError: unknown, repeated, empty or invalid parameter (answered 400).
    """
    return parse_query(request.query, operation)


# --- middlewares ---------------------------------------------------------------------


def _error_middleware(service: Service) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            unreachable = service.storage.unreachable
            if unreachable is not None and request.path.startswith("/api/"):
                raise DatabaseUnavailableError(unreachable)
            response = await handler(request)
        except DatabaseUnavailableError as exc:
            response = json_response({"error": f"database unreachable: {exc}"}, 503)
        except ApiError as exc:
            response = json_response(exc.body, exc.status)
        except ParameterError as exc:
            response = json_response(
                {"error": exc.message, "parameter": exc.parameter}, status_for(exc)
            )
        except (BodyError, UnsupportedMediaTypeError) as exc:
            response = json_response({"error": str(exc)}, status_for(exc))
        except BodyTimeoutError as exc:  # the rest of the body may still come: end it
            response = json_response({"error": str(exc)}, status_for(exc))
            response.force_close()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = json_response(
                {"error": exc.reason if exc.text is None else _http_text(exc)},
                exc.status,
                {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)},
            )
        except Exception as exc:  # a bad request never ends the process
            _log.exception("%s %s failed", request.method, request.path)
            response = json_response({"error": "internal error"}, status_for(exc))
        method = known_label(request.method, KNOWN_HTTP_METHODS)
        service.metrics.api_requests.inc((method, str(response.status)))
        return response

    return middleware


def _http_text(exc: web.HTTPException) -> str:
    text = (exc.text or "").strip()
    if text.startswith(f"{exc.status}:"):
        text = text.split(":", 1)[1].strip()
    return text or exc.reason


# --- routes --------------------------------------------------------------------------


class _Routes:
    """The request handlers, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.storage = service.storage
        self.started = time.monotonic()
        self._openapi: dict[bool, bytes] = {}

    async def _known(self, request: web.Request) -> str:
        gateway_id = request.match_info["id"]
        cluster = self.service.cluster
        known = await cluster.knows(gateway_id) if cluster else gateway_id in self.storage.gateways
        if not known:
            raise ApiError(404, f"unknown gateway {gateway_id!r}")
        return gateway_id

    def _live(self, gateway: dict[str, Any]) -> dict[str, Any]:
        """Overlay the live connection state (the database may lag a moment).

        In a cluster a gateway held by another node is connected as its node recorded.
        """
        gateway_id = gateway["id"]
        connected = self.service.control_center.is_connected(gateway_id) or (
            self.service.cluster is not None and bool(gateway["connected"])
        )
        gateway["connected"] = connected
        if connected:
            unresponsive = gateway_id in self.service.handler.unresponsive
            gateway["state"] = "unresponsive" if unresponsive else "connected"
        else:
            gateway["connectedSince"] = None
            gateway["state"] = "disconnected" if gateway["firstSeen"] else "never"
        return gateway

    async def _live_all(self, gateways: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`_live` for each gateway; in a cluster also ``node``, the node holding it."""
        for gateway in gateways:
            self._live(gateway)
        cluster = self.service.cluster
        if cluster is not None:  # a gateway recorded on a node that is gone is not connected
            connected = [g["id"] for g in gateways if g["connected"]]
            nodes = await cluster.owners(connected) if connected else {}
            for gateway in gateways:
                gateway["node"] = nodes.get(gateway["id"])
                if gateway["node"] is None:
                    gateway["connected"] = False
                    gateway["connectedSince"] = None
                    gateway["state"] = "disconnected" if gateway["firstSeen"] else "never"
        return gateways

    async def healthz(self, request: web.Request) -> web.Response:
        query(request, "health")
        storage = self.storage
        unreachable = storage.unreachable
        cluster = self.service.cluster
        degraded = storage.alarms or (cluster is not None and not cluster.bus.connected)
        state = "degraded" if degraded else "ok"
        if unreachable is not None:
            state = "unavailable"
        extra = {} if cluster is None else {"cluster": cluster.health()}
        return json_response(
            {
                "status": state,
                "database": {
                    "backend": storage.backend,
                    "reachable": unreachable is None,
                    "error": unreachable,
                },
                "version": self.service.version,
                "connectedGateways": len(self.service.control_center.gateways()),
                "knownGateways": len(self.storage.gateways),
                "durability": self.storage.durability.value,
                "uptimeSeconds": round(time.monotonic() - self.started, 3),
                "alarms": list(storage.alarms),
                "databaseBytes": storage.database_bytes,
                **extra,
            },
            503 if unreachable is not None else 200,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        query(request, "metrics")
        response = web.Response(text=self.service.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        query(request, "openapi")
        # Generated on first use, again when the first token closes the open API.
        secured = not self.service.tokens.open
        document = self._openapi.get(secured)
        if document is None:
            built = build_openapi(self.service.version, secured=secured)
            document = self._openapi[secured] = msgspec.json.encode(built)
        return web.Response(body=document, content_type="application/json")

    async def docs(self, request: web.Request) -> web.Response:
        query(request, "docs")
        return web.Response(text=DOCS_HTML, content_type="text/html")

    async def list_gateways(self, request: web.Request) -> web.Response:
        params = query(request, "listGateways")
        limit = params["limit"]
        items = await self.storage.read(queries.gateways, params["after"], limit + 1)
        return json_response(_page(await self._live_all(items), limit, "id"))

    async def fleet(self, request: web.Request) -> web.Response:
        params = query(request, "getFleet")
        attention = params["attention"]
        fleet_query = FleetQuery(
            text=params["q"] or "",
            state=params["state"],
            attention=None if attention is None else attention == "true",
            sort=params["sort"] or "id",
            descending=params["order"] == "desc",
            offset=params["offset"],
            limit=params["limit"],
        )
        return json_response(self.service.fleet.query(fleet_query).json(fleet_query))

    async def get_gateway(self, request: web.Request) -> web.Response:
        query(request, "getGateway")
        gateway_id = await self._known(request)
        item = await self.storage.read(queries.gateway, gateway_id)
        if item is None:
            raise ApiError(404, f"unknown gateway {gateway_id!r}")
        return json_response((await self._live_all([item]))[0])

    async def register_gateway(self, request: web.Request) -> web.Response:
        query(request, "registerGateway")
        body = decode_body(await json_body(request), NewGateway, _FIELD_RULES)
        gateway_id = body.id
        if not valid_gateway_id(gateway_id):  # what the pattern's "$" lets through ("a\n")
            raise ApiError(422, _FIELD_RULES["id"], code="PropertyConstraintViolation", path="id")
        record = self.storage.gateways.get(gateway_id)
        if record is not None and record.registered:
            raise ApiError(409, f"gateway {gateway_id!r} is already registered")
        secret, password_hash = await self._secret(body.password, body.generate_password)
        if not await self.storage.register_gateway(gateway_id, password_hash):
            raise ApiError(409, f"gateway {gateway_id!r} is already registered")
        self.service.gateways_changed([gateway_id])
        item = await self.storage.read(queries.gateway, gateway_id)
        assert item is not None
        await self._live_all([item])
        self.service.events.publish(
            "gateway", gateway_id, {"change": "registered", "gateway": item}
        )
        location = f"/api/gateways/{quote(gateway_id, safe='')}"
        answer = item if secret is None else {**item, "password": secret}
        return json_response(answer, 201, {"Location": location})

    async def import_gateways(self, request: web.Request) -> web.Response:
        query(request, "importGateways")
        entries = _import_entries(await _limited_json_body(request, MAX_IMPORT_BODY))
        key = self.service.server_key
        rows: list[tuple[str, str | None]] = []
        items: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        statuses: set[int] = set()
        for index, entry in enumerate(entries):
            try:
                item = _import_entry(entry, seen)
            except ApiError as exc:
                errors.append({"index": index, **exc.body})
                statuses.add(exc.status)
                continue
            secret = generate_secret() if item.generate_password else item.password
            rows.append((item.id, None if secret is None else hash_machine_secret(key, secret)))
            answer: dict[str, Any] = {"id": item.id, "hasPassword": secret is not None}
            if item.generate_password:
                answer["password"] = secret
            items.append(answer)
        if not errors:
            taken = set(await self.storage.register_gateways(rows))
            errors = [
                {"index": index, "error": f"gateway {gateway_id!r} is already registered"}
                for index, (gateway_id, _) in enumerate(rows)
                if gateway_id in taken
            ]
            statuses.add(409)
        if not errors:
            self.service.gateways_changed([gateway_id for gateway_id, _ in rows])
        if errors:
            # Conflicts alone are 409; any invalid entry makes it 422.
            raise ApiError(
                max(statuses),
                f"{len(errors)} of {len(entries)} entries are wrong; no gateway was registered",
                errors=errors,
            )
        # One event for the whole import: one per gateway would overflow every
        # subscriber's queue (DEFAULT_QUEUE_SIZE) with a large import and drop it.
        imported = [gateway_id for gateway_id, _ in rows]
        self.service.events.publish(
            "gateway",
            None,
            lambda: {"change": "imported", "count": len(imported), "gatewayIds": imported},
        )
        return json_response({"count": len(items), "items": items}, 201)

    async def set_password(self, request: web.Request) -> web.Response:
        query(request, "setGatewayPassword")
        gateway_id = await self._known(request)
        body = decode_body(await json_body(request), GatewaySecret, _FIELD_RULES)
        secret, password_hash = await self._secret(body.password, body.generate_password)
        await self.service.set_gateway_password(gateway_id, password_hash)  # also disconnects
        answer: dict[str, Any] = {"gatewayId": gateway_id, "hasPassword": password_hash is not None}
        if secret is not None:
            answer["password"] = secret
        return json_response(answer)

    async def _secret(self, password: str | None, generate: bool) -> tuple[str | None, str | None]:
        """The generated secret (if asked for) and the hash to store (``None``: none).

        Raises:
            ApiError: both a password and ``generatePassword`` were given (422).
        """
        if generate:
            if password is not None:
                raise ApiError(
                    422,
                    "give either password or generatePassword, not both",
                    code="OccurrenceConstraintViolation",
                    path="generatePassword",
                )
            return self.service.new_generated_secret()
        if password is None:
            return None, None
        # A person's password: the KDF takes tens of milliseconds, keep it off the loop.
        return None, await asyncio.to_thread(hash_password, password)

    async def refused_gateways(self, request: web.Request) -> web.Response:
        query(request, "listRefusedGateways")
        refused = self.service.handler.refused
        items = refused.recent()
        return json_response({"total": refused.total, "count": len(items), "items": items})

    async def delete_gateway(self, request: web.Request) -> web.Response:
        query(request, "deleteGateway")
        gateway_id = await self._known(request)
        await self.service.remove_gateway(gateway_id)  # also closes its connection
        return web.Response(status=204)

    async def status(self, request: web.Request) -> web.Response:
        params = query(request, "getStatus")
        gateway_id = await self._known(request)
        result = await self.storage.read(queries.status, gateway_id, params["history"])
        return json_response(result)

    async def meter_values(self, request: web.Request) -> web.Response:
        params = query(request, "getMeterValues")
        gateway_id = await self._known(request)
        meter_filter = queries.MeterFilter(  # since > until: an empty range, no error
            service=params["service"],
            measurand=params["measurand"],
            since=params["since"],
            until=params["until"],
            limit=params["limit"],
            ascending=params["order"] == "asc",
        )
        items = await self.storage.read(queries.meter_values, gateway_id, meter_filter)
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def meter_series(self, request: web.Request) -> web.Response:
        params = query(request, "getMeterSeries")
        gateway_id = await self._known(request)
        series_filter = SeriesFilter(  # since > until: an empty range, no error
            buckets=params["buckets"],
            service=params["service"],
            measurand=params["measurand"],
            since=params["since"],
            until=params["until"],
        )
        result = await self.storage.read_long(queries.meter_series, gateway_id, series_filter)
        return json_response(result)

    async def messages(self, request: web.Request) -> web.Response:
        params = query(request, "getMessages")
        gateway_id = await self._known(request)
        frame_filter = queries.FrameFilter(
            action=params["action"],
            direction=params["direction"],
            since=params["since"],
            limit=params["limit"],
        )
        items = await self.storage.read(queries.frames, gateway_id, frame_filter)
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def firmware_status(self, request: web.Request) -> web.Response:
        params = query(request, "getFirmwareStatus")
        gateway_id = await self._known(request)
        result = await self.storage.read(
            queries.progress_status, "firmware_status", gateway_id, params["limit"]
        )
        return json_response(result)

    async def diagnostics_status(self, request: web.Request) -> web.Response:
        params = query(request, "getDiagnosticsStatus")
        gateway_id = await self._known(request)
        result = await self.storage.read(
            queries.progress_status, "diagnostics_status", gateway_id, params["limit"]
        )
        return json_response(result)

    async def data_transfers(self, request: web.Request) -> web.Response:
        params = query(request, "getDataTransfers")
        gateway_id = await self._known(request)
        items = await self.storage.read(queries.data_transfers, gateway_id, params["limit"])
        return json_response({"gatewayId": gateway_id, "count": len(items), "items": items})

    async def commands(self, request: web.Request) -> web.Response:
        params = query(request, "listCommands")
        items = await self.storage.read(
            queries.commands, params["gateway"], params["action"], params["limit"]
        )
        return json_response({"count": len(items), "items": items})

    async def call(self, request: web.Request) -> web.Response:
        params = query(request, "call")
        gateway_id = request.match_info["id"]
        action = request.match_info["action"]
        body = await json_body(request)
        result = await self.service.commands.call(
            gateway_id, action, body, params["timeout"], token_name=current_principal().name
        )
        return json_response(result.body, result.status, result.headers)


async def _limited_json_body(request: web.Request, limit: int) -> bytes:
    """A JSON body of at most ``limit`` bytes (a route allowed more than the default).

    Raises:
        ApiError: the body is larger (413).
        UnsupportedMediaTypeError: the body declares another media type (415).
        BodyTimeoutError: the body did not arrive within the body timeout (408).
    """
    declared = request.headers.get("Content-Type")
    if declared is not None and request.content_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"the body must be application/json, not {request.content_type!r}"
        )
    too_large = ApiError(413, f"the body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large

    async def read() -> bytes:
        body = bytearray()
        while chunk := await request.content.read(65536):
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    return await in_time(request, read())


def _import_entries(raw: bytes) -> list[Any]:
    """The ``gateways`` array of an import body, each entry still to be checked.

    Raises:
        BodyError: the body is not JSON (400).
        ApiError: it is not ``{"gateways": [...]}`` with 1..20,000 entries (422).
    """
    try:
        body = msgspec.json.decode(raw or b"null")
    except DECODE_ERRORS as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    entries = body.get("gateways") if isinstance(body, dict) else None
    if not isinstance(entries, list) or len(body) != 1:
        raise ApiError(
            422,
            'the body must be {"gateways": [...]}, nothing else',
            code="FormationViolation",
            path="gateways",
        )
    if not 1 <= len(entries) <= MAX_IMPORT_GATEWAYS:
        raise ApiError(
            422,
            f"gateways must hold 1..{MAX_IMPORT_GATEWAYS} entries, not {len(entries)}",
            code="OccurrenceConstraintViolation",
            path="gateways",
        )
    return entries


def _import_entry(entry: Any, seen: set[str]) -> ImportedGateway:
    """One entry of an import, checked as a registration; ``seen`` collects the ids.

    Raises:
        ApiError: what is wrong with the entry (422), or its id repeats one before (409).
    """
    try:
        item = msgspec.convert(entry, ImportedGateway)
    except msgspec.ValidationError as exc:
        error = error_from_validation(exc)
        message = _IMPORT_RULES.get(error.path) or _FIELD_RULES.get(error.path, error.description)
        raise ApiError(422, message, code=error.code.value, path=error.path) from None
    if not valid_gateway_id(item.id):
        raise ApiError(422, _FIELD_RULES["id"], code="PropertyConstraintViolation", path="id")
    if item.generate_password and item.password is not None:
        raise ApiError(422, "give either password or generatePassword, not both", path="password")
    if item.id in seen:
        raise ApiError(409, f"gateway {item.id!r} appears more than once", path="id")
    seen.add(item.id)
    return item


def _page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    """One page of a list read with ``limit + 1`` rows: ``next`` is the cursor or null."""
    more = len(items) > limit
    items = items[:limit]
    return {
        "count": len(items),
        "items": items,
        "next": items[-1][key] if more else None,
    }


def create_app(service: Service) -> web.Application:
    """Build the aiohttp application of the API for a (started) service.

    Args:
        service: the service whose storage, control center and metrics to serve.

    Returns:
        The application; the placeholder page at ``/`` comes from
        :mod:`ntxcp.service.dashboard`, which a dashboard may replace.
    """
    middlewares = [_error_middleware(service), access_middleware(service)]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[BODY_TIMEOUT] = service.api_body_timeout
    routes = _Routes(service)
    gateway = "/api/gateways/{id}"
    for method, path, handler, operation in (
        ("GET", "/healthz", routes.healthz, "health"),
        ("GET", "/metrics", routes.metrics, "metrics"),
        ("GET", "/openapi.json", routes.openapi, "openapi"),
        ("GET", "/docs", routes.docs, "docs"),
        ("GET", "/api/gateways", routes.list_gateways, "listGateways"),
        ("GET", "/api/fleet", routes.fleet, "getFleet"),
        ("GET", "/api/refused-gateways", routes.refused_gateways, "listRefusedGateways"),
        ("POST", "/api/gateways", routes.register_gateway, "registerGateway"),
        ("POST", "/api/gateway-imports", routes.import_gateways, "importGateways"),
        ("GET", gateway, routes.get_gateway, "getGateway"),
        ("DELETE", gateway, routes.delete_gateway, "deleteGateway"),
        ("PUT", f"{gateway}/password", routes.set_password, "setGatewayPassword"),
        ("GET", f"{gateway}/status", routes.status, "getStatus"),
        ("GET", f"{gateway}/meter-values", routes.meter_values, "getMeterValues"),
        ("GET", f"{gateway}/meter-series", routes.meter_series, "getMeterSeries"),
        ("GET", f"{gateway}/messages", routes.messages, "getMessages"),
        ("GET", f"{gateway}/firmware-status", routes.firmware_status, "getFirmwareStatus"),
        ("GET", f"{gateway}/diagnostics-status", routes.diagnostics_status, "getDiagnosticsStatus"),
        ("GET", f"{gateway}/data-transfers", routes.data_transfers, "getDataTransfers"),
        ("POST", f"{gateway}/calls/{{action}}", routes.call, "call"),
        ("GET", "/api/commands", routes.commands, "listCommands"),
    ):
        add_route(app, method, path, handler, operation)
    tokens_api.setup(app, service)
    dashboard.setup(app, service)
    live_api.setup(app, service)
    return app
