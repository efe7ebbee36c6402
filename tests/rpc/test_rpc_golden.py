"""The receiving rules of spec §2.2, as data: ``tests/golden/frames.json``.

Each case names the receiving role and its registered profiles, the raw text received
and what must come of it: the CALLERROR sent back (or none) and the events reported.
Every case is fed both as text and as UTF-8 bytes (what the transport hands over).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import ERROR_CODES, assert_callerror, connection, names, request, sent

from ntxcp.errors import ErrorCode
from ntxcp.rpc import BadMessage, CallAnswered, CallFailed, CallReceived, UnmatchedResponse

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "frames.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))
DOCUMENTED_EVENTS = {
    "BadMessage",
    "BadMessageLimitExceeded",
    "CallAnswered",
    "CallFailed",
    "CallReceived",
    "UnmatchedResponse",
}


def _run(case: dict[str, Any], as_bytes: bool) -> tuple[list[Any], list[list[Any]], Any]:
    pending = case.get("pending")
    conn = connection(
        case["role"],
        case["profiles"],
        strict=case.get("strict", True),
        ids=[pending["id"]] if pending else [],
    )
    call = None
    if pending:
        call = conn.send_call(request(pending["action"], pending["payload"]), now=0.0)
        assert [frame[:3] for frame in sent(conn)] == [[2, pending["id"], pending["action"]]]
    text: str = case["input"]
    events = conn.receive(text.encode() if as_bytes else text, now=1.0)
    return events, sent(conn), call


@pytest.mark.parametrize("as_bytes", [False, True], ids=["text", "bytes"])
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_golden_frame(case: dict[str, Any], as_bytes: bool) -> None:
    expect = case["expect"]
    events, frames, call = _run(case, as_bytes)

    assert names(events) == expect["events"]
    if expect["reply"] is None:
        assert frames == []
    else:
        assert len(frames) == 1
        [frame] = frames
        assert_callerror(frame)
        assert frame[:3] == expect["reply"]
        assert frame[4] == {}
        for fragment in expect.get("description_contains", []):
            assert fragment in frame[3]

    for event in events:
        if isinstance(event, BadMessage):
            # Reported on the error stream with what was (or was not) answered.
            assert event.answered is (expect["reply"] is not None)
            assert event.data == case["input"]
            if event.answered:
                assert [event.unique_id, event.code.value] == expect["reply"][1:]
                assert event.error.description == frames[0][3]
        elif isinstance(event, CallReceived):
            assert event.unique_id == json.loads(case["input"])[1]
            assert event.spec.action == json.loads(case["input"])[2]
            assert isinstance(event.request, event.spec.request)
        elif isinstance(event, UnmatchedResponse):
            assert event.data == case["input"]
        elif isinstance(event, CallAnswered | CallFailed):
            assert event.call is call

    if "error_code" in expect:
        failed = [event for event in events if isinstance(event, CallFailed)]
        assert [event.error.code for event in failed] == [ErrorCode(expect["error_code"])]
        for fragment in expect.get("description_contains", []):
            assert fragment in failed[0].error.description
    if call is not None and {"CallAnswered", "CallFailed"} & set(expect["events"]):
        assert call.unique_id == case["pending"]["id"]


def test_golden_file_is_well_formed() -> None:
    names_seen = [case["name"] for case in CASES]
    assert len(names_seen) == len(set(names_seen))
    for case in CASES:
        assert set(case) <= {"name", "role", "profiles", "strict", "pending", "input", "expect"}
        assert case["role"] in {"control_center", "gateway"}
        assert set(case["expect"]["events"]) <= DOCUMENTED_EVENTS
        reply = case["expect"]["reply"]
        assert reply is None or (len(reply) == 3 and reply[0] == 4 and reply[2] in ERROR_CODES)


def test_golden_file_covers_every_rule() -> None:
    # Every code a receiver sends on its own (rules 1-4) and every outcome of rules 5-6.
    replied = {case["expect"]["reply"][2] for case in CASES if case["expect"]["reply"]}
    assert replied == {
        "FormationViolation",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "TypeConstraintViolation",
    }
    assert any(case["expect"]["reply"] == [4, "-1", "FormationViolation"] for case in CASES)
    outcomes = {tuple(case["expect"]["events"]) for case in CASES}
    assert {
        ("CallReceived",),
        ("BadMessage",),
        ("UnmatchedResponse",),
        ("CallAnswered",),
        ("CallFailed",),
        ("CallFailed", "BadMessage"),
    } <= outcomes
    assert {case.get("strict", True) for case in CASES} == {True, False}
    assert {case["role"] for case in CASES} == {"control_center", "gateway"}
