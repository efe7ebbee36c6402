"""The import direction between the layers of ``ntxcp``, checked on the source with ``ast``.

Layers, bottom up::

    errors  <-  v10  <-  rpc  <-  endpoints  <-  sync, service, ...
    errors  <-  transport  <-  endpoints

* ``ntxcp.errors`` imports nothing of ntxcp;
* ``ntxcp.v10`` imports only ``ntxcp.errors`` (and itself);
* ``ntxcp.rpc`` imports only ``ntxcp.errors`` and ``ntxcp.v10`` (and itself);
* ``ntxcp.transport`` imports only ``ntxcp.errors`` (and itself);
* nothing below ``ntxcp.endpoints`` imports ``endpoints``, ``sync`` or ``service``.

Every import counts: at module level, inside functions, under ``if TYPE_CHECKING:``,
relative imports, and ``importlib.import_module``/``__import__`` with a literal name.
Importing the ``ntxcp`` package itself counts as importing the top layer (its
``__init__`` pulls in the endpoints).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "ntxcp"

ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset({"errors"}),
    "v10": frozenset({"errors", "v10"}),
    "rpc": frozenset({"errors", "v10", "rpc"}),
    "transport": frozenset({"errors", "transport"}),
}
BELOW_ENDPOINTS = ("errors", "v10", "rpc", "transport")
ABOVE = frozenset({"endpoints", "sync", "service"})


def source_modules(src: Path = SRC) -> dict[str, tuple[str, bool]]:
    """Every module of the package: dotted name -> (source, is a package)."""
    modules: dict[str, tuple[str, bool]] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path.read_text(encoding="utf-8"), is_package)
    return modules


def _resolve(base: str, name: str | None, known: Mapping[str, object]) -> str:
    """``from base import name``: the submodule when it is one, else ``base``."""
    if name is not None and f"{base}.{name}" in known:
        return f"{base}.{name}"
    return base


def imports_of(module: str, source: str, is_package: bool, known: Mapping[str, object]) -> set[str]:
    """The ntxcp modules that ``module`` imports, as dotted names."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(_resolve(base, alias.name, known) for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                called in {"import_module", "__import__"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.add(first.value)
    return {name for name in found if name == ROOT or name.startswith(ROOT + ".")}


def layer(module: str) -> str:
    """``ntxcp.rpc.frames`` -> ``rpc``; the package itself is its own (top) layer."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def violations(
    modules: Mapping[str, tuple[str, bool]], allowed: Mapping[str, frozenset[str]]
) -> list[str]:
    """Every import that breaks ``allowed`` (layer -> layers it may import)."""
    problems = []
    for module, (source, is_package) in sorted(modules.items()):
        own = layer(module)
        if own not in allowed:
            continue
        for target in sorted(imports_of(module, source, is_package, modules)):
            if layer(target) not in allowed[own]:
                problems.append(f"{module} imports {target}")
    return problems


MODULES = source_modules()


def test_the_source_tree_is_found() -> None:
    for name in (
        "ntxcp",
        "ntxcp.errors",
        "ntxcp.v10.codec",
        "ntxcp.rpc.connection",
        "ntxcp.transport",
        "ntxcp.endpoints",
    ):
        assert name in MODULES
    source, is_package = MODULES["ntxcp.rpc.connection"]
    assert not is_package
    assert "ntxcp.v10.codec" in imports_of("ntxcp.rpc.connection", source, False, MODULES)


@pytest.mark.parametrize("lower", sorted(ALLOWED))
def test_layer_imports_only_what_is_below(lower: str) -> None:
    assert [m for m in MODULES if layer(m) == lower], f"no module in ntxcp.{lower}"
    assert violations(MODULES, {lower: ALLOWED[lower]}) == []


@pytest.mark.parametrize("lower", BELOW_ENDPOINTS)
def test_nothing_below_endpoints_imports_the_layers_above(lower: str) -> None:
    everything_but_above = frozenset(layer(m) for m in MODULES) - ABOVE
    assert violations(MODULES, {lower: everything_but_above}) == []


# --- the checker itself -----------------------------------------------------------------------


FAKE: dict[str, tuple[str, bool]] = {
    "ntxcp": ("from ntxcp.endpoints import Gateway\n", True),
    "ntxcp.errors": ("import enum\n", False),
    "ntxcp.endpoints": ("", True),
    "ntxcp.sync": ("", True),
    "ntxcp.service": ("", True),
    "ntxcp.transport": ("from . import _base, connect\nfrom ._base import Link\n", True),
    "ntxcp.transport._base": ("from ntxcp import errors\n", False),
    "ntxcp.v10": ("from ntxcp.v10 import core\n", True),
    "ntxcp.v10.core": ("from ..errors import CallError\nfrom .types import X\n", False),
    "ntxcp.v10.types": ("from ntxcp.errors import ErrorCode\n", False),
    "ntxcp.rpc": ("from ntxcp.rpc.frames import encode\n", True),
    "ntxcp.rpc.frames": ("from ntxcp.v10 import codec\nimport ntxcp.errors\n", False),
}


def test_checker_accepts_allowed_imports() -> None:
    assert violations(FAKE, ALLOWED) == []
    assert imports_of("ntxcp.v10.core", *FAKE["ntxcp.v10.core"], FAKE) == {
        "ntxcp.errors",
        "ntxcp.v10.types",
    }
    # `from . import connect`: not a module, so the package itself.
    assert imports_of("ntxcp.transport", *FAKE["ntxcp.transport"], FAKE) == {
        "ntxcp.transport",
        "ntxcp.transport._base",
    }


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("ntxcp.errors", "from ntxcp.v10 import core\n", "ntxcp.v10.core"),
        ("ntxcp.errors", "import ntxcp\n", "ntxcp"),
        ("ntxcp.v10.types", "from ntxcp.rpc import frames\n", "ntxcp.rpc.frames"),
        ("ntxcp.v10.types", "def f():\n    from ..transport import Link\n", "ntxcp.transport"),
        ("ntxcp.rpc.frames", "from ntxcp.transport import Link\n", "ntxcp.transport"),
        ("ntxcp.rpc.frames", "from .. import endpoints\n", "ntxcp.endpoints"),
        ("ntxcp.rpc.frames", "from ntxcp import Gateway\n", "ntxcp"),
        (
            "ntxcp.rpc.frames",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ntxcp.sync\n",
            "ntxcp.sync",
        ),
        ("ntxcp.transport._base", "from ntxcp.v10 import Request\n", "ntxcp.v10"),
        (
            "ntxcp.transport._base",
            "import importlib\nimportlib.import_module('ntxcp.service')\n",
            "ntxcp.service",
        ),
        ("ntxcp.transport._base", "__import__('ntxcp.endpoints')\n", "ntxcp.endpoints"),
    ],
)
def test_checker_finds_forbidden_imports(module: str, source: str, target: str) -> None:
    bad = dict(FAKE)
    bad[module] = (source, bad[module][1])
    assert violations(bad, ALLOWED) == [f"{module} imports {target}"]


# --- private modules stay inside their package --------------------------------------------


def private_imports_across_packages(modules: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Imports of a ``_``-prefixed module from outside the package that holds it."""
    problems = []
    for module, (source, is_package) in sorted(modules.items()):
        package = module if is_package else module.rpartition(".")[0]
        for target in sorted(imports_of(module, source, is_package, modules)):
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")]
            if private and ".".join(parts[: private[0]]) != package:
                problems.append(f"{module} imports {target}")
    return problems


def test_no_module_imports_a_private_module_of_another_package() -> None:
    assert private_imports_across_packages(MODULES) == []


def test_the_private_import_check_finds_one() -> None:
    bad = dict(FAKE)
    bad["ntxcp.v10.core"] = ("from ntxcp.transport._base import Link\n", False)
    assert private_imports_across_packages(bad) == ["ntxcp.v10.core imports ntxcp.transport._base"]
    assert private_imports_across_packages(FAKE) == []


# --- one definition of each error class -----------------------------------------------------


def error_classes(modules: Mapping[str, tuple[str, bool]]) -> dict[str, list[str]]:
    """Error class name -> the modules that define a class of that name."""
    found: dict[str, list[str]] = {}
    for module, (source, _) in sorted(modules.items()):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                found.setdefault(node.name, []).append(module)
    return found


def test_each_error_class_is_defined_once() -> None:
    twice = {name: where for name, where in error_classes(MODULES).items() if len(where) > 1}
    assert twice == {}


def test_the_error_class_check_finds_a_second_definition() -> None:
    bad = dict(FAKE)
    bad["ntxcp.rpc.frames"] = ("class UsageError(Exception):\n    pass\n", False)
    bad["ntxcp.v10.core"] = ("class UsageError(ValueError):\n    pass\n", False)
    assert error_classes(bad)["UsageError"] == ["ntxcp.rpc.frames", "ntxcp.v10.core"]
