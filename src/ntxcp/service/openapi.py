"""The OpenAPI 3.1 document of the HTTP API, generated at run time.

The request and response bodies of ``POST /api/gateways/{id}/calls/{Action}`` are the
message schemas of :mod:`ntxcp.v10.schema` (spec §4), not a second copy written here:
each generated schema's ``$defs`` are lifted into ``components.schemas`` and its
``#/$defs/...`` references rewritten to point there. Only the API's own resources
(gateways, stored data, errors) are described by hand below.
"""

from __future__ import annotations

from typing import Any

from ntxcp.service.commands import gateway_actions
from ntxcp.v10 import ACTIONS
from ntxcp.v10.schema import confirmation_schema, request_schema
from ntxcp.v10.types import Measurand

__all__ = ["build_openapi"]

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_JSON = {"application/json"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _list_of(item: str, **extra: Any) -> dict[str, Any]:
    return _object({**extra, "count": _INT, "items": {"type": "array", "items": _ref(item)}})


def _api_schemas() -> dict[str, Any]:
    status_entry = _object(
        {
            "serviceId": _STR,
            "status": _STR,
            "errorCode": _STR,
            "info": _NSTR,
            "vendorId": _NSTR,
            "vendorErrorCode": _NSTR,
            "timestamp": _NTIME,
            "receivedAt": _TIME,
        }
    )
    progress = _object({"status": _STR, "receivedAt": _TIME})
    return {
        "Error": _object({"error": _STR}, ("error",)),
        "ValidationError": _object(
            {
                "error": _STR,
                "code": {**_STR, "description": "spec §2.1 error code"},
                "path": {**_STR, "description": "JSON path of the field, e.g. `key`"},
            },
            ("error",),
        ),
        "CallErrorAnswer": _object(
            {
                "error": _STR,
                "code": {**_STR, "description": "the gateway's errorCode (spec §2.1)"},
                "description": _STR,
                "details": {"type": "object"},
            },
            ("code", "description", "details"),
        ),
        "NewGateway": _object(
            {
                "id": {
                    **_STR,
                    "minLength": 1,
                    "maxLength": 48,
                    "pattern": "^[\\x20-\\x2e\\x30-\\x7e]+$",
                },
                "password": {**_NSTR, "minLength": 1, "description": "Basic-auth secret"},
            },
            ("id",),
        ),
        "Gateway": _object(
            {
                "id": _STR,
                "registered": _BOOL,
                "hasPassword": _BOOL,
                "registrationStatus": _NSTR,
                "bootInfo": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/BootNotificationRequest"},
                        {"type": "null"},
                    ]
                },
                "lastBootAt": _NTIME,
                "createdAt": _TIME,
                "firstSeen": _NTIME,
                "lastSeen": _NTIME,
                "connected": _BOOL,
                "connectedSince": _NTIME,
                "remoteAddress": _NSTR,
                "tls": _BOOL,
            }
        ),
        "GatewayList": _list_of("Gateway"),
        "StatusEntry": status_entry,
        "StatusReport": _object(
            {
                "gatewayId": _STR,
                "current": {"type": "array", "items": _ref("StatusEntry")},
                "history": {"type": "array", "items": _ref("StatusEntry")},
            }
        ),
        "MeterSample": _object(
            {
                "serviceId": _INT,
                "timestamp": _TIME,
                "measurand": _STR,
                "phase": _NSTR,
                "unit": _STR,
                "value": _STR,
                "context": _STR,
                "location": _STR,
                "format": _STR,
                "receivedAt": _TIME,
            }
        ),
        "MeterSampleList": _list_of("MeterSample", gatewayId=_STR),
        "Frame": _object(
            {
                "id": _INT,
                "direction": {"enum": ["in", "out"]},
                "time": _TIME,
                "messageType": {"enum": ["CALL", "CALLRESULT", "CALLERROR", None]},
                "action": _NSTR,
                "uniqueId": _NSTR,
                "raw": {
                    **_STR,
                    "description": "the frame's text as sent (bytes that are not UTF-8 "
                    "shown as U+FFFD); for a truncated frame, its first 1024 bytes",
                },
                "size": {**_INT, "description": "the frame's size in bytes"},
                "truncated": {
                    "type": "boolean",
                    "description": "a refused or malformed frame: raw is an excerpt",
                },
            }
        ),
        "FrameList": _list_of("Frame", gatewayId=_STR),
        "ProgressEntry": progress,
        "ProgressReport": _object(
            {
                "gatewayId": _STR,
                "current": {"anyOf": [_ref("ProgressEntry"), {"type": "null"}]},
                "history": {"type": "array", "items": _ref("ProgressEntry")},
            }
        ),
        "DataTransfer": _object(
            {"vendorId": _STR, "messageId": _NSTR, "data": _NSTR, "receivedAt": _TIME}
        ),
        "DataTransferList": _list_of("DataTransfer", gatewayId=_STR),
        "Command": _object(
            {
                "id": _INT,
                "gatewayId": _STR,
                "action": _STR,
                "request": {"type": "object"},
                "sentAt": _TIME,
                "finishedAt": _NTIME,
                "outcome": {
                    "enum": [
                        "pending",
                        "ok",
                        "callerror",
                        "timeout",
                        "disconnected",
                        "not-connected",
                        "queue-full",
                    ]
                },
                "response": {"type": ["object", "null"]},
                "error": {"type": ["object", "null"]},
                "durationMs": {"type": ["number", "null"]},
            }
        ),
        "CommandList": _list_of("Command"),
        "Health": _object(
            {
                "status": {
                    "enum": ["ok", "degraded"],
                    "description": "degraded while a storage alarm is raised",
                },
                "version": _STR,
                "connectedGateways": _INT,
                "knownGateways": _INT,
                "durability": {
                    "enum": ["disk", "process"],
                    "description": "disk: data is fsync'ed before a gateway is answered; "
                    "process: it survives a crash of the process, not a power cut",
                },
                "uptimeSeconds": {"type": "number"},
                "alarms": {
                    "type": "array",
                    "items": {"enum": ["frame-log-paused"]},
                    "description": "storage alarms raised now: frame-log-paused = the "
                    "database reached --max-db-size or the disk has less than "
                    "--min-free-disk free; the frame log is stopped",
                },
                "databaseBytes": {**_INT, "description": "database and WAL size"},
            },
            ("status",),
        ),
    }


def _lift(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """Move a generated schema's ``$defs`` into ``into``; return its root reference."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    "#/components/schemas/" + value.removeprefix("#/$defs/")
                    if key == "$ref" and isinstance(value, str)
                    else rewrite(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for name, definition in schema.get("$defs", {}).items():
        lifted = rewrite(definition)
        if name in into and into[name] != lifted:
            raise ValueError(f"two different schemas are named {name}")
        into[name] = lifted
    root = {k: v for k, v in schema.items() if k not in ("$defs", "$schema")}
    return rewrite(root)  # type: ignore[no-any-return]


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, name: str = "Error") -> dict[str, Any]:
    return _json_body(_ref(name), description)


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_ID = _param("id", "path", _STR, "the gateway id (spec §1)")
_LIMIT = _param("limit", "query", {**_INT, "minimum": 1, "maximum": 10000}, "most items returned")
_SINCE = _param("since", "query", _TIME, "RFC 3339 date-time: not before")


def _operation(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    params: tuple[dict[str, Any], ...] = (),
    errors: dict[str, dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    secured: bool = True,
    op_id: str,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": {**ok, **(errors or {})},
    }
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = body
    if secured:
        operation["security"] = [{"bearerAuth": []}]
        operation["responses"]["401"] = _error("missing or wrong bearer token")
    return operation


def build_openapi(version: str) -> dict[str, Any]:
    """Generate the OpenAPI 3.1 document of the whole HTTP API.

    Args:
        version: the service's version, shown as the API version.

    Returns:
        The document as a JSON-ready dict.
    """
    schemas = _api_schemas()
    not_found = {"404": _error("unknown gateway")}
    bad_filter = {"400": _error("a query parameter is invalid"), **not_found}
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _operation(
                "Health check",
                "service",
                {"200": _json_body(_ref("Health"), "healthy")},
                secured=False,
                op_id="health",
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics",
                "service",
                {
                    "200": {
                        "description": "text exposition format 0.0.4",
                        "content": {"text/plain": {"schema": _STR}},
                    }
                },
                secured=False,
                op_id="metrics",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                "service",
                {"200": _json_body({"type": "object"}, "OpenAPI 3.1 document")},
                secured=False,
                op_id="openapi",
            )
        },
        "/docs": {
            "get": _operation(
                "Interactive API page",
                "service",
                {"200": {"description": "HTML page", "content": {"text/html": {"schema": _STR}}}},
                secured=False,
                op_id="docs",
            )
        },
        "/api/gateways": {
            "get": _operation(
                "List gateways (registered or seen)",
                "gateways",
                {"200": _json_body(_ref("GatewayList"), "the gateways")},
                op_id="listGateways",
            ),
            "post": _operation(
                "Register a gateway",
                "gateways",
                {"201": _json_body(_ref("Gateway"), "registered")},
                errors={
                    "400": _error("body is not JSON"),
                    "409": _error("already registered"),
                    "422": _error("invalid id or password", "ValidationError"),
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewGateway")}},
                },
                op_id="registerGateway",
            ),
        },
        "/api/gateways/{id}": {
            "get": _operation(
                "Read a gateway",
                "gateways",
                {"200": _json_body(_ref("Gateway"), "the gateway")},
                params=(_ID,),
                errors=not_found,
                op_id="getGateway",
            ),
            "delete": _operation(
                "Delete a gateway and its data",
                "gateways",
                {"204": {"description": "deleted"}},
                params=(_ID,),
                errors=not_found,
                op_id="deleteGateway",
            ),
        },
        "/api/gateways/{id}/status": {
            "get": _operation(
                "Current status per service and recent history",
                "data",
                {"200": _json_body(_ref("StatusReport"), "statuses")},
                params=(_ID, _param("history", "query", {**_INT, "minimum": 0}, "history items")),
                errors=bad_filter,
                op_id="getStatus",
            )
        },
        "/api/gateways/{id}/meter-values": {
            "get": _operation(
                "Stored sampled values",
                "data",
                {"200": _json_body(_ref("MeterSampleList"), "samples")},
                params=(
                    _ID,
                    _param("service", "query", {**_INT, "minimum": 0}, "service id"),
                    _param(
                        "measurand", "query", {"enum": [m.value for m in Measurand]}, "measurand"
                    ),
                    _SINCE,
                    _param("until", "query", _TIME, "RFC 3339 date-time: not after"),
                    _param(
                        "order",
                        "query",
                        {"enum": ["desc", "asc"]},
                        "newest (default) or oldest first",
                    ),
                    _LIMIT,
                ),
                errors=bad_filter,
                op_id="getMeterValues",
            )
        },
        "/api/gateways/{id}/messages": {
            "get": _operation(
                "Frame log (every frame in and out)",
                "data",
                {"200": _json_body(_ref("FrameList"), "frames, newest first")},
                params=(
                    _ID,
                    _param("action", "query", {"enum": list(ACTIONS)}, "only this action"),
                    _param("direction", "query", {"enum": ["in", "out"]}, "only this direction"),
                    _SINCE,
                    _LIMIT,
                ),
                errors=bad_filter,
                op_id="getMessages",
            )
        },
        "/api/gateways/{id}/firmware-status": {
            "get": _operation(
                "Firmware update status and history",
                "data",
                {"200": _json_body(_ref("ProgressReport"), "statuses")},
                params=(_ID, _LIMIT),
                errors=bad_filter,
                op_id="getFirmwareStatus",
            )
        },
        "/api/gateways/{id}/diagnostics-status": {
            "get": _operation(
                "Diagnostics upload status and history",
                "data",
                {"200": _json_body(_ref("ProgressReport"), "statuses")},
                params=(_ID, _LIMIT),
                errors=bad_filter,
                op_id="getDiagnosticsStatus",
            )
        },
        "/api/gateways/{id}/data-transfers": {
            "get": _operation(
                "DataTransfer requests received",
                "data",
                {"200": _json_body(_ref("DataTransferList"), "data transfers")},
                params=(_ID, _LIMIT),
                errors=bad_filter,
                op_id="getDataTransfers",
            )
        },
        "/api/commands": {
            "get": _operation(
                "Requests sent through the API and their outcomes",
                "commands",
                {"200": _json_body(_ref("CommandList"), "commands, newest first")},
                params=(
                    _param("gateway", "query", _STR, "only this gateway"),
                    _param("action", "query", {"enum": gateway_actions()}, "only this action"),
                    _LIMIT,
                ),
                errors={"400": _error("a query parameter is invalid")},
                op_id="listCommands",
            )
        },
        "/api/status": {
            "get": _operation(
                "Current status of every service of every gateway (one request for the overview)",
                "gateways",
                {
                    "200": _json_body(
                        {"type": "object", "properties": {"items": {"type": "array"}}},
                        "current statuses",
                    )
                },
                op_id="listStatuses",
            )
        },
        "/api/events": {
            "get": _operation(
                "Live events as server-sent events (gateway, connection, boot, status, meter, "
                "frame, seen); see docs/dashboard.md",
                "gateways",
                {
                    "200": {
                        "description": "an event stream that stays open",
                        "content": {"text/event-stream": {"schema": _STR}},
                    }
                },
                op_id="streamEvents",
            )
        },
    }
    for action in gateway_actions():
        request = _lift(request_schema(action), schemas)
        confirmation = _lift(confirmation_schema(action), schemas)
        paths[f"/api/gateways/{{id}}/calls/{action}"] = {
            "post": _operation(
                f"Send {action} to a gateway (spec §4)",
                "calls",
                {"200": _json_body(confirmation, f"the {action} confirmation (wire JSON)")},
                params=(
                    _ID,
                    _param(
                        "timeout",
                        "query",
                        {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
                        "seconds to wait",
                    ),
                ),
                body={
                    "required": True,
                    "description": f"the {action} request payload (wire JSON, camelCase)",
                    "content": {"application/json": {"schema": request}},
                },
                errors={
                    "404": _error("unknown gateway, or gateway not connected"),
                    "422": _error("the payload breaks spec §4", "ValidationError"),
                    "502": _error("the gateway answered a CALLERROR", "CallErrorAnswer"),
                    "503": _error("too many requests wait for this gateway"),
                    "504": _error("no answer within the call timeout"),
                },
                op_id=f"call{action}",
            )
        }
    # Boot info of a gateway is a BootNotification request payload.
    _lift(request_schema("BootNotification"), schemas)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ntxcp control center API",
            "version": version,
            "description": (
                "Manage Ding.X Gateways connected over ntxcp 1.0: registration, stored "
                "data, and C→G requests. With `--api-token`, every `/api/*` route needs "
                "`Authorization: Bearer <token>`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
