"""docs/go-api.md maps every method of the Go reference API to a Python member that exists."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

import ntxcp
import ntxcp.sync

ROOT = Path(__file__).resolve().parent.parent
# The reference listing lives beside the project on development machines (shared/spec;
# NTXCP_GO_API overrides). The method names read from it are kept in the repository
# (tests/golden/go_api_methods.json), so a checkout without the listing checks them too.
GO_API = Path(
    os.environ.get("NTXCP_GO_API", ROOT.parent / "shared" / "spec" / "seed-ntxcp10-go-api.txt")
)
GO_METHODS = Path(__file__).resolve().parent / "golden" / "go_api_methods.json"
DOC = ROOT / "docs" / "go-api.md"

PYTHON: dict[str, list[type]] = {
    # every column on the control center (awaited and callback forms)
    "DingXControlCenter": [ntxcp.ControlCenter, ntxcp.ControlCenter],
    # one column per gateway class
    "DingXGateway": [ntxcp.Gateway, ntxcp.sync.Gateway],
    "DingXGatewayConnection": [ntxcp.GatewayConnection],
}


def go_methods(text: str, interface: str) -> list[str]:
    """The methods of one Go interface in the API listing."""
    block = re.search(rf"^type {interface} interface \{{\n(.*?)^\}}", text, re.S | re.M)
    assert block is not None, interface
    return re.findall(r"^\t([A-Z]\w*)\(", block[1], re.M)


def doc_rows(text: str, interface: str) -> dict[str, list[str]]:
    """Go name -> the Python names in its row of the section about ``interface``."""
    section = re.search(rf"^## `{interface}` →.*?(?=^## |\Z)", text, re.S | re.M)
    assert section is not None, interface
    rows: dict[str, list[str]] = {}
    for line in section[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        names = [re.match(r"`(\w+)`", cell) for cell in cells[1:]]
        rows[cells[0].strip("`")] = [match[1] for match in names if match]
    return rows


def has_member(cls: type, name: str) -> bool:
    if dataclasses.is_dataclass(cls):
        return name in {field.name for field in dataclasses.fields(cls)} or hasattr(cls, name)
    return hasattr(cls, name)


def recorded_methods() -> dict[str, list[str]]:
    """The Go interfaces' method names, as recorded from the listing."""
    methods: dict[str, list[str]] = json.loads(GO_METHODS.read_text(encoding="utf-8"))
    return methods


@pytest.mark.parametrize("interface", sorted(PYTHON))
def test_every_go_method_has_a_row_naming_existing_python_members(interface: str) -> None:
    go = recorded_methods()[interface]
    assert go, interface
    rows = doc_rows(DOC.read_text(encoding="utf-8"), interface)
    assert sorted(rows) == sorted(go)
    for go_name, python_names in rows.items():
        assert python_names, go_name
        for cls, name in zip(PYTHON[interface], python_names, strict=False):
            assert has_member(cls, name), f"{go_name} -> {cls.__name__}.{name}"


@pytest.mark.skipif(not GO_API.exists(), reason="the Go API listing is not beside the project")
def test_the_recorded_methods_are_those_of_the_listing() -> None:
    # Where the listing is at hand, the recorded names must be exactly what it says.
    text = GO_API.read_text(encoding="utf-8")
    assert recorded_methods() == {name: go_methods(text, name) for name in sorted(PYTHON)}


def test_the_parsers_read_what_they_should() -> None:
    listing = "type X interface {\n\t// doc\n\tFoo(a int) error\n\tBar()\n}\n"
    assert go_methods(listing, "X") == ["Foo", "Bar"]
    doc = "## `X` → y\n\n| Go | P |\n|---|---|\n| `Foo` | `foo` (note) |\n| `Bar` | — |\n"
    assert doc_rows(doc, "X") == {"Foo": ["foo"], "Bar": []}
