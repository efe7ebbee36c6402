"""Answers leave in arrival order (spec §2.3.4); late answers are not bad messages."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from rpc_helpers import connection

from ntxcp.errors import CallError, ErrorCode
from ntxcp.rpc import BadMessage, CallReceived, Role, UnmatchedResponse
from ntxcp.rpc.frames import new_unique_id
from ntxcp.v10 import core

HEARTBEAT = b'[2,"a","Heartbeat",{}]'


def _frames(rpc: object) -> list[list[object]]:
    return [json.loads(frame) for frame in rpc.data_to_send()]  # type: ignore[attr-defined]


def test_rejection_waits_for_an_earlier_call_still_being_handled() -> None:
    rpc = connection(Role.CONTROL_CENTER)
    [first] = rpc.receive(HEARTBEAT, 0.0)
    assert isinstance(first, CallReceived)
    rejected = rpc.receive(b'[2,"b","NoSuchAction",{}]', 0.0)
    assert isinstance(rejected[0], BadMessage)
    assert _frames(rpc) == []  # the CALLERROR for "b" must not overtake "a"
    rpc.send_result(first, core.HeartbeatConfirmation(current_time=datetime.now(UTC)))
    frames = _frames(rpc)
    assert [frame[:2] for frame in frames] == [[3, "a"], [4, "b"]]


def test_answers_fill_slots_of_the_same_id_in_order() -> None:
    rpc = connection(Role.CONTROL_CENTER)
    [one] = rpc.receive(HEARTBEAT, 0.0)
    [two] = rpc.receive(HEARTBEAT, 0.0)  # a peer reusing an id: still two answers
    rpc.send_error(one.unique_id, CallError(ErrorCode.GENERIC_ERROR, "first"))
    assert [f[3] for f in _frames(rpc)] == ["first"]
    assert isinstance(two, CallReceived)
    rpc.send_error(two.unique_id, CallError(ErrorCode.GENERIC_ERROR, "second"))
    assert [f[3] for f in _frames(rpc)] == ["second"]


def test_an_answer_for_no_pending_call_is_sent_at_once() -> None:
    rpc = connection(Role.CONTROL_CENTER)
    rpc.send_error("never-received", CallError(ErrorCode.GENERIC_ERROR))
    assert [f[:3] for f in _frames(rpc)] == [[4, "never-received", "GenericError"]]


def test_late_answer_after_timeout_is_reported_but_not_counted_as_bad() -> None:
    rpc = connection(Role.CONTROL_CENTER, ids=["late"], bad_message_limit=0)
    rpc.send_call(core.ResetRequest(type=core.ResetType.SOFT), 0.0, 1.0)
    rpc.data_to_send()
    rpc.expire(2.0)
    events = rpc.receive(b'[3,"late",{"status":"Accepted"}]', 3.0)
    assert [type(e) for e in events] == [UnmatchedResponse]
    assert rpc.bad_messages_last_minute == 0
    again = rpc.receive(b'[3,"late",{"status":"Accepted"}]', 3.0)  # a second copy is bad
    assert rpc.bad_messages_last_minute == 1
    assert isinstance(again[0], UnmatchedResponse)


def test_description_that_cannot_be_encoded_is_replaced_not_raised() -> None:
    rpc = connection(Role.CONTROL_CENTER)
    [call] = rpc.receive(HEARTBEAT, 0.0)
    rpc.send_error(call.unique_id, CallError(ErrorCode.INTERNAL_ERROR, "bad \ud800 text"))
    [frame] = _frames(rpc)
    assert frame[:3] == [4, "a", "InternalError"]
    assert frame[3] == "bad ? text"


def test_a_later_call_answered_first_waits_for_the_earlier_one() -> None:
    rpc = connection(Role.CONTROL_CENTER)
    [first] = rpc.receive(HEARTBEAT, 0.0)
    [second] = rpc.receive(b'[2,"c","Heartbeat",{}]', 0.0)
    rpc.send_error(second.unique_id, CallError(ErrorCode.GENERIC_ERROR, "c"))
    assert _frames(rpc) == []
    rpc.send_error(first.unique_id, CallError(ErrorCode.GENERIC_ERROR, "a"))
    assert [f[1] for f in _frames(rpc)] == ["a", "c"]


def test_send_call_with_a_pre_encoded_payload_sends_it_as_given() -> None:
    rpc = connection(Role.GATEWAY, ids=["pre"])
    request = core.HeartbeatRequest()
    rpc.send_call(request, 0.0, payload=b"{}")
    assert rpc.data_to_send() == [b'[2,"pre","Heartbeat",{}]']


def test_default_unique_ids_are_distinct_uuid4_text() -> None:
    ids = {new_unique_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    rpc = connection(Role.GATEWAY)
    call = rpc.send_call(core.HeartbeatRequest(), 0.0)
    assert uuid.UUID(call.unique_id).version == 4
