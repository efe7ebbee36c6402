"""The OpenAPI 3.1 document of the HTTP API, generated at run time.

The request and response bodies of ``POST /api/gateways/{id}/calls/{Action}`` are the
message schemas of :mod:`ntxcp.v10.schema` (spec §4), not a second copy written here:
each generated schema's ``$defs`` are lifted into ``components.schemas`` and its
``#/$defs/...`` references rewritten to point there. The query parameters of every
route and the body of ``POST /api/gateways`` come from :mod:`.api_contract`, the same
definitions the handlers validate with. Only the API's responses (gateways, stored
data, errors, events) are described by hand below.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from ntxcp.service.api_contract import (
    GATEWAY_ID_PATTERN,
    MAX_BODY,
    MAX_IMPORT_BODY,
    OPERATIONS,
    REQUIRED_ROLES,
    GatewayImport,
    GatewaySecret,
    NewGateway,
    NewToken,
    gateway_actions,
)
from ntxcp.service.api_tokens import Role
from ntxcp.service.events import KINDS
from ntxcp.service.fleet import STATES
from ntxcp.v10 import ACTIONS
from ntxcp.v10.schema import confirmation_schema, request_schema

__all__ = ["build_openapi"]

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_ROLE = {"enum": [role.value for role in Role]}
_STATE = {"type": "string", "enum": list(STATES)}
_NEXT = {
    "type": ["string", "null"],
    "description": "the cursor of the next page (pass it as `after`); null on the last page",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# A password and generatePassword true exclude each other (answered 422).
_PASSWORD_AND_GENERATED = {
    "required": ["password", "generatePassword"],
    "properties": {"password": {"type": "string"}, "generatePassword": {"const": True}},
}
_GENERATED_ANSWER = (
    "the generated secret (with generatePassword): shown in this answer only, never "
    "stored in clear nor shown again"
)


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
        "ParameterError": _object(
            {"error": _STR, "parameter": {**_STR, "description": "the query parameter at fault"}},
            ("error", "parameter"),
        ),
        "ValidationError": _object(
            {
                "error": _STR,
                "code": {**_STR, "description": "spec §2.1 error code"},
                "path": {**_STR, "description": "JSON path of the field, e.g. `key`"},
                "errors": {
                    "type": "array",
                    "description": "call payloads: every invalid field, the first as "
                    "`code` and `path`",
                    "items": _object(
                        {
                            "path": _STR,
                            "code": {**_STR, "description": "spec §2.1 error code"},
                            "message": {**_STR, "description": "what is expected, in words"},
                        },
                        ("path", "code", "message"),
                    ),
                },
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
                "state": {
                    **_STATE,
                    "description": "connected, unresponsive (connected, missed a pong), "
                    "disconnected or never (connected)",
                },
                "connectedSince": _NTIME,
                "remoteAddress": _NSTR,
                "tls": _BOOL,
                "node": {
                    **_NSTR,
                    "description": "cluster mode only: the node holding the gateway's "
                    "socket (null while disconnected)",
                },
            }
        ),
        "RegisteredGateway": {
            "allOf": [
                _ref("Gateway"),
                _object({"password": {**_STR, "description": _GENERATED_ANSWER}}),
            ]
        },
        "GatewaySecretAnswer": _object(
            {
                "gatewayId": _STR,
                "hasPassword": _BOOL,
                "password": {**_STR, "description": _GENERATED_ANSWER},
            },
            ("gatewayId", "hasPassword"),
        ),
        "ImportedGateways": _object(
            {
                "count": _INT,
                "items": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": _STR,
                            "hasPassword": _BOOL,
                            "password": {**_STR, "description": _GENERATED_ANSWER},
                        },
                        ("id", "hasPassword"),
                    ),
                },
            },
            ("count", "items"),
        ),
        "ImportError": _object(
            {
                "error": _STR,
                "code": _STR,
                "path": _STR,
                "errors": {
                    "type": "array",
                    "description": "every wrong entry, by its index in `gateways`",
                    "items": _object(
                        {"index": _INT, "error": _STR, "code": _STR, "path": _STR},
                        ("index", "error"),
                    ),
                },
            },
            ("error",),
        ),
        "GatewayList": _list_of("Gateway", next=_NEXT),
        "RoleError": _object(
            {
                "error": _STR,
                "requiredRole": {**_ROLE, "description": "the role the route needs"},
                "role": {**_ROLE, "description": "the role of the token sent"},
            },
            ("error", "requiredRole", "role"),
        ),
        "WhoAmI": _object(
            {
                "name": {
                    **_NSTR,
                    "description": "the token's name (bootstrap: --api-token); null "
                    "when the API is open (no token configured)",
                },
                "role": _ROLE,
                "authenticated": {
                    **_BOOL,
                    "description": "false when the API is open: no token is needed",
                },
                "gatewayAdmission": {
                    "type": "string",
                    "enum": ["open", "registered"],
                    "description": "open: any gateway id is admitted and recorded on first "
                    "contact (--auth none without --unknown-gateways reject), so a removed "
                    "gateway that is still running connects again and is recorded anew; "
                    "registered: only registered gateways are admitted, a removed one stays out",
                },
            },
            ("name", "role", "authenticated", "gatewayAdmission"),
        ),
        "Token": _object(
            {
                "name": _STR,
                "role": _ROLE,
                "createdAt": _TIME,
                "lastUsedAt": {
                    **_NTIME,
                    "description": "last use, to the minute (null: never used)",
                },
                "revokedAt": {**_NTIME, "description": "null while the token is active"},
            },
            ("name", "role", "createdAt", "lastUsedAt", "revokedAt"),
        ),
        "TokenList": _list_of("Token"),
        "NewTokenAnswer": {
            "allOf": [
                _ref("Token"),
                _object(
                    {
                        "token": {
                            **_STR,
                            "description": "the bearer token, <name>.<secret>: shown in "
                            "this answer only, never stored in clear nor shown again",
                        }
                    },
                    ("token",),
                ),
            ]
        },
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
        "MeterBucket": _object(
            {
                "start": {**_TIME, "description": "the bucket's first millisecond"},
                "count": {**_INT, "description": "numeric samples in the bucket"},
                "min": _NUM,
                "minAt": {**_TIME, "description": "the time of a sample with the lowest value"},
                "max": _NUM,
                "maxAt": {**_TIME, "description": "the time of a sample with the highest value"},
            },
            ("start", "count", "min", "minAt", "max", "maxAt"),
        ),
        "MeterSeries": _object(
            {
                "serviceId": _INT,
                "measurand": _STR,
                "phase": _NSTR,
                "unit": _STR,
                "count": {**_INT, "description": "numeric samples of the series in the range"},
                "skipped": {
                    **_INT,
                    "description": "samples that are not a number (SignedData, text)",
                },
                "buckets": {
                    "type": "array",
                    "items": _ref("MeterBucket"),
                    "description": "the buckets that hold samples, in time order",
                },
            },
            ("serviceId", "measurand", "phase", "unit", "count", "skipped", "buckets"),
        ),
        "MeterSeriesReport": _object(
            {
                "gatewayId": _STR,
                "measurand": {**_NSTR, "description": "the measurand asked for, or null"},
                "since": {**_NTIME, "description": "the range's start (given or the data's)"},
                "until": {**_NTIME, "description": "the range's end, inclusive"},
                "buckets": {**_INT, "description": "buckets asked for"},
                "bucketMs": {
                    "type": ["integer", "null"],
                    "description": "milliseconds each bucket spans; null for no range",
                },
                "total": {**_INT, "description": "numeric samples in the range, every series"},
                "skipped": {**_INT, "description": "samples that are not a number"},
                "first": {**_NTIME, "description": "the earliest numeric sample's time"},
                "last": {**_NTIME, "description": "the latest numeric sample's time"},
                "series": {"type": "array", "items": _ref("MeterSeries")},
            },
            (
                "gatewayId",
                "measurand",
                "since",
                "until",
                "buckets",
                "bucketMs",
                "total",
                "skipped",
                "first",
                "last",
                "series",
            ),
        ),
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
        "CurrentStatus": _object({"gatewayId": _STR, **status_entry["properties"]}),
        "CurrentStatusList": _list_of("CurrentStatus", next=_NEXT),
        "FleetGateway": _object(
            {
                "id": _STR,
                "registered": _BOOL,
                "hasPassword": _BOOL,
                "registrationStatus": _NSTR,
                "state": {**_STATE, "description": "connection state"},
                "connected": {
                    **_BOOL,
                    "description": "its connection is open (state connected or unresponsive)",
                },
                "connectedSince": _NTIME,
                "remoteAddress": _NSTR,
                "tls": _BOOL,
                "firstSeen": _NTIME,
                "lastSeen": _NTIME,
                "vendor": {**_NSTR, "description": "dingxGatewayVendor of the last boot"},
                "model": {**_NSTR, "description": "dingxGatewayModel of the last boot"},
                "firmware": {**_NSTR, "description": "firmwareVersion of the last boot"},
                "services": {"type": "array", "items": status_entry},
                "attentionServices": {
                    **_INT,
                    "description": "services Faulted or with an errorCode, while connected",
                },
                "needsAttention": {
                    **_BOOL,
                    "description": "unresponsive, or attentionServices above 0",
                },
                "node": {
                    **_NSTR,
                    "description": "cluster mode only: the node holding the gateway's "
                    "socket (null while disconnected)",
                },
            }
        ),
        "FleetPage": _object(
            {
                "total": {**_INT, "description": "gateways known"},
                "states": _object({state: _INT for state in STATES}, tuple(STATES)),
                "attention": _object(
                    {"gateways": _INT, "services": _INT}, ("gateways", "services")
                ),
                "matched": {**_INT, "description": "gateways the filters keep"},
                "offset": _INT,
                "items": {"type": "array", "items": _ref("FleetGateway")},
            },
            ("total", "states", "attention", "matched", "offset", "items"),
        ),
        "RefusedGateway": _object(
            {
                "id": _STR,
                "firstSeen": _STR,
                "lastSeen": _STR,
                "attempts": _INT,
                "remoteAddress": _NSTR,
            },
            ("id", "firstSeen", "lastSeen", "attempts"),
        ),
        "Health": _object(
            {
                "status": {
                    "enum": ["ok", "degraded", "unavailable"],
                    "description": "degraded while a storage alarm is raised (or, in a "
                    "cluster, while the bus is down); unavailable while the database "
                    "cannot be reached (answered with HTTP 503)",
                },
                "database": _object(
                    {
                        "backend": {"enum": ["sqlite", "postgresql"]},
                        "reachable": {"type": "boolean"},
                        "error": {
                            "type": ["string", "null"],
                            "description": "why the database cannot be reached",
                        },
                    }
                ),
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
                "cluster": _object(
                    {
                        "node": {**_STR, "description": "this node's id"},
                        "nodes": {
                            "type": "array",
                            "items": _STR,
                            "description": "the nodes heard from in the last 5 s (this "
                            "one included)",
                        },
                        "bus": _object(
                            {
                                "connected": {"type": "boolean"},
                                "error": {
                                    "type": ["string", "null"],
                                    "description": "why the bus is not connected",
                                },
                                "reconnects": _INT,
                            }
                        ),
                        "gatewaysOwned": {
                            **_INT,
                            "description": "gateways whose socket this node holds",
                        },
                        "commandSubscriptions": {
                            **_INT,
                            "description": "gateways this node receives commands for "
                            "on the bus (equal to gatewaysOwned while the bus is up)",
                        },
                        "takeovers": {
                            **_INT,
                            "description": "sockets closed here because another node "
                            "admitted the gateway later",
                        },
                        "otherNodesListening": {
                            "type": "boolean",
                            "description": "another node has event-stream subscribers "
                            "(this node sends them its events)",
                        },
                        "framesSent": _object(
                            {
                                "allGateways": {
                                    "type": "boolean",
                                    "description": "another node's stream wants the "
                                    "frames of every gateway",
                                },
                                "gateways": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "description": "the gateways whose frame events "
                                    "other nodes' streams want (this node sends them "
                                    "the frames of those it holds)",
                                },
                            }
                        ),
                        "fleetResyncs": {
                            **_INT,
                            "description": "times the overview's index was re-read from "
                            "the database (at start, after bus reconnections, when "
                            "another node arrives)",
                        },
                    }
                ),
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


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {**_STR, "minLength": 1, "maxLength": 48, "pattern": GATEWAY_ID_PATTERN},
    "description": "the gateway id (spec §1)",
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {**_STR, "minLength": 1, "maxLength": 64},
    "description": "the token's name",
}
_BAD_PARAMETER = {
    "400": _error("a query parameter is unknown, repeated, empty or invalid", "ParameterError")
}
_NOT_FOUND = {"404": _error("unknown gateway")}
_INTERNAL = {"500": _error("an unexpected failure (logged; the service goes on)")}


def _operation(
    op_id: str,
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    secured: bool,
    params_of: str | None = None,
    gateway: bool = False,
    errors: dict[str, dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    path_parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One operation; its query parameters are those of ``OPERATIONS[params_of or op_id]``."""
    responses = {**ok, **_BAD_PARAMETER, **(_NOT_FOUND if gateway else {}), **(errors or {})}
    role = REQUIRED_ROLES[params_of or op_id]
    secured = secured and role is not None
    if secured:
        responses["401"] = _error("missing, wrong or revoked bearer token")
        if role is not Role.READ_ONLY:
            responses["403"] = _error(f"the token's role is below {role}", "RoleError")
    responses.update(_INTERNAL)
    if op_id not in ("health", "metrics"):
        responses.setdefault("503", _error("the database cannot be reached now (the reason)"))
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": dict(sorted(responses.items())),
    }
    query = [param.openapi() for param in OPERATIONS[params_of or op_id]]
    parameters = ([_ID] if gateway else []) + (path_parameters or []) + query
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
        limit = MAX_IMPORT_BODY if op_id == "importGateways" else MAX_BODY
        operation["responses"]["408"] = _error("the body did not arrive within the body timeout")
        operation["responses"]["413"] = _error(f"the body is larger than {limit} bytes")
        operation["responses"]["415"] = _error("the body is not application/json")
    operation["security"] = [{"bearerAuth": []}] if secured else []
    operation["x-required-role"] = "none" if role is None else role.value
    return operation


def _event_schemas() -> dict[str, Any]:
    """The ``data`` object of each event kind of ``/api/events`` (see :mod:`.events`)."""
    about = {"gatewayId": _STR}
    received = {"receivedAt": _TIME}
    wire = "the wire payload's fields (spec §4.1), "
    g, r = "gatewayId", "receivedAt"  # required in every event about a stored message

    def payload(action: str) -> dict[str, Any]:
        return {**_object({**about, **received}, (g, r)), "description": wire + action}

    events: dict[str, Any] = {
        "hello": _object({"time": _TIME, "version": _STR}, ("time", "version")),
        "gateway": {
            "oneOf": [
                _object(
                    {
                        **about,
                        "change": {"enum": ["registered", "removed"]},
                        "gateway": _ref("Gateway"),
                    },
                    (g, "change"),
                ),
                _object(
                    {
                        "change": {"enum": ["imported"]},
                        "count": _INT,
                        "gatewayIds": {"type": "array", "items": _STR},
                    },
                    ("change", "count", "gatewayIds"),
                ),
            ],
            "description": "one gateway registered or removed, or a whole bulk import "
            "(one event without gatewayId)",
        },
        "connection": _object(
            {
                **about,
                "connected": _BOOL,
                "state": {**_STATE, "description": "connected, unresponsive or disconnected"},
                "at": _TIME,
                "remoteAddress": _NSTR,
                "tls": _BOOL,
            },
            (g, "connected", "state", "at"),
        ),
        "boot": _object(
            {
                **about,
                "registrationStatus": _NSTR,
                "bootInfo": _ref("BootNotificationRequest"),
                "lastBootAt": _NTIME,
            },
            (g, "registrationStatus", "bootInfo"),
        ),
        "status": payload("StatusNotification"),
        "meter": payload("MeterValues"),
        "firmware": _object({**about, "status": _STR, **received}, (g, "status", r)),
        "diagnostics": _object({**about, "status": _STR, **received}, (g, "status", r)),
        "data-transfer": payload("DataTransfer"),
        "frame": _object(
            {
                **about,
                "direction": {"enum": ["in", "out"]},
                "time": _TIME,
                "messageType": {"enum": ["CALL", "CALLRESULT", "CALLERROR", None]},
                "action": _NSTR,
                "uniqueId": _NSTR,
                "raw": {**_NSTR, "description": "the frame's text; null past 16 KiB"},
            },
            (g, "direction", "time"),
        ),
        "seen": _object({**about, "time": _TIME}, (g, "time")),
        "resync": {**_object({}), "description": "events were dropped: reload"},
    }
    assert set(events) == KINDS, "every event kind is documented"
    return events


def build_openapi(version: str, *, secured: bool = True) -> dict[str, Any]:
    """Generate the OpenAPI 3.1 document of the whole HTTP API.

    Args:
        version: the service's version, shown as the API version.
        secured: a bearer token is configured: the ``/api`` routes require it.

    Returns:
        The document as a JSON-ready dict.
    """
    schemas = _api_schemas()
    _lift(msgspec.json.schema(NewGateway), schemas)  # defines NewGateway
    _lift(msgspec.json.schema(GatewayImport), schemas)  # defines it and ImportedGateway
    _lift(msgspec.json.schema(GatewaySecret), schemas)  # defines GatewaySecret
    _lift(msgspec.json.schema(NewToken), schemas)  # defines NewToken and Role
    for name in ("NewGateway", "ImportedGateway", "GatewaySecret"):
        schemas[name]["not"] = _PASSWORD_AND_GENERATED
    events = _event_schemas()
    for kind, schema in events.items():
        schemas[_event_name(kind)] = schema
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _operation(
                "health",
                "Health check",
                "service",
                {
                    "200": _json_body(_ref("Health"), "healthy"),
                    "503": _json_body(_ref("Health"), "the database cannot be reached"),
                },
                secured=False,
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics",
                "service",
                {
                    "200": {
                        "description": "text exposition format 0.0.4",
                        "content": {"text/plain": {"schema": _STR}},
                    }
                },
                secured=False,
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                "service",
                {"200": _json_body({"type": "object"}, "OpenAPI 3.1 document")},
                secured=False,
            )
        },
        "/docs": {
            "get": _operation(
                "docs",
                "Interactive API page",
                "service",
                {"200": {"description": "HTML page", "content": {"text/html": {"schema": _STR}}}},
                secured=False,
            )
        },
        "/api/gateways": {
            "get": _operation(
                "listGateways",
                "List gateways (registered or seen), by id, one page at a time",
                "gateways",
                {"200": _json_body(_ref("GatewayList"), "a page of gateways")},
                secured=secured,
            ),
            "post": _operation(
                "registerGateway",
                "Register a gateway",
                "gateways",
                {"201": _json_body(_ref("RegisteredGateway"), "registered")},
                errors={
                    "400": _error("a query parameter is invalid, or the body is not JSON"),
                    "409": _error("already registered"),
                    "422": _error("invalid id or password", "ValidationError"),
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewGateway")}},
                },
                secured=secured,
            ),
        },
        "/api/gateway-imports": {
            "post": _operation(
                "importGateways",
                "Register many gateways at once: all or none, every mistake reported",
                "gateways",
                {"201": _json_body(_ref("ImportedGateways"), "all registered")},
                errors={
                    "400": _error("a query parameter is invalid, or the body is not JSON"),
                    "409": _error(
                        "ids given twice or already registered (nothing registered)",
                        "ImportError",
                    ),
                    "422": _error("entries are invalid (nothing registered)", "ImportError"),
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("GatewayImport")}},
                },
                secured=secured,
            ),
        },
        "/api/gateways/{id}": {
            "get": _operation(
                "getGateway",
                "Read a gateway",
                "gateways",
                {"200": _json_body(_ref("Gateway"), "the gateway")},
                gateway=True,
                secured=secured,
            ),
            "delete": _operation(
                "deleteGateway",
                "Delete a gateway and its data",
                "gateways",
                {"204": {"description": "deleted"}},
                gateway=True,
                secured=secured,
            ),
        },
        "/api/gateways/{id}/password": {
            "put": _operation(
                "setGatewayPassword",
                "Set, generate or clear a gateway's Basic-auth secret (closes its connection)",
                "gateways",
                {"200": _json_body(_ref("GatewaySecretAnswer"), "the secret is set")},
                gateway=True,
                errors={
                    "400": _error("a query parameter is invalid, or the body is not JSON"),
                    "422": _error("invalid password", "ValidationError"),
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("GatewaySecret")}},
                },
                secured=secured,
            )
        },
        "/api/gateways/{id}/status": {
            "get": _operation(
                "getStatus",
                "Current status per service and recent history",
                "data",
                {"200": _json_body(_ref("StatusReport"), "statuses")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/meter-values": {
            "get": _operation(
                "getMeterValues",
                "Stored sampled values",
                "data",
                {"200": _json_body(_ref("MeterSampleList"), "samples")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/meter-series": {
            "get": _operation(
                "getMeterSeries",
                "Stored sampled values thinned to time buckets (lowest and highest of each)",
                "data",
                {"200": _json_body(_ref("MeterSeriesReport"), "series of buckets")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/messages": {
            "get": _operation(
                "getMessages",
                "Frame log (every frame in and out)",
                "data",
                {"200": _json_body(_ref("FrameList"), "frames, newest first")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/firmware-status": {
            "get": _operation(
                "getFirmwareStatus",
                "Firmware update status and history",
                "data",
                {"200": _json_body(_ref("ProgressReport"), "statuses")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/diagnostics-status": {
            "get": _operation(
                "getDiagnosticsStatus",
                "Diagnostics upload status and history",
                "data",
                {"200": _json_body(_ref("ProgressReport"), "statuses")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/gateways/{id}/data-transfers": {
            "get": _operation(
                "getDataTransfers",
                "DataTransfer requests received",
                "data",
                {"200": _json_body(_ref("DataTransferList"), "data transfers")},
                gateway=True,
                secured=secured,
            )
        },
        "/api/commands": {
            "get": _operation(
                "listCommands",
                "Requests sent through the API and their outcomes",
                "commands",
                {"200": _json_body(_ref("CommandList"), "commands, newest first")},
                secured=secured,
            )
        },
        "/api/refused-gateways": {
            "get": _operation(
                "listRefusedGateways",
                "Gateway ids refused by --unknown-gateways reject (not stored as gateways): "
                "how many connections were refused, and the most recent ids",
                "gateways",
                {
                    "200": _json_body(
                        _object(
                            {
                                "total": _INT,
                                "count": _INT,
                                "items": {"type": "array", "items": _ref("RefusedGateway")},
                            }
                        ),
                        "refused gateway ids, most recently seen first",
                    )
                },
                secured=secured,
            )
        },
        "/api/fleet": {
            "get": _operation(
                "getFleet",
                "The overview: a filtered, sorted page of gateways and the fleet's counts",
                "gateways",
                {"200": _json_body(_ref("FleetPage"), "a page and the counts")},
                secured=secured,
            )
        },
        "/api/status": {
            "get": _operation(
                "listStatuses",
                "Current status of every service of a page of gateways (for the overview)",
                "gateways",
                {"200": _json_body(_ref("CurrentStatusList"), "current statuses")},
                secured=secured,
            )
        },
        "/api/events": {
            "get": _operation(
                "streamEvents",
                "Live events as server-sent events; the stream stays open",
                "gateways",
                {
                    "200": {
                        "description": (
                            "A `text/event-stream` that stays open: a `retry:` line, then "
                            "one message per event, `id:`, `event:` (the kind) and `data:` "
                            "(a JSON object, schema `Event<Kind>` by kind, listed in "
                            "`x-event-schemas`), and a comment line every 15 s when idle."
                        ),
                        "content": {
                            "text/event-stream": {
                                "schema": _STR,
                                "x-event-schemas": {
                                    kind: _ref(_event_name(kind)) for kind in sorted(events)
                                },
                            }
                        },
                    }
                },
                secured=secured,
            )
        },
    }
    paths.update(_token_paths(secured))
    for action in gateway_actions():
        request = _lift(request_schema(action), schemas)
        confirmation = _lift(confirmation_schema(action), schemas)
        paths[f"/api/gateways/{{id}}/calls/{action}"] = {
            "post": _operation(
                f"call{action}",
                f"Send {action} to a gateway (spec §4)",
                "calls",
                {"200": _json_body(confirmation, f"the {action} confirmation (wire JSON)")},
                params_of="call",
                gateway=True,
                body={
                    # An empty body is the payload {}: a body is needed only when the
                    # request has a required field.
                    "required": _has_required_field(ACTIONS[action].request),
                    "description": (
                        f"the {action} request payload (wire JSON, camelCase); "
                        "an empty body is `{}`"
                    ),
                    "content": {"application/json": {"schema": request}},
                },
                errors={
                    "404": _error("unknown gateway, or gateway not connected"),
                    "422": _error("the payload breaks spec §4", "ValidationError"),
                    "502": _error(
                        "the gateway answered a CALLERROR, or left before answering",
                        "CallErrorAnswer",
                    ),
                    "503": _error("too many requests wait for this gateway"),
                    "504": _error("no answer within the call timeout"),
                },
                secured=secured,
            )
        }
    # Boot info of a gateway is a BootNotification request payload.
    _lift(request_schema("BootNotification"), schemas)
    auth = (
        "Every `/api/*` route needs `Authorization: Bearer <token>`, of a role that "
        "allows it (`x-required-role` of each operation: read-only < operator < admin)."
        if secured
        else "This service runs without an API token: no route needs one."
    )
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ntxcp control center API",
            "version": version,
            "description": (
                "Manage Ding.X Gateways connected over ntxcp 1.0: registration, stored "
                f"data, and C→G requests. {auth} Unknown, repeated or empty query "
                "parameters are refused with 400."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


def _token_paths(secured: bool) -> dict[str, Any]:
    """The routes of ``/api/whoami`` and the named tokens (see :mod:`.tokens_api`)."""
    conflict = "the name is taken, or the change would lock every administrator out"
    return {
        "/api/whoami": {
            "get": _operation(
                "whoAmI",
                "The name and role of the token that sent this request",
                "tokens",
                {"200": _json_body(_ref("WhoAmI"), "who you are")},
                secured=secured,
            )
        },
        "/api/tokens": {
            "get": _operation(
                "listTokens",
                "Every API token, active and revoked (never a secret)",
                "tokens",
                {"200": _json_body(_ref("TokenList"), "the tokens, by name")},
                secured=secured,
            ),
            "post": _operation(
                "addToken",
                "Create a named API token; the answer shows its secret, once",
                "tokens",
                {"201": _json_body(_ref("NewTokenAnswer"), "created")},
                errors={
                    "400": _error("a query parameter is invalid, or the body is not JSON"),
                    "409": _error(conflict),
                    "422": _error("invalid name or role", "ValidationError"),
                },
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewToken")}},
                },
                secured=secured,
            ),
        },
        "/api/tokens/{name}": {
            "delete": _operation(
                "revokeToken",
                "Revoke a token at once: its requests get 401, its event streams end",
                "tokens",
                {"200": _json_body(_ref("Token"), "revoked (or revoked before)")},
                errors={"404": _error("unknown token"), "409": _error(conflict)},
                path_parameters=[_NAME],
                secured=secured,
            )
        },
    }


def _has_required_field(cls: type[msgspec.Struct]) -> bool:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return any(f.required for f in info.fields)


def _event_name(kind: str) -> str:
    return "Event" + "".join(part.capitalize() for part in kind.split("-"))
