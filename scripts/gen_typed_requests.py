"""Generate ``src/ntxcp/endpoints/typed_requests.py``: one typed method per action.

The typed request methods of the three endpoint classes (``ControlCenter``, the
asyncio ``Gateway`` and the blocking ``ntxcp.sync.Gateway``) are thin: each builds the
request from its arguments and hands it to ``send_request``. They are generated here
from the request classes of :mod:`ntxcp.v10` (fields, types, defaults and the
``Attributes`` section of their docstrings), so there is one definition of them:

* required fields are positional, optional ones keyword-only (``timeout`` last);
* an enum field takes the enum or its wire value (``Literal[...]``), so a misspelled
  value is a type error, and at run time a :class:`~ntxcp.errors.PayloadValidationError`;
* a list field takes any sequence.

Usage: ``python scripts/gen_typed_requests.py`` (rewrites the module) or
``--check`` (exit 1 when it is out of date; the test suite runs the same check).
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
import textwrap
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec

from ntxcp.v10 import ACTIONS, ActionSpec, Direction, core, firmware, remotetrigger, types

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "ntxcp" / "endpoints" / "typed_requests.py"

MODULES = {
    core.__name__: "core",
    firmware.__name__: "firmware",
    remotetrigger.__name__: "remotetrigger",
    types.__name__: "types",
}

SUMMARIES = {
    "BootNotification": "Tell the control center the gateway booted (spec §4.1 BootNotification).",
    "Heartbeat": "Tell the control center the gateway is alive (spec §4.1 Heartbeat).",
    "StatusNotification": (
        "Report the status of a service (``\"0\"``: the whole gateway; spec §4.1)."
    ),
    "MeterValues": "Send sampled meter values of a service (spec §4.1 MeterValues).",
    "DataTransfer": "Send vendor-specific data to the {peer} (spec §4.1 DataTransfer).",
    "ChangeConfiguration": (
        "Set one configuration key on a gateway (spec §4.1 ChangeConfiguration)."
    ),
    "GetConfiguration": "Read configuration keys of a gateway (all when ``keys`` is empty; §4.1).",
    "ClearCache": "Ask a gateway to clear its cache (spec §4.1 ClearCache).",
    "Reset": "Ask a gateway to reset (spec §4.1 Reset).",
    "CaptureProcess": "Capture datapoint values of one service process (spec §4.1 CaptureProcess).",
    "GetDiagnostics": "Ask a gateway to upload diagnostics to ``location`` (spec §4.2).",
    "DiagnosticsStatusNotification": "Report the progress of a diagnostics upload (spec §4.2).",
    "UpdateFirmware": "Ask a gateway to fetch and install firmware from ``location`` (spec §4.2).",
    "FirmwareStatusNotification": "Report the progress of a firmware update (spec §4.2).",
    "TriggerMessage": "Ask a gateway to send one of its messages now (spec §4.3 TriggerMessage).",
}

RENAMED = {("Reset", "type"): "reset_type", ("GetConfiguration", "key"): "keys"}
"""Arguments named apart from their field (``type`` shadows a builtin; ``keys`` reads better)."""

POSITIONAL_OPTIONAL = {("GetConfiguration", "key")}
"""Optional fields that may still be passed by position."""


@dataclass(frozen=True)
class Side:
    """One endpoint class's flavour of the typed methods."""

    class_name: str
    doc: str
    sends: frozenset[Direction]
    gateway_id: bool
    blocking: bool
    peer: str
    callback_forms: bool = False


SIDES = (
    Side(
        "ControlCenterRequests",
        "The C→G requests of :class:`~ntxcp.ControlCenter`, by gateway id.",
        frozenset({Direction.CONTROL_CENTER_TO_GATEWAY, Direction.BOTH}),
        gateway_id=True,
        blocking=False,
        peer="gateway",
        callback_forms=True,  # the Go API's form: Reset(clientId, callback, ...)
    ),
    Side(
        "GatewayRequests",
        "The G→C requests of :class:`~ntxcp.Gateway` (asyncio).",
        frozenset({Direction.GATEWAY_TO_CONTROL_CENTER, Direction.BOTH}),
        gateway_id=False,
        blocking=False,
        peer="control center",
    ),
    Side(
        "BlockingGatewayRequests",
        "The G→C requests of :class:`ntxcp.sync.Gateway` (blocking).",
        frozenset({Direction.GATEWAY_TO_CONTROL_CENTER, Direction.BOTH}),
        gateway_id=False,
        blocking=True,
        peer="control center",
    ),
)


def snake(name: str) -> str:
    """``"BootNotification"`` -> ``"boot_notification"``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a class docstring, by attribute name."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    current = None
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if not stripped:
            break
        match = re.match(r"^(\w+): (.*)$", stripped)
        if match and len(line) - len(line.lstrip()) == 8:
            current = match[1]
            docs[current] = match[2]
        elif current is not None:
            docs[current] += " " + stripped
    return docs


class Renderer:
    """Turns field types into annotation text, collecting the enum aliases used."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def annotation(self, tp: object) -> str:
        """The parameter annotation for a field type."""
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            return self.annotation(typing.get_args(tp)[0])
        if origin in (typing.Union, __import__("types").UnionType):
            return " | ".join(self.annotation(arg) for arg in typing.get_args(tp))
        if origin is list:
            return f"Sequence[{self.annotation(typing.get_args(tp)[0])}]"
        if tp is type(None):
            return "None"
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            alias = f"{tp.__name__}Value"
            values = ", ".join(f'"{member.value}"' for member in tp)
            self.aliases[alias] = f"{self.qualified(tp)} | Literal[{values}]"
            return alias
        if tp in (str, int, float, bool):
            return typing.cast(type, tp).__name__
        if tp is datetime:
            return "datetime"
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self.qualified(tp)
        raise ValueError(f"no rendering for {tp!r}")

    @staticmethod
    def qualified(tp: type) -> str:
        """``core.ResetType`` for a class of the message modules."""
        return f"{MODULES[tp.__module__]}.{tp.__name__}"


def enum_of(tp: object) -> type[enum.Enum] | None:
    """The enum class inside a field type (``E``, ``E | None``), if any."""
    if typing.get_origin(tp) is typing.Annotated:
        return enum_of(typing.get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    for arg in typing.get_args(tp):
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return arg
    return None


def is_list(tp: object) -> bool:
    """Whether a field type is a list (``list[T]``, ``list[T] | None``)."""
    if typing.get_origin(tp) is typing.Annotated:
        return is_list(typing.get_args(tp)[0])
    if typing.get_origin(tp) is list:
        return True
    return any(typing.get_origin(arg) is list for arg in typing.get_args(tp))


def method(spec: ActionSpec, side: Side, renderer: Renderer, *, callback: bool = False) -> str:
    """The source of one typed method (``callback``: its ``<name>_async`` form)."""
    cls = spec.request
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = attribute_docs(cls)
    params: list[str] = ["self"]
    args_doc: list[tuple[str, str]] = []
    if side.gateway_id:
        params.append("gateway_id: str")
        args_doc.append(("gateway_id", "the gateway to send to."))
    confirmation = renderer.qualified(spec.confirmation)
    if callback:
        params.append(f"callback: Callable[[{confirmation} | None, BaseException | None], object]")
        args_doc.append(
            (
                "callback",
                "called once with the confirmation and ``None``, or ``None`` and the error.",
            )
        )
    keyword_only = False
    body: list[str] = []
    for field in msgspec.structs.fields(cls):
        name = RENAMED.get((spec.action, field.name), field.name)
        tp = hints[field.name]
        annotation = renderer.annotation(tp)
        optional = not field.required
        if optional and (spec.action, field.name) not in POSITIONAL_OPTIONAL and not keyword_only:
            params.append("*")
            keyword_only = True
        params.append(f"{name}: {annotation}" + (" = None" if optional else ""))
        args_doc.append((name, docs.get(field.name, "see the request class.")))
        enum_cls = enum_of(tp)
        if enum_cls is not None:
            value = f'to_enum({renderer.qualified(enum_cls)}, {name}, "{field.encode_name}")'
            if optional:
                value = f"None if {name} is None else {value}"
        elif is_list(tp):
            value = f"list({name}) if {name} else None" if optional else f"list({name})"
        else:
            value = name
        body.append(f"{field.name}={value}")
    if not keyword_only:
        params.append("*")
    params.append("timeout: float | None = None")
    args_doc.append(("timeout", "seconds to wait for the answer (default ``call_timeout``)."))
    request = renderer.qualified(cls)
    name = snake(spec.action) + ("_async" if callback else "")
    summary = SUMMARIES[spec.action].format(peer=side.peer)
    await_ = "" if side.blocking or callback else "await "
    def_ = "def" if side.blocking or callback else "async def"
    target = "gateway_id, " if side.gateway_id else ""
    returns = "None" if callback else confirmation
    lines = [f"    {def_} {name}(", *(f"        {p}," for p in params), f"    ) -> {returns}:"]
    lines.append(f'        """{summary}')
    lines.append("")
    if callback:
        lines.append("        Returns at once; ``callback`` runs exactly once with the outcome")
        lines.append("        (the Go API's form). Errors that prevent sending are raised here.")
        lines.append("")
    lines.append("        Args:")
    for arg, text in args_doc:
        lines.append(
            textwrap.fill(
                f"{arg}: {text}", width=92, initial_indent=" " * 12, subsequent_indent=" " * 16
            )
        )
    if not callback:
        lines.append("")
        lines.append("        Returns:")
        lines.append("            The confirmation.")
    lines.append("")
    lines.append("        Raises:")
    lines.append("            PayloadValidationError: an argument breaks a rule of spec §4.")
    sender = "send_request_async" if callback else "send_request"
    lines.append(f"            NtxcpError: any error :meth:`{sender}` raises.")
    lines.append('        """')
    call = f"{request}({', '.join(body)})"
    if "__post_init__" in vars(cls):  # a whole-message rule: its ValueError made ours
        call = f"build(lambda: {call})"
    lines.append(f"        request = {call}")
    if callback:
        lines.append(f"        self.send_request_async({target}request, callback, timeout=timeout)")
    else:
        lines.append(f"        return {await_}self.send_request({target}request, timeout=timeout)")
    return "\n".join(lines)


def send_request_stub(side: Side) -> str:
    """The abstract ``send_request`` (and ``send_request_async``) each endpoint implements."""
    def_ = "def" if side.blocking else "async def"
    target = "gateway_id: str, " if side.gateway_id else ""
    callback_stub = [
        "",
        "    def send_request_async(",
        "        self,",
        f"        {target}request: Request[C],",
        "        callback: Callable[[C | None, BaseException | None], object],",
        "        *,",
        "        timeout: float | None = None,",
        "    ) -> None:",
        '        """Send a request; ``callback`` gets its outcome (each endpoint\'s own)."""',
        "        raise NotImplementedError",
    ]
    return "\n".join(
        [
            f"    {def_} send_request(",
            f"        self, {target}request: Request[C], *, timeout: float | None = None",
            "    ) -> C:",
            '        """Send a request and wait for its confirmation (each endpoint\'s own)."""',
            "        raise NotImplementedError",
            *(callback_stub if side.callback_forms else []),
        ]
    )


def generate() -> str:
    """The whole module's source."""
    renderer = Renderer()
    classes: list[str] = []
    for side in SIDES:
        methods = [send_request_stub(side)]
        for spec in ACTIONS.values():
            if spec.direction in side.sends:
                methods.append(method(spec, side, renderer))
                if side.callback_forms:
                    methods.append(method(spec, side, renderer, callback=True))
        classes.append(
            f"class {side.class_name}:\n"
            f'    """{side.doc}\n\n'
            "    Each method builds its request and hands it to ``send_request``.\n"
            '    """\n\n' + "\n\n".join(methods) + "\n"
        )
    aliases = "\n".join(
        f"{name}: TypeAlias = {value}" for name, value in sorted(renderer.aliases.items())
    )
    header = '''"""Typed request methods of the endpoints, one per action (generated: do not edit).

Generated by ``scripts/gen_typed_requests.py`` from the request classes of
:mod:`ntxcp.v10`; the test suite checks that it is up to date. Each method builds its
request and hands it to the endpoint's ``send_request``, which is generic over the
confirmation class (``send_request(Request[C]) -> C``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal, TypeAlias, TypeVar

from ntxcp.v10 import Confirmation, Request, core, firmware, remotetrigger, types
from ntxcp.v10.codec import build, to_enum

__all__ = ["BlockingGatewayRequests", "ControlCenterRequests", "GatewayRequests"]

C = TypeVar("C", bound=Confirmation)

'''
    return header + aliases + "\n\n\n" + "\n\n".join(classes)


def formatted(source: str) -> str:
    """The source as ``ruff format`` writes it."""
    import subprocess

    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return result.stdout


def main() -> int:
    """Write the module, or with ``--check`` say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when out of date")
    args = parser.parse_args()
    source = formatted(generate())
    if args.check:
        if TARGET.read_text(encoding="utf-8") != source:
            print(f"{TARGET} is out of date: run python scripts/gen_typed_requests.py")
            return 1
        return 0
    TARGET.write_text(source, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
