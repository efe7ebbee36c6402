"""Command-line client of the control center service's HTTP API.

Commands (each takes ``--api URL`` (env ``NTXCP_API``, default
``http://127.0.0.1:8080``), ``--token T`` (env ``NTXCP_API_TOKEN``, sent as
``Authorization: Bearer T``) and ``--json`` (print the API's JSON as it is)):

=====================================  ==================================================
``ntxcp gateways list``                ``GET /api/gateways``
``ntxcp gateways show ID``             ``GET /api/gateways/{id}``
``ntxcp gateways add ID --password P`` ``POST /api/gateways``
``ntxcp gateways set-password ID ...`` ``PUT /api/gateways/{id}/password``
``ntxcp gateways import FILE``         ``POST /api/gateway-imports``
``ntxcp gateways remove ID``           ``DELETE /api/gateways/{id}``
``ntxcp status ID``                    ``GET /api/gateways/{id}/status``
``ntxcp meter-values ID [filters]``    ``GET /api/gateways/{id}/meter-values``
``ntxcp messages ID [filters]``        ``GET /api/gateways/{id}/messages``
``ntxcp call ID Action [ARG ...]``     ``POST /api/gateways/{id}/calls/{Action}``
``ntxcp commands [filters]``           ``GET /api/commands``
``ntxcp tokens list``                  ``GET /api/tokens``
``ntxcp tokens add NAME --role R``     ``POST /api/tokens``
``ntxcp tokens revoke NAME``           ``DELETE /api/tokens/{name}``
``ntxcp whoami``                       ``GET /api/whoami``
=====================================  ==================================================

The ``commands``, ``tokens`` and ``whoami`` commands are in :mod:`ntxcp.cli.tokens`.

``ntxcp call`` builds the request payload (spec §4) from ``field=value`` arguments
named as on the wire; each value is converted to the field's type in the request class
of :data:`ntxcp.v10.registry.ACTIONS` (integers, booleans; a repeated or single
argument of an array field makes an array); ``field:=JSON`` gives a raw JSON value, and
a single ``{...}`` argument is the whole payload::

    ntxcp call GW-1 Reset type=Soft
    ntxcp call GW-1 GetConfiguration key=HeartbeatInterval key=Vendor.Note
    ntxcp call GW-1 ChangeConfiguration '{"key":"HeartbeatInterval","value":"60"}'

Exit status: 0 success; 1 the API answered an error (its message and code are
printed); 2 usage error; 3 the API cannot be reached.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO
from urllib.parse import quote, urlencode

import msgspec.inspect as mi

from ntxcp.cli import gateway_import
from ntxcp.cli.errors import ApiResponseError, ApiUnreachableError, UsageError
from ntxcp.v10 import AnyRequest, Direction
from ntxcp.v10.registry import ACTIONS

__all__ = [
    "DEFAULT_API",
    "ApiClient",
    "Column",
    "Command",
    "add_parsers",
    "build_payload",
    "command_parser",
    "listing",
    "render",
]

DEFAULT_API = "http://127.0.0.1:8080"
"""Where the control center service's HTTP API listens by default."""

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

Subparsers = Any  # argparse's _SubParsersAction is private; typed loosely on purpose


class ApiClient:
    """A small blocking client of the service's HTTP API (standard library only).

    Args:
        base: the API's base URL, e.g. ``http://127.0.0.1:8080``.
        token: bearer token, if the API requires one.
        timeout: seconds per request.
    """

    def __init__(self, base: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send one request and decode the JSON answer.

        Args:
            method: the HTTP method.
            path: the path below the base URL, starting with ``/``.
            query: query parameters; ``None`` values are left out.
            body: a JSON-serialisable body.

        Returns:
            The decoded JSON answer, ``None`` for an empty one (e.g. 204).

        Raises:
            ApiResponseError: the API answered with a status of 400 or more.
            ApiUnreachableError: no answer (connection, DNS, timeout).
        """
        url = self.base + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _decode(response.read())
        except urllib.error.HTTPError as exc:
            raise _api_error(exc.code, exc.read(), exc.reason) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiUnreachableError(f"cannot reach the API at {self.base}: {reason}") from None


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _api_error(status: int, raw: bytes, reason: object) -> ApiResponseError:
    body = _decode(raw)
    message, code = str(reason), None
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("description") or message)
        code = body.get("code")
        description = body.get("description")
        if description and description != message:
            message = f"{message}: {description}"
        if body.get("path") and not isinstance(body.get("errors"), list):
            message = f"{message} (at {body['path']})"  # an "errors" list names its paths
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    return ApiResponseError(status, message, None if code is None else str(code), body)


# --- ntxcp call: payloads from arguments (spec §4) -------------------------------------


def _field_kinds(request: type[AnyRequest]) -> dict[str, tuple[str, bool]]:
    """Wire name -> (scalar kind, is an array) of every field of a request class."""
    info = mi.type_info(request)
    assert isinstance(info, mi.StructType)
    kinds: dict[str, tuple[str, bool]] = {}
    for field in info.fields:
        kinds[field.encode_name] = _kind(field.type)
    return kinds


def _kind(t: mi.Type) -> tuple[str, bool]:
    if isinstance(t, mi.Metadata):  # extra JSON Schema annotations around the type
        return _kind(t.type)
    if isinstance(t, mi.UnionType):
        real = [member for member in t.types if not isinstance(member, mi.NoneType)]
        if len(real) == 1:
            return _kind(real[0])
        return "json", False
    if isinstance(t, mi.ListType):
        inner, nested = _kind(t.item_type)
        return (inner if not nested else "json"), True
    if isinstance(t, mi.IntType):
        return "int", False
    if isinstance(t, mi.FloatType):
        return "float", False
    if isinstance(t, mi.BoolType):
        return "bool", False
    if isinstance(t, mi.StrType | mi.EnumType | mi.DateTimeType):
        return "str", False
    return "json", False


def _convert(name: str, kind: str, text: str) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise ValueError("expected true or false")
            return lowered == "true"
        if kind == "json":
            return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name}: cannot use {text!r} ({exc})") from None
    return text


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'Reset'?"`` for a near miss (any case, a typo), else ``""``."""
    for candidate in candidates:
        if candidate.casefold() == name.casefold():
            return f" (did you mean {candidate!r}?)"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_payload(action: str, arguments: Sequence[str]) -> dict[str, Any]:
    """The JSON payload of a C→G request from ``field=value`` arguments.

    Args:
        action: the action's wire name (case-sensitive), e.g. ``"Reset"``.
        arguments: ``field=value`` (converted to the field's type), ``field:=JSON``,
            or one JSON object that is the whole payload.

    Returns:
        The payload (not validated: the API does that, spec §2.2 rule 4).

    Raises:
        UsageError: unknown action or field, an action the gateway does not handle,
            or a value that cannot be converted.
    """
    spec = ACTIONS.get(action)
    callable_actions = sorted(
        name
        for name, one in ACTIONS.items()
        if one.direction is not Direction.GATEWAY_TO_CONTROL_CENTER
    )
    if spec is None:
        raise UsageError(
            f"unknown action {action!r}{_did_you_mean(action, callable_actions)}; "
            f"the actions a gateway can be sent are: {', '.join(callable_actions)}"
        )
    if spec.direction is Direction.GATEWAY_TO_CONTROL_CENTER:
        raise UsageError(
            f"{action} is sent by gateways, not to them (spec §4); "
            f"the actions a gateway can be sent are: {', '.join(callable_actions)}"
        )
    if len(arguments) == 1 and arguments[0].lstrip().startswith("{"):
        try:
            payload = json.loads(arguments[0])
        except ValueError as exc:
            raise UsageError(f"the payload is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise UsageError("the payload must be a JSON object")
        return payload
    kinds = _field_kinds(spec.request)
    payload = {}
    for argument in arguments:
        equals = argument.find("=")
        raw = equals > 0 and argument[equals - 1] == ":"  # field:=JSON
        name = argument[: equals - 1 if raw else max(equals, 0)]
        text = argument[equals + 1 :]
        if equals < 0 or not name:
            raise UsageError(
                f"expected field=value, field:=JSON or a JSON object, got {argument!r}"
            )
        if name not in kinds:
            fields = ", ".join(kinds) or "none"
            hint = _did_you_mean(name, list(kinds))
            raise UsageError(f"{action} has no field {name!r}{hint}; its fields: {fields}")
        kind, is_array = kinds[name]
        value = _convert(name, "json" if raw else kind, text)
        if is_array and not raw:
            payload.setdefault(name, []).append(value)
        else:
            payload[name] = value
    return payload


# --- output ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


Column = tuple[str, tuple[str, ...]]
"""A table column: its header and the dotted keys to try, in order."""


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column] | None = None) -> str:
    """Rows as an aligned text table.

    Args:
        rows: the records; nested objects are flattened to dotted keys.
        columns: (header, dotted keys) pairs, the first key present wins; default every
            key, in order of appearance.
    """
    flat = [_flatten(row) for row in rows]
    if columns is None:
        keys: dict[str, None] = {}
        for row in flat:
            keys.update(dict.fromkeys(row))
        columns = [(key, (key,)) for key in keys]
    cells = [[header.upper() for header, _ in columns]]
    cells += [[_cell(_first(row, keys)) for _, keys in columns] for row in flat]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _first(row: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    return None


def render(data: Any) -> str:
    """A readable text form of an API answer: tables for lists, ``key: value`` for objects."""
    if isinstance(data, list):
        if not data:
            return "(none)"
        if all(isinstance(item, dict) for item in data):
            return table(data)
        return "\n".join(_cell(item) for item in data)
    if isinstance(data, dict):
        scalars = {k: v for k, v in data.items() if not _is_records(v)}
        lines: list[str] = []
        flat = _flatten(scalars)
        width = max((len(key) for key in flat), default=0)
        lines += [f"{key.ljust(width)}  {_cell(value)}" for key, value in flat.items()]
        for key, value in data.items():
            if _is_records(value):
                lines += ["", f"{key}:", table(value)]
        return "\n".join(lines)
    return _cell(data)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _items(answer: Any) -> list[dict[str, Any]] | None:
    """The records of a list answer (``{"items": [...]}`` or a bare list), else ``None``."""
    items = answer.get("items") if isinstance(answer, dict) else answer
    if isinstance(items, list) and all(isinstance(item, dict) for item in items):
        return items
    return None


def listing(answer: Any, columns: Sequence[Column], empty: str) -> tuple[Any, str | None]:
    """The answer of a list route, and its records as a table (``empty`` for none)."""
    items = _items(answer)
    if items is None:
        return answer, None  # an unexpected shape: the generic rendering
    return answer, table(items, columns) if items else empty


_GATEWAY_COLUMNS: tuple[Column, ...] = (
    ("id", ("id",)),
    ("connected", ("connected",)),
    ("registration", ("registrationStatus",)),
    ("model", ("bootInfo.dingxGatewayModel", "boot.dingxGatewayModel")),
    ("firmware", ("bootInfo.firmwareVersion", "boot.firmwareVersion")),
    ("last seen", ("lastSeen",)),
)
_METER_COLUMNS: tuple[Column, ...] = (
    ("timestamp", ("timestamp",)),
    ("service", ("serviceId",)),
    ("measurand", ("measurand",)),
    ("value", ("value",)),
    ("unit", ("unit",)),
    ("phase", ("phase",)),
    ("context", ("context",)),
)
_MESSAGE_COLUMNS: tuple[Column, ...] = (
    ("time", ("time",)),
    ("dir", ("direction",)),
    ("type", ("messageType",)),
    ("action", ("action",)),
    ("unique id", ("uniqueId",)),
    ("frame", ("frame",)),
)


# --- commands ------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> ApiClient:
    base = args.api or os.environ.get("NTXCP_API") or DEFAULT_API
    token = args.token or os.environ.get("NTXCP_API_TOKEN") or None
    return ApiClient(base, token)


def _gateway_path(gateway_id: str, suffix: str = "") -> str:
    return f"/api/gateways/{quote(gateway_id, safe='')}{suffix}"


Command = Callable[[argparse.Namespace, ApiClient], tuple[Any, str | None]]
"""Runs a request; returns the answer and, optionally, the text to print instead of it."""


def _list(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    # The list is paged: follow `next` until the last page.
    items: list[Any] = []
    after: str | None = None
    while True:
        page = api.request("GET", "/api/gateways", query={"after": after, "limit": 1000})
        items.extend(page["items"])
        after = page.get("next")
        if not after:
            break
    answer = {"count": len(items), "items": items}
    return listing(answer, _GATEWAY_COLUMNS, "(no gateways)")


def _show(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    return api.request("GET", _gateway_path(args.gateway_id)), None


def _secret_fields(args: argparse.Namespace) -> dict[str, Any]:
    if args.generate_password:
        return {"generatePassword": True}
    return {} if args.password is None else {"password": args.password}


def _add(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    body = {"id": args.gateway_id, **_secret_fields(args)}
    answer = api.request("POST", "/api/gateways", body=body)
    return answer, _with_secret(f"added gateway {args.gateway_id}", answer)


def _set_password(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    body = _secret_fields(args)
    if not body and not args.clear:
        raise UsageError("give --password P, --generate-password or --clear")
    if args.clear:
        body = {"password": None}
    answer = api.request("PUT", _gateway_path(args.gateway_id, "/password"), body=body)
    done = "cleared" if args.clear else "set"
    return answer, _with_secret(f"password of gateway {args.gateway_id} {done}", answer)


def _with_secret(text: str, answer: Any) -> str:
    """The message, and a generated secret on its own line (shown this once only)."""
    if isinstance(answer, dict) and isinstance(answer.get("password"), str):
        return f"{text}; its generated secret (shown once):\n{answer['password']}"
    return text


def _remove(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    answer = api.request("DELETE", _gateway_path(args.gateway_id))
    return answer, f"removed gateway {args.gateway_id}{_readmission_note(args.gateway_id, api)}"


def _readmission_note(gateway_id: str, api: ApiClient) -> str:
    """A second line when the service admits any gateway id (a removed one comes back)."""
    who = api.request("GET", "/api/whoami")
    if not isinstance(who, dict) or who.get("gatewayAdmission") != "open":
        return ""
    return (
        f"\nnote: the service admits any gateway id (--auth none): if {gateway_id} is still "
        "running, it connects again and is recorded anew; to keep it out, register the "
        "gateways you want and run the service with --auth basic (or --unknown-gateways reject)"
    )


def _status(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    return api.request("GET", _gateway_path(args.gateway_id, "/status")), None


def _meter_values(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    query = {
        "service": args.service,
        "measurand": args.measurand,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
    }
    answer = api.request("GET", _gateway_path(args.gateway_id, "/meter-values"), query=query)
    return listing(answer, _METER_COLUMNS, "(no meter values)")


def _messages(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    query = {
        "action": args.action,
        "direction": args.direction,
        "since": args.since,
        "limit": args.limit,
    }
    answer = api.request("GET", _gateway_path(args.gateway_id, "/messages"), query=query)
    items = _items(answer)
    if items is None:
        return answer, None
    rows = [{**item, "frame": _shorten(str(item.get("raw", "")))} for item in items]
    return answer, table(rows, _MESSAGE_COLUMNS) if rows else "(no messages)"


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _call(args: argparse.Namespace, api: ApiClient) -> tuple[Any, str | None]:
    payload = build_payload(args.action, args.arguments)
    path = _gateway_path(args.gateway_id, f"/calls/{quote(args.action, safe='')}")
    if args.timeout is not None:
        # The service waits this long for the gateway (its ?timeout=, spec §2.3.2); the
        # HTTP request itself waits a little longer, for the service's 504 to arrive.
        path += f"?timeout={args.timeout:g}"
        api.timeout = max(api.timeout, args.timeout + 10.0)
    answer = api.request("POST", path, body=payload)
    if answer == {}:
        return answer, f"{args.action}: confirmed (empty confirmation)"
    return answer, None


def run_command(
    command: Command,
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run an API command and print its outcome; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        answer, text = command(args, _client(args))
    except UsageError as exc:
        err.write(f"ntxcp: error: {exc}\n")
        return EXIT_USAGE
    except ApiResponseError as exc:
        err.write(f"error: {exc}\n")
        if args.json and exc.body is not None:
            out.write(json.dumps(exc.body, indent=2) + "\n")
        return EXIT_API_ERROR
    except ApiUnreachableError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_UNREACHABLE
    if args.json:
        out.write(json.dumps(answer, indent=2) + "\n")
    elif text != "":
        out.write((text if text is not None else render(answer)) + "\n")
    return EXIT_OK


# --- parsers -------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 1 <= value <= 600:  # the API's bounds of a call's timeout
        raise argparse.ArgumentTypeError(f"expected seconds from 1 to 600, got {text!r}")
    return value


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("API")
    group.add_argument(
        "--api", metavar="URL", help=f"HTTP API base URL (env NTXCP_API; default {DEFAULT_API})"
    )
    group.add_argument("--token", help="bearer token (env NTXCP_API_TOKEN)")
    group.add_argument("--json", action="store_true", help="print the API's raw JSON")
    return common


def command_parser(
    subparsers: Subparsers, name: str, command: Command, help_text: str
) -> argparse.ArgumentParser:
    """A sub-command that runs ``command`` against the API (``--api``, ``--token``, ``--json``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, parents=[_common()]
    )
    parser.set_defaults(func=lambda args: run_command(command, args))
    return parser


def _secret_options(parser: argparse.ArgumentParser) -> Any:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password", help="a secret chosen by a person (HTTP Basic auth, spec §1; scrypt)"
    )
    group.add_argument(
        "--generate-password",
        action="store_true",
        help="let the control center generate the secret (256 bits, printed once)",
    )
    return group


def add_parsers(subparsers: Subparsers) -> None:
    """Add ``gateways``, ``status``, ``meter-values``, ``messages`` and ``call``.

    Args:
        subparsers: the object returned by the root parser's ``add_subparsers()``.
    """
    gateways = subparsers.add_parser(
        "gateways", help="list, show, add or remove gateways of the control center"
    )
    actions = gateways.add_subparsers(dest="gateways_command", required=True, metavar="ACTION")
    command_parser(actions, "list", _list, "list the known gateways")
    command_parser(actions, "show", _show, "show one gateway").add_argument(
        "gateway_id", metavar="ID"
    )
    add = command_parser(actions, "add", _add, "register a gateway and its password")
    add.add_argument("gateway_id", metavar="ID")
    _secret_options(add)
    set_password = command_parser(
        actions,
        "set-password",
        _set_password,
        "set, generate or clear the password of a gateway (closes its connection)",
    )
    set_password.add_argument("gateway_id", metavar="ID")
    _secret_options(set_password).add_argument(
        "--clear", action="store_true", help="remove the password (Basic auth refused)"
    )
    imports = command_parser(
        actions,
        "import",
        gateway_import.import_gateways,
        "register many gateways from a CSV or JSON-lines file (id, secret or 'generate')",
    )
    imports.add_argument("file", metavar="FILE", help="id,secret lines (see docs/service.md)")
    imports.add_argument(
        "--output",
        metavar="OUT",
        help="write the generated secrets here (a new file, mode 0600; default: stdout)",
    )
    remove = command_parser(actions, "remove", _remove, "forget a gateway")
    remove.add_argument("gateway_id", metavar="ID")

    command_parser(
        subparsers, "status", _status, "the last reported status of a gateway"
    ).add_argument("gateway_id", metavar="ID")

    meter = command_parser(
        subparsers, "meter-values", _meter_values, "stored meter values of a gateway"
    )
    meter.add_argument("gateway_id", metavar="ID")
    meter.add_argument("--service", type=int, metavar="S", help="only this service id")
    meter.add_argument("--measurand", help="only this measurand, e.g. Power.Active.Import")
    meter.add_argument("--since", metavar="T", help="not before this RFC 3339 time")
    meter.add_argument("--until", metavar="T", help="not after this RFC 3339 time")
    meter.add_argument("--limit", type=int, metavar="N", help="at most N values")

    messages = command_parser(subparsers, "messages", _messages, "the message log of a gateway")
    messages.add_argument("gateway_id", metavar="ID")
    messages.add_argument("--action", help="only this action")
    messages.add_argument("--direction", choices=("in", "out"), help="only frames in or out")
    messages.add_argument("--since", metavar="T", help="not before this RFC 3339 time")
    messages.add_argument("--limit", type=int, metavar="N", help="at most N messages")

    call = command_parser(subparsers, "call", _call, "send a C→G request to a connected gateway")
    call.add_argument("gateway_id", metavar="ID")
    call.add_argument("action", metavar="Action", help="e.g. Reset, GetConfiguration")
    call.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="S",
        help="seconds to wait for the gateway's answer (default: the service's --call-timeout)",
    )
    call.add_argument(
        "arguments",
        nargs="*",
        metavar="ARG",
        help="field=value, field:=JSON, or one JSON object (the whole payload)",
    )
