"""Generate ``docs/api.md``, the reference of ntxcp's public API, from the docstrings.

Usage::

    python scripts/gen_api_docs.py           # write docs/api.md
    python scripts/gen_api_docs.py --check   # exit 1 if docs/api.md is out of date

Every name in the ``__all__`` of the modules listed in :data:`SECTIONS` is documented
once, in the first section that exports it: classes with their constructor signature,
bases, docstring and public methods and properties; payload structs with a table of
their fields and wire names; enums with their members; functions with their signature.
Google-style docstring sections (``Args:``, ``Returns:``, ...) become Markdown lists.
The output depends only on the code, so a test can check that it is up to date.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import inspect
import re
import sys
import textwrap
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "api.md"

SECTIONS = [
    "ntxcp",
    "ntxcp.endpoints",
    "ntxcp.endpoints.store",
    "ntxcp.endpoints.typed_requests",
    "ntxcp.sync",
    "ntxcp.errors",
    "ntxcp.transport",
    "ntxcp.v10",
    "ntxcp.v10.core",
    "ntxcp.v10.firmware",
    "ntxcp.v10.remotetrigger",
    "ntxcp.v10.types",
    "ntxcp.v10.codec",
    "ntxcp.v10.schema",
    "ntxcp.rpc",
]
"""The modules documented, in this order; the top-level ``ntxcp`` only lists its names."""

_SECTION_NAMES = (
    "Args",
    "Arguments",
    "Attributes",
    "Class attributes",
    "Raises",
    "Returns",
    "Yields",
    "Example",
    "Examples",
    "Note",
    "Notes",
)
_SECTION = re.compile(rf"^({'|'.join(_SECTION_NAMES)}):\s*$")
_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_NAME = re.compile(r"\*{0,2}[\w.]+( \([^)]*\))?(, [\w.]+)*")  # "x", "x (int)", "A, B"


# --- docstrings to Markdown -------------------------------------------------------------


def _inline(text: str) -> str:
    """Turn reST inline markup into Markdown: roles and double backquotes become code."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return text.replace("``", "`")


def _entries(lines: list[str]) -> list[str]:
    """The body of an Args-like section as a Markdown list."""
    body = textwrap.dedent("\n".join(lines)).splitlines()
    items: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if line.startswith((" ", "\t")) and items:
            items[-1] += " " + line.strip()
            continue
        name, sep, rest = line.partition(": ")
        if sep and _NAME.fullmatch(name.strip()):
            items.append(f"- `{name.strip()}`: {rest.strip()}")
        elif items and not sep:
            items[-1] += " " + line.strip()
        else:
            items.append(f"- {line.strip()}")
    return [_inline(item) for item in items]


def docstring_markdown(doc: str | None) -> str:
    """Turn a Google-style docstring into Markdown."""
    if not doc:
        return ""
    lines = doc.expandtabs().splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _SECTION.match(line)
        if match:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                j += 1
            body = lines[i + 1 : j]
            title = match.group(1)
            out.append(f"**{title}:**")
            out.append("")
            if title in ("Returns", "Yields", "Note", "Notes", "Example", "Examples"):
                out.extend(_blocks(textwrap.dedent("\n".join(body)).splitlines()))
            else:
                out.extend(_entries(body))
            out.append("")
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(_blocks(out)).strip() + "\n"


def _blocks(lines: list[str]) -> list[str]:
    """Literal blocks (a line ending in ``::`` then indented lines) become code fences."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.lstrip().startswith("- "):
            text = line.rstrip()[:-2].rstrip()
            if text:
                out.append(_inline(text) + ":")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or lines[k].startswith(" ")):
                k += 1
            code = textwrap.dedent("\n".join(lines[j:k])).strip("\n")
            out.extend(["", "```" + _language(code), code, "```", ""])
            i = k
            continue
        out.append(line if line.startswith(("- ", "**", "```")) else _inline(line))
        i += 1
    return out


def _language(code: str) -> str:
    """``python`` for a block that parses as Python, else ``text``."""
    try:
        compile(
            code, "<docstring>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
    except SyntaxError:
        return "text"
    return "python"


# --- rendering of objects ---------------------------------------------------------------


def _clean(text: str) -> str:
    return _ADDRESS.sub("", text)


class _Written(str):
    """An annotation shown as written in the source, without quotes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _unquoted(signature: inspect.Signature) -> inspect.Signature:
    """Show postponed (string) annotations as they were written."""

    def written(annotation: Any) -> Any:
        return _Written(annotation) if isinstance(annotation, str) else annotation

    parameters = [
        p.replace(annotation=written(p.annotation)) for p in signature.parameters.values()
    ]
    return signature.replace(
        parameters=parameters, return_annotation=written(signature.return_annotation)
    )


def _signature(obj: Any, name: str) -> str | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return _clean(f"{name}{_unquoted(signature)}")


def _method_signature(function: Any, name: str) -> str | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        signature = signature.replace(parameters=parameters[1:])
    return _clean(f"{name}{_unquoted(signature)}")


def _code(text: str) -> list[str]:
    return ["```python", text, "```", ""]


def _value(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return _clean(repr(value))


def _raw_annotations(cls: type) -> dict[str, str]:
    """Field annotations as written in the source (strings under postponed evaluation)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for key, value in vars(klass).get("__annotations__", {}).items():
            found[key] = value if isinstance(value, str) else inspect.formatannotation(value)
    return found


def _struct_fields(cls: type[msgspec.Struct]) -> list[str]:
    annotations = _raw_annotations(cls)
    rows = ["| field | on the wire | type | default |", "|---|---|---|---|"]
    for info in msgspec.structs.fields(cls):
        if info.required:
            default = "required"
        elif info.default is not msgspec.NODEFAULT:
            default = f"`{_value(info.default)}`"
        else:
            default = "(factory)"
        kind = annotations.get(info.name, inspect.formatannotation(info.type))
        kind = kind.replace("|", "\\|")
        rows.append(f"| `{info.name}` | `{info.encode_name}` | `{kind}` | {default} |")
    return [*rows, ""]


def _own_doc(cls: type, key: str) -> str | None:
    """The docstring of a member, inherited only from this package's own classes."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("ntxcp"):
            continue
        candidate = vars(klass).get(key)
        if candidate is None:
            continue
        if isinstance(candidate, (staticmethod, classmethod)):
            candidate = candidate.__func__
        doc = getattr(candidate, "__doc__", None)
        if doc:
            return inspect.cleandoc(doc)
    return None


def _members(cls: type) -> list[str]:
    """Public methods, properties and class constants defined on ``cls`` itself."""
    out: list[str] = []
    constants: list[str] = []
    for key, member in vars(cls).items():
        if key.startswith("_") or (isinstance(member, type) and not key.isupper()):
            continue
        if isinstance(member, property):
            out.append(f"#### `{cls.__name__}.{key}` (property)")
            out.append("")
            out.append(docstring_markdown(_own_doc(cls, key)))
        elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
            function = (
                member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            )
            kind = "async method" if inspect.iscoroutinefunction(function) else "method"
            if isinstance(member, staticmethod):
                kind = "static method"
            elif isinstance(member, classmethod):
                kind = "class method"
            out.append(f"#### `{cls.__name__}.{key}` ({kind})")
            out.append("")
            signature = _method_signature(function, key)
            if signature:
                out.extend(_code(signature))
            out.append(docstring_markdown(_own_doc(cls, key)))
        elif key.isupper() and not inspect.ismemberdescriptor(member):
            constants.append(f"- `{key}` = `{_value(member)}`")
    if constants:
        out[:0] = ["**Class attributes:**", "", *constants, ""]
    return out


def render_class(cls: type, name: str) -> list[str]:
    """One class: signature, bases, docstring, fields or members, methods."""
    out = [f"### class `{name}`", ""]
    is_enum = issubclass(cls, enum.Enum)
    is_struct = issubclass(cls, msgspec.Struct)
    is_protocol = getattr(cls, "_is_protocol", False)
    if is_struct:
        out.append(f"Built with keyword arguments, one per field (see **Fields**): `{name}(...)`.")
        out.append("")
    elif not (is_enum or is_protocol):
        signature = _signature(cls, name)
        if signature:
            out.extend(_code(signature))
    bases = [b for b in cls.__bases__ if b not in (object, msgspec.Struct, typing.Generic)]
    if bases:
        out.append("Bases: " + ", ".join(f"`{_base_name(b)}`" for b in bases))
        out.append("")
    doc = cls.__doc__  # its own: never a docstring inherited from another project's class
    out.append(docstring_markdown(inspect.cleandoc(doc) if doc else None))
    if is_enum:
        out.append("**Members:**")
        out.append("")
        out.extend(f"- `{member.name}` = `{member.value!r}`" for member in cls)  # type: ignore[var-annotated]
        out.append("")
    if is_struct:
        out.append("**Fields:**")
        out.append("")
        out.extend(_struct_fields(cls))
    if not is_enum:
        out.extend(_members(cls))
    return out


def _base_name(base: type) -> str:
    module = base.__module__
    if module == "builtins":
        return base.__qualname__
    public = module.split("._")[0] if "._" in module else module
    return f"{public}.{base.__qualname__}"


def render_function(function: Any, name: str) -> list[str]:
    """One function: signature and docstring."""
    kind = "async function" if inspect.iscoroutinefunction(function) else "function"
    out = [f"### {kind} `{name}`", ""]
    signature = _signature(function, name)
    if signature:
        out.extend(_code(signature))
    out.append(docstring_markdown(inspect.getdoc(function)))
    return out


def _assignments(module: ModuleType) -> dict[str, tuple[str, str | None]]:
    """Module-level assignments: name -> (source of the value, docstring written after)."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body
    found: dict[str, tuple[str, str | None]] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        doc = None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = inspect.cleandoc(following.value.value)
        text = " ".join((ast.get_source_segment(source, value) or "").split())
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = (text, doc)
    return found


def render_constant(module: ModuleType, value: Any, name: str) -> list[str]:
    """A constant or type alias, shown as assigned in the source (when short)."""
    assigned = _assignments(module).get(name)
    for candidate in _submodules(module):  # re-exported: look where it was assigned
        if assigned is not None:
            break
        assigned = _assignments(candidate).get(name)
    text, doc = assigned if assigned is not None else ("", None)
    kind = "type alias" if _is_alias(value) else "constant"
    if text and len(text) <= 100:
        shown = f"`{name} = {text}`"
    else:
        shown = f"`{name}` ({type(value).__name__})"
    out = [f"### {kind} {shown}", ""]
    if doc:
        out.append(docstring_markdown(doc))
    return out


def _submodules(module: ModuleType) -> list[ModuleType]:
    prefix = module.__name__ + "."
    return [m for n, m in sorted(sys.modules.items()) if n.startswith(prefix) and m is not None]


# --- the document -------------------------------------------------------------------------


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def render() -> str:
    """The whole of ``docs/api.md``."""
    modules = [importlib.import_module(name) for name in SECTIONS]
    documented: dict[int, str] = {}
    parts: list[str] = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand.",
        "",
        "The package's own modules and what they export. The programs built on them (the",
        "control center service and the gateway simulator) are described in the README.",
        "",
        "**Modules:** " + ", ".join(f"[`{m}`](#{_anchor(m)})" for m in SECTIONS),
        "",
    ]
    top = modules[0]
    for module in modules:
        parts.append(f"## {module.__name__}")
        parts.append("")
        parts.append(docstring_markdown(inspect.getdoc(module)))
        names = list(getattr(module, "__all__", []))
        if module is top:
            parts.extend(_index(top, names))
            continue
        for name in names:
            value = getattr(module, name)
            if isinstance(value, ModuleType):
                continue
            key = id(value)
            if key in documented and (inspect.isclass(value) or callable(value)):
                parts.append(f"- `{name}`: see `{documented[key]}` above.")
                parts.append("")
                continue
            if inspect.isclass(value):
                documented[key] = f"{module.__name__}.{name}"
                parts.extend(render_class(value, name))
            elif callable(value) and not _is_alias(value):
                documented[key] = f"{module.__name__}.{name}"
                parts.extend(render_function(value, name))
            else:
                parts.extend(render_constant(module, value, name))
    text = "\n".join(parts)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip() + "\n"


def _is_alias(value: Any) -> bool:
    """Whether ``value`` is a typing construct (``Annotated[...]``, a union) and not code."""
    return typing.get_origin(value) is not None or type(value).__module__ == "typing"


def _index(module: ModuleType, names: list[str]) -> list[str]:
    """The top-level package: where each of its names is documented."""
    out = ["| name | documented in |", "|---|---|"]
    for name in names:
        value = getattr(module, name)
        if name == "__version__":
            out.append(f"| `__version__` | `{value}` |")
            continue
        home = value.__module__ if hasattr(value, "__module__") else module.__name__
        section = next(
            (s for s in SECTIONS[1:] if s == home or home.startswith(s + ".")),
            home,
        )
        if section == "ntxcp.endpoints.store":
            section = "ntxcp.endpoints"
        section = _section_of(name, value, section)
        out.append(f"| `{name}` | [`{section}`](#{_anchor(section)}) |")
    return [*out, ""]


def _section_of(name: str, value: Any, guess: str) -> str:
    """The first documented section whose ``__all__`` exports ``value``."""
    for section in SECTIONS[1:]:
        module = importlib.import_module(section)
        if name in getattr(module, "__all__", ()) and getattr(module, name) is value:
            return section
    return guess


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``docs/api.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/gen_api_docs.py")
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
