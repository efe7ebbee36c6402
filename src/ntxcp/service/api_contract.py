"""The request side of the HTTP API's contract: one definition, read by code and document.

Every query parameter of every route is declared once here, as a :class:`QueryParam`
that holds both its JSON Schema (what ``/openapi.json`` states, see :mod:`.openapi`)
and the parser the handler runs (what the code enforces). The two are built from the
same bounds, so they cannot drift. The request bodies the API defines itself are
:class:`msgspec.Struct` types (:class:`NewGateway`) whose JSON Schema is generated
from the same type that decodes them, as the message schemas of :mod:`ntxcp.v10` are.

Rules that hold for every route (:func:`parse_query`):

* a parameter the route does not declare is refused (400, naming it);
* a parameter given twice is refused;
* an empty value is refused: leave a parameter out to get its default;
* a value outside its bounds is refused with a message naming the parameter and the
  bounds; the body is :data:`PARAMETER_ERROR` (``{"error", "parameter"}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec

from ntxcp.service.api_tokens import NAME_PATTERN, Role
from ntxcp.service.events import KINDS
from ntxcp.service.fleet import SORTS, STATES
from ntxcp.service.machine_secrets import MIN_SECRET_CHARS
from ntxcp.service.meter_series import MAX_BUCKETS
from ntxcp.v10 import ACTIONS, Direction
from ntxcp.v10.types import MAX_INTEGER, Measurand, encode_datetime

if TYPE_CHECKING:
    from multidict import MultiMapping  # the type of aiohttp's request.query

__all__ = [
    "GATEWAY_ID_PATTERN",
    "MAX_BODY",
    "MAX_IMPORT_BODY",
    "MAX_IMPORT_GATEWAYS",
    "MAX_LIMIT",
    "MAX_TIMEOUT",
    "MIN_IMPORTED_SECRET",
    "MIN_TIMEOUT",
    "OPERATIONS",
    "REQUIRED_ROLES",
    "GatewayImport",
    "GatewaySecret",
    "ImportedGateway",
    "NewGateway",
    "NewToken",
    "ParameterError",
    "QueryParam",
    "gateway_actions",
    "parse_query",
    "wire_datetime",
]

MAX_BODY: Final = 1024 * 1024
MAX_IMPORT_BODY: Final = 8 * 1024 * 1024
"""Largest body of ``POST /api/gateway-imports`` (the other routes: :data:`MAX_BODY`)."""
MAX_IMPORT_GATEWAYS: Final = 20_000
"""Most gateways one ``POST /api/gateway-imports`` may register."""
"""Largest request body, in bytes (413 beyond)."""
MAX_LIMIT: Final = 10_000
"""Largest ``limit`` any list accepts."""
DEFAULT_BUCKETS: Final = 1_000
"""``buckets`` of ``GET /api/gateways/{id}/meter-series`` when not given."""
MAX_FLEET_PAGE: Final = 1_000
"""Largest ``limit`` of ``GET /api/fleet`` (a page of the overview)."""
MAX_FILTER_TEXT: Final = 100
"""Longest ``q`` of ``GET /api/fleet``."""
MIN_TIMEOUT: Final = 1.0
"""Shortest ``timeout`` of a call, in seconds: shorter ones cannot see an answer."""
MAX_TIMEOUT: Final = 600.0
"""Longest ``timeout`` of a call, in seconds."""

GATEWAY_ID_PATTERN: Final = "^[\\x20-\\x2e\\x30-\\x7e]{1,48}$"
"""A gateway id (spec §1): 1..48 printable ASCII characters without ``/``."""
_GATEWAY_ID = re.compile(GATEWAY_ID_PATTERN.strip("^$"))  # for fullmatch: no "$" before "\n"

# RFC 3339 date-time (JSON Schema's "date-time"): "T" between date and time, "Z" or a
# numeric offset, fractional digits (only milliseconds are kept, spec §3).
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,32}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def gateway_actions() -> list[str]:
    """The actions a control center can send to a gateway (C→G or both, spec §5)."""
    return [
        name
        for name, spec in ACTIONS.items()
        if spec.direction is not Direction.GATEWAY_TO_CONTROL_CENTER
    ]


class ParameterError(Exception):
    """A query parameter breaks its rules; answered 400 ``{"error", "parameter"}``.

    Args:
        parameter: the parameter's name.
        message: what is wrong, naming the parameter.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One query parameter: its documented schema and the parser that enforces it.

    Attributes:
        name: the parameter's name.
        schema: its JSON Schema, as ``/openapi.json`` states it.
        description: what it does, for the document.
        parse: turns the (non-empty) text into the value, or raises ``ValueError``
            with the rule broken.
        default: the value when the parameter is absent.
    """

    name: str
    schema: dict[str, Any]
    description: str
    parse: Callable[[str], Any] = field(repr=False)
    default: Any = None

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "schema": self.schema,
            "description": self.description,
        }


def integer(name: str, low: int, high: int, default: int | None, description: str) -> QueryParam:
    """An integer parameter ``low..high``."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"-?\d{1,20}", text):
            raise ValueError(f"must be an integer {low}..{high}")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be {low}..{high}, not {value}")
        return value

    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return QueryParam(name, schema, description, parse, default)


def number(name: str, low: float, high: float, description: str) -> QueryParam:
    """A decimal number parameter ``low..high`` (no exponent, no ``inf``/``nan``)."""

    def parse(text: str) -> float:
        if len(text) > 40 or not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise ValueError(f"must be a decimal number {low:g}..{high:g}")
        value = float(text)
        if not low <= value <= high:
            raise ValueError(f"must be {low:g}..{high:g}, not {text}")
        return value

    return QueryParam(name, {"type": "number", "minimum": low, "maximum": high}, description, parse)


def choice(name: str, values: Iterable[str], description: str) -> QueryParam:
    """One of a fixed set of strings."""
    allowed = list(values)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}")
        return text

    return QueryParam(name, {"type": "string", "enum": allowed}, description, parse)


def gateway_id(name: str, description: str) -> QueryParam:
    """A gateway id (spec §1)."""

    def parse(text: str) -> str:
        if not _GATEWAY_ID.fullmatch(text):
            raise ValueError("must be a gateway id: 1..48 printable ASCII characters, no '/'")
        return text

    return QueryParam(
        name,
        {"type": "string", "minLength": 1, "maxLength": 48, "pattern": GATEWAY_ID_PATTERN},
        description,
        parse,
    )


def wire_datetime(text: str) -> str:
    """An RFC 3339 date-time as the wire writes it (spec §3: UTC, milliseconds, ``Z``).

    The API takes JSON Schema's ``date-time``: ``T`` (or ``t``) between date and time,
    ``Z`` or a ``±hh:mm`` offset, any number of fractional digits. An instant before
    year 1 or after year 9999 in UTC (e.g. ``0001-01-01T00:00:00+01:00``) is a valid
    date-time that no ``datetime`` holds: it becomes the first or last millisecond of
    that range.

    Args:
        text: the date-time.

    Returns:
        The wire text, e.g. ``2026-11-23T18:36:34.123Z``.

    Raises:
        ValueError: not an RFC 3339 date-time, or not a date of the calendar.
    """
    match = _DATE_TIME.match(text)
    if match is None:
        hint = ""
        if " " in text:
            hint = " (write '+' as %2B in a query string)"
        elif _DATE_TIME.match(text + "Z"):
            hint = " (it needs a UTC offset, e.g. 'Z')"
        raise ValueError(f"must be an RFC 3339 date-time such as 2026-11-23T18:36:34Z{hint}")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = (match[7] or "").ljust(6, "0")[:6]
    offset = timedelta(0)
    if match[9] is not None:
        if int(match[10]) > 23 or int(match[11]) > 59:
            raise ValueError("has an offset beyond ±23:59")
        offset = timedelta(hours=int(match[10]), minutes=int(match[11]))
        offset = -offset if match[9] == "-" else offset
    try:
        local = datetime(
            year, month, day, hour, minute, second, int(fraction), tzinfo=timezone(offset)
        )
    except ValueError:
        raise ValueError("is not a date and time of the calendar") from None
    try:
        value = local.astimezone(UTC)
    except OverflowError:  # before year 1 or after year 9999 in UTC
        value = _EARLIEST if local.year == 1 else _LATEST
    return encode_datetime(value)


def date_time(name: str, description: str) -> QueryParam:
    """An RFC 3339 date-time, turned into the stored text (see :func:`wire_datetime`)."""
    return QueryParam(name, {"type": "string", "format": "date-time"}, description, wire_datetime)


_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"  # no C0 control character, no DEL


def text(name: str, max_length: int, description: str) -> QueryParam:
    """Free text: 1..``max_length`` characters, none of them a control character."""
    no_control = re.compile(_NO_CONTROL)

    def parse(value: str) -> str:
        if len(value) > max_length or not no_control.fullmatch(value):
            raise ValueError(f"must be 1..{max_length} characters without control characters")
        return value

    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": _NO_CONTROL}
    return QueryParam(name, schema, description, parse)


def kinds_list(name: str, description: str) -> QueryParam:
    """A comma-separated list of event kinds (``status,meter``)."""
    alternatives = "|".join(re.escape(kind) for kind in sorted(KINDS))
    pattern = f"^({alternatives})(,({alternatives}))*$"

    def parse(text: str) -> list[str]:
        kinds = text.split(",")  # the pattern: no spaces, no empty kinds
        unknown = sorted(set(kinds) - KINDS)
        if unknown or "" in kinds:
            raise ValueError(
                f"has unknown event kind(s) {', '.join(unknown) or repr('')}; "
                f"known: {', '.join(sorted(KINDS))}"
            )
        return kinds

    return QueryParam(name, {"type": "string", "pattern": pattern}, description, parse)


def _limit(default: int) -> QueryParam:
    return integer("limit", 1, MAX_LIMIT, default, "most items returned")


def _after(what: str) -> QueryParam:
    return gateway_id("after", f"paging cursor: only {what} after this gateway id (see `next`)")


_SINCE = date_time("since", "RFC 3339 date-time: not before (clamped to years 1..9999 in UTC)")
_UNTIL = date_time("until", "RFC 3339 date-time: not after (clamped to years 1..9999 in UTC)")

OPERATIONS: Final[dict[str, tuple[QueryParam, ...]]] = {
    "health": (),
    "metrics": (),
    "openapi": (),
    "docs": (),
    "listGateways": (_after("gateways"), _limit(500)),
    "registerGateway": (),
    "getGateway": (),
    "deleteGateway": (),
    "setGatewayPassword": (),
    "importGateways": (),
    "listRefusedGateways": (),
    "getStatus": (integer("history", 0, MAX_LIMIT, 100, "history items"),),
    "getMeterValues": (
        integer("service", 0, MAX_INTEGER, None, "service id (spec §4.1 MeterValues)"),
        choice("measurand", [m.value for m in Measurand], "measurand"),
        _SINCE,
        _UNTIL,
        choice("order", ["desc", "asc"], "newest (default) or oldest first"),
        _limit(1000),
    ),
    "getMeterSeries": (
        integer("service", 0, MAX_INTEGER, None, "service id (spec §4.1 MeterValues)"),
        choice("measurand", [m.value for m in Measurand], "measurand (default: every one)"),
        date_time(
            "since",
            "RFC 3339 date-time: the range's start (default: the first matching message's)",
        ),
        date_time(
            "until",
            "RFC 3339 date-time: the range's end (default: the last matching message's)",
        ),
        integer(
            "buckets",
            1,
            MAX_BUCKETS,
            DEFAULT_BUCKETS,
            "equal time spans the range is cut into (e.g. one per pixel column)",
        ),
    ),
    "getMessages": (
        choice("action", list(ACTIONS), "only this action"),
        choice("direction", ["in", "out"], "only this direction"),
        _SINCE,
        _limit(100),
    ),
    "getFirmwareStatus": (_limit(100),),
    "getDiagnosticsStatus": (_limit(100),),
    "getDataTransfers": (_limit(100),),
    "listCommands": (
        gateway_id("gateway", "only this gateway"),
        choice("action", gateway_actions(), "only this action"),
        _limit(100),
    ),
    "listStatuses": (_after("gateways' statuses"), _limit(500)),
    "getFleet": (
        text(
            "q",
            MAX_FILTER_TEXT,
            "only gateways whose id, vendor, model or firmware contains this (case ignored)",
        ),
        choice("state", STATES, "only gateways in this connection state"),
        choice("attention", ["true", "false"], "only gateways that need attention, or not"),
        choice("sort", SORTS, "order: id (natural), lastSeen or state; ties by id"),
        choice("order", ["asc", "desc"], "ascending (default) or descending"),
        integer("offset", 0, MAX_INTEGER, 0, "matching gateways skipped (the page's start)"),
        integer("limit", 1, MAX_FLEET_PAGE, 100, "most items returned"),
    ),
    "streamEvents": (
        gateway_id("gateway", "only events about this gateway (and `hello`/`resync`)"),
        kinds_list("kinds", "only these event kinds, comma-separated (default: all)"),
    ),
    "whoAmI": (),
    "listTokens": (),
    "addToken": (),
    "revokeToken": (),
    "call": (
        number(
            "timeout",
            MIN_TIMEOUT,
            MAX_TIMEOUT,
            f"seconds to wait for the answer, {MIN_TIMEOUT:g}..{MAX_TIMEOUT:g} "
            "(default: the service's --call-timeout)",
        ),
    ),
}
"""The query parameters of every operation, by ``operationId`` (all calls share ``call``)."""

_READ, _OPERATE, _ADMIN = Role.READ_ONLY, Role.OPERATOR, Role.ADMIN

REQUIRED_ROLES: Final[dict[str, Role | None]] = {
    # Pages outside /api: open to anyone who reaches the port, as before tokens had
    # roles (a Prometheus scraper, a load balancer's health check, the docs).
    "health": None,
    "metrics": None,
    "openapi": None,
    "docs": None,
    "dashboard": None,
    "dashboardAsset": None,
    # Reading.
    "whoAmI": _READ,
    "listGateways": _READ,
    "getGateway": _READ,
    "listRefusedGateways": _READ,
    "getStatus": _READ,
    "getMeterValues": _READ,
    "getMeterSeries": _READ,
    "getMessages": _READ,
    "getFirmwareStatus": _READ,
    "getDiagnosticsStatus": _READ,
    "getDataTransfers": _READ,
    "listCommands": _READ,
    "listStatuses": _READ,
    "getFleet": _READ,
    "streamEvents": _READ,
    # Commands to gateways (every action's route is the operation ``call``).
    "call": _OPERATE,
    # Administration.
    "registerGateway": _ADMIN,
    "importGateways": _ADMIN,
    "deleteGateway": _ADMIN,
    "setGatewayPassword": _ADMIN,
    "listTokens": _ADMIN,
    "addToken": _ADMIN,
    "revokeToken": _ADMIN,
}
"""The role each route needs, by its name (``operationId``); ``None``: no token at all.

Every route of the application is named and listed here: a request to a route that is
not is refused (403), never let through.
"""


def parse_query(query: MultiMapping[str], operation: str) -> dict[str, Any]:
    """Check a request's query string against an operation's parameters.

    Args:
        query: the request's query parameters.
        operation: the ``operationId`` (a key of :data:`OPERATIONS`).

    Returns:
        Every declared parameter's value by name (its default when absent).

    Raises:
        ParameterError: a parameter is unknown, repeated, empty or invalid.
    """
    params = {param.name: param for param in OPERATIONS[operation]}
    values = {name: param.default for name, param in params.items()}
    for name in query:
        param = params.get(name)
        if param is None:
            takes = ", ".join(params) or "none"
            raise ParameterError(
                name, f"unknown query parameter {name!r} (this route takes: {takes})"
            )
        given = query.getall(name)
        if len(given) > 1:
            raise ParameterError(name, f"query parameter {name!r} is given more than once")
        if given[0] == "":
            raise ParameterError(
                name, f"query parameter {name!r} is empty: leave it out for the default"
            )
        try:
            values[name] = param.parse(given[0])
        except ValueError as exc:
            raise ParameterError(name, f"query parameter {name!r} {exc}") from None
    return values


# --- request bodies ------------------------------------------------------------------


_Password = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=256, description="Basic-auth secret"),
]
_GeneratePassword = Annotated[
    bool,
    msgspec.Meta(
        description="let the control center generate the secret (256 random bits, "
        "stored as a keyed fast hash) and answer it once, in the response"
    ),
]


class NewGateway(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/gateways``: a gateway id and its Basic-auth secret.

    Attributes:
        id: the gateway id (spec §1).
        password: the secret for ``--auth basic`` (stored hashed); ``null``/absent:
            none.
        generate_password: generate the secret instead (``generatePassword``; not
            with ``password``); the answer carries it, once.
    """

    id: Annotated[str, msgspec.Meta(pattern=GATEWAY_ID_PATTERN, min_length=1, max_length=48)]
    # 256 characters are at most 1024 UTF-8 bytes, the password hash's limit: a bound
    # JSON Schema can state (it counts characters, not bytes).
    password: _Password | None = None
    generate_password: _GeneratePassword = msgspec.field(default=False, name="generatePassword")


MIN_IMPORTED_SECRET: Final = MIN_SECRET_CHARS
"""Shortest secret an import may give: a machine secret (22 Base64 characters: 128 bits)."""


class ImportedGateway(msgspec.Struct, forbid_unknown_fields=True):
    """An entry of ``POST /api/gateway-imports``, as :class:`NewGateway`.

    A given password is a machine secret, stored with the keyed fast hash.

    Attributes:
        id: the gateway id (spec §1).
        password: the gateway's machine secret (22..256 characters); ``null``/absent:
            none.
        generate_password: generate the secret instead (``generatePassword``; not
            with ``password``); the answer carries it, once.
    """

    id: Annotated[str, msgspec.Meta(pattern=GATEWAY_ID_PATTERN, min_length=1, max_length=48)]
    password: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=MIN_IMPORTED_SECRET,
                max_length=256,
                description="machine secret (at least 128 bits)",
            ),
        ]
        | None
    ) = None
    generate_password: _GeneratePassword = msgspec.field(default=False, name="generatePassword")


class GatewayImport(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/gateway-imports``: gateways to register at once.

    Each entry is checked on its own (a mistake is reported with its index); when any
    is wrong, none is registered.

    Attributes:
        gateways: the entries (:class:`ImportedGateway`).
    """

    gateways: Annotated[
        list[ImportedGateway], msgspec.Meta(min_length=1, max_length=MAX_IMPORT_GATEWAYS)
    ]


class GatewaySecret(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``PUT /api/gateways/{id}/password``: the gateway's new secret.

    Attributes:
        password: a secret chosen by a person (stored with scrypt); ``null``/absent:
            none (the gateway cannot log in with Basic auth).
        generate_password: generate the secret instead (``generatePassword``; not
            with ``password``); the answer carries it, once.
    """

    password: _Password | None = None
    generate_password: _GeneratePassword = msgspec.field(default=False, name="generatePassword")


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /api/tokens``: a named API token and its role.

    Attributes:
        name: the token's name, unique for ever (shown in the command log).
        role: what it may do (``read-only``, ``operator``, ``admin``).
    """

    name: Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, min_length=1, max_length=64)]
    role: Role
