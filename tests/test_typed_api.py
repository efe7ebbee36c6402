"""The typed request API: mypy's verdict on typing/typed_api_cases.py, and run-time errors.

The typing half runs mypy (``--strict``, the project's settings) on a file of cases,
as msgspec checks its own types: every line marked ``# error: <text>`` must be
rejected with that text, every other line accepted.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ntxcp
import ntxcp.sync
from ntxcp.errors import PayloadValidationError

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "typing" / "typed_api_cases.py"
MARK = re.compile(r"#\s*error:\s*(?P<text>.+)$")


def expected_errors(path: Path) -> dict[int, str]:
    """Line number -> the text its mypy error must contain."""
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = MARK.search(line)
        if match:
            found[number] = match["text"].strip()
    return found


def mypy_errors(path: Path) -> dict[int, list[str]]:
    """Run mypy on ``path`` with the project's configuration: line -> messages."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    errors: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(rf"^{re.escape(str(path.relative_to(ROOT)))}:(\d+): error: (.*)$", line)
        if match:
            errors.setdefault(int(match[1]), []).append(match[2])
        elif ": error:" in line:
            raise AssertionError(f"mypy error outside the cases: {line}")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return errors


def test_mypy_accepts_the_typed_api_and_rejects_the_marked_misuses() -> None:
    expected = expected_errors(CASES)
    assert len(expected) >= 10
    got = mypy_errors(CASES)
    unexpected = {line: messages for line, messages in got.items() if line not in expected}
    assert unexpected == {}, "lines that should type-check"
    for line, text in expected.items():
        assert line in got, f"line {line} should be rejected ({text})"
        assert any(text in message for message in got[line]), (line, got[line])


async def test_a_misspelled_enum_value_raises_the_library_error_before_sending() -> None:
    async with ntxcp.ControlCenter() as cc:
        with pytest.raises(PayloadValidationError) as info:
            await cc.reset("GW", "Sotf")  # type: ignore[arg-type]
    assert info.value.path == "type"


async def test_a_whole_message_rule_raises_the_library_error_before_sending() -> None:
    # Datapoint ids are case-insensitive (spec §3): "a" and "A" are duplicates.
    async with ntxcp.ControlCenter() as cc:
        with pytest.raises(PayloadValidationError) as info:
            await cc.capture_process("GW", "S", ["a", "A"])
    assert info.value.path == "datapointIds"


def test_the_blocking_gateway_raises_the_library_error_for_a_bad_value() -> None:
    with ntxcp.sync.Gateway("GW-typed") as gw, pytest.raises(PayloadValidationError) as info:
        gw.status_notification("0", "NoErr", "Available")  # type: ignore[arg-type]
    assert info.value.path == "errorCode"


# --- the blocking gateway has every member of the asyncio one ------------------------------


def public_members(obj: Any) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_blocking_gateway_has_every_public_member_of_the_async_one() -> None:
    async_members = public_members(ntxcp.Gateway) | public_members(ntxcp.Gateway("GW-x"))
    sync_members = public_members(ntxcp.sync.Gateway)
    assert async_members == sync_members


def comparable(signature: inspect.Signature) -> list[tuple[str, Any, Any, Any]]:
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()] + [
        ("return", None, None, signature.return_annotation)
    ]


SYNC_RETURNS = {"errors": ("AsyncIterator[EndpointError]", "Iterator[EndpointError]")}


@pytest.mark.parametrize(
    "name",
    sorted(
        name
        for name in public_members(ntxcp.Gateway)
        if inspect.isfunction(getattr(ntxcp.Gateway, name))
    ),
)
def test_each_method_has_the_same_signature_on_both_gateways(name: str) -> None:
    async_signature = inspect.signature(getattr(ntxcp.Gateway, name))
    sync_signature = inspect.signature(getattr(ntxcp.sync.Gateway, name))
    if name in SYNC_RETURNS:
        assert (async_signature.return_annotation, sync_signature.return_annotation) == (
            SYNC_RETURNS[name]
        )
        async_signature = async_signature.replace(return_annotation=None)
        sync_signature = sync_signature.replace(return_annotation=None)
    assert comparable(sync_signature) == comparable(async_signature)


def test_the_constructors_take_the_same_options() -> None:
    assert comparable(inspect.signature(ntxcp.sync.Gateway.__init__)) == comparable(
        inspect.signature(ntxcp.Gateway.__init__)
    )


def test_the_generated_typed_methods_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_typed_requests.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
