"""Property tests of :meth:`ntxcp.rpc.RpcConnection.receive` (spec §2.2).

Whatever arrives, the state machine reports only the documented events, answers at most
once, answers only with a well-formed CALLERROR, never answers a response, and never
raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_helpers import ERROR_CODES, assert_callerror, connection

from ntxcp.rpc import (
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    Role,
    RpcConnection,
    UnmatchedResponse,
)
from ntxcp.v10 import ACTIONS, Profile, core

DOCUMENTED = (
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    UnmatchedResponse,
)
PENDING_ID = "pending-1"
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "frames.json"
SEEDS = [case["input"].encode() for case in json.loads(GOLDEN.read_text(encoding="utf-8"))]
SEEDS += [
    b'[3,"pending-1",{"status":"Accepted"}]',
    b'[3,"pending-1",{"currentTime":"2026-11-23T18:36:34.123Z"}]',
    b'[4,"pending-1","GenericError","",{"why":["x"]}]',
]
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

roles = st.sampled_from(list(Role))
profile_sets = st.sets(st.sampled_from(list(Profile)))
any_text = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())),  # lone surrogates too
    st.text(st.sampled_from('[]{}",:0123456789.-eE tnrufalsx\\')),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)
ids = st.one_of(
    st.just(PENDING_ID),
    st.text(max_size=40),
    st.text(alphabet="x", min_size=35, max_size=38),
    json_values,
)
actions = st.one_of(st.sampled_from(list(ACTIONS)), st.text(max_size=20), json_values)
payloads = st.one_of(
    st.just({}),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    json_values,
)
error_codes = st.one_of(st.sampled_from(sorted(ERROR_CODES)), st.text(max_size=20), json_values)
members = st.one_of(ids, actions, payloads, error_codes)


@st.composite
def frame_like(draw: st.DrawFn) -> list[Any]:
    """An array that starts like a frame, with random (often almost right) members."""
    kind = draw(st.sampled_from([2, 3, 4]))
    shape = draw(st.sampled_from(["call", "result", "error", "random"]))
    if shape == "call":
        rest = [draw(ids), draw(actions), draw(payloads)]
    elif shape == "result":
        rest = [draw(ids), draw(payloads)]
    elif shape == "error":
        rest = [draw(ids), draw(error_codes), draw(st.text(max_size=20)), draw(payloads)]
    else:
        rest = draw(st.lists(members, max_size=6))
    if draw(st.booleans()):
        rest = rest[: draw(st.integers(0, len(rest)))] + draw(st.lists(members, max_size=2))
    return [kind, *rest]


def _encode(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def _conn(role: Role, profiles: set[Profile], strict: bool, pending: bool) -> RpcConnection:
    conn = connection(role, profiles, strict=strict, ids=[PENDING_ID], bad_message_limit=1)
    if pending:
        request = (
            core.ResetRequest(type=core.ResetType.SOFT)
            if role is Role.CONTROL_CENTER
            else core.HeartbeatRequest()
        )
        conn.send_call(request, now=0.0)
        conn.data_to_send()
    return conn


def _check(conn: RpcConnection, data: str | bytes, pending: bool) -> None:
    in_flight = conn.in_flight
    events = conn.receive(data, now=1.0)
    frames = conn.data_to_send()

    assert all(isinstance(event, DOCUMENTED) for event in events)
    assert len(frames) <= 1
    answered = [e for e in events if isinstance(e, BadMessage) and e.answered]
    assert len(answered) == len(frames)
    for frame_bytes in frames:
        frame = json.loads(frame_bytes)
        assert_callerror(frame)
        assert frame[1] == answered[0].unique_id
        assert frame[2] == answered[0].code.value
        assert frame[3] == answered[0].error.description
    # At most one thing happens to the call in flight, and only to it.
    settled = [e for e in events if isinstance(e, CallAnswered | CallFailed)]
    assert len(settled) <= 1
    for event in settled:
        assert event.call is in_flight
        assert conn.in_flight is None
    if not settled:
        assert conn.in_flight is in_flight
    assert not (settled and frames)  # a response is never answered
    assert sum(isinstance(e, CallReceived) for e in events) <= 1
    if any(isinstance(e, CallReceived | CallAnswered) for e in events):
        assert len(events) == 1
    if not pending:
        assert not settled


@SETTINGS
@given(roles, profile_sets, st.booleans(), st.booleans(), any_text)
def test_any_text(
    role: Role, profiles: set[Profile], strict: bool, pending: bool, text: str
) -> None:
    _check(_conn(role, profiles, strict, pending), text, pending)


@SETTINGS
@given(roles, profile_sets, st.booleans(), st.booleans(), st.binary(max_size=200))
def test_any_bytes(
    role: Role, profiles: set[Profile], strict: bool, pending: bool, data: bytes
) -> None:
    _check(_conn(role, profiles, strict, pending), data, pending)


@SETTINGS
@given(roles, profile_sets, st.booleans(), st.booleans(), json_values, st.booleans())
def test_any_json_value(
    role: Role, profiles: set[Profile], strict: bool, pending: bool, value: Any, ascii_only: bool
) -> None:
    conn = _conn(role, profiles, strict, pending)
    text = _encode(value, ascii_only)
    _check(conn, text, pending)


@SETTINGS
@given(
    roles, profile_sets, st.booleans(), st.booleans(), frame_like(), st.booleans(), st.booleans()
)
def test_frame_like_arrays(
    role: Role,
    profiles: set[Profile],
    strict: bool,
    pending: bool,
    frame: list[Any],
    ascii_only: bool,
    as_bytes: bool,
) -> None:
    conn = _conn(role, profiles, strict, pending)
    text = _encode(frame, ascii_only)
    _check(conn, text.encode() if as_bytes else text, pending)
    if frame[0] in (3, 4):
        # Responses are never answered, whatever they look like.
        assert conn.data_to_send() == []


@SETTINGS
@given(st.lists(st.one_of(any_text, frame_like().map(json.dumps)), min_size=2, max_size=8))
def test_message_sequences_keep_the_state_consistent(messages: list[str]) -> None:
    conn = _conn(Role.CONTROL_CENTER, set(Profile), True, True)
    limit_reports = 0
    for message in messages:
        events = conn.receive(message, now=1.0)
        assert all(isinstance(event, DOCUMENTED) for event in events)
        assert len(conn.data_to_send()) <= 1
        limit_reports += sum(isinstance(e, BadMessageLimitExceeded) for e in events)
    assert limit_reports <= 1  # reported once per connection (limit 1 here)
    assert (limit_reports == 1) is (conn.bad_messages_last_minute > 1)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A known message (golden input or answer) with a few random byte edits."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if edit == "insert" or position == len(data):
            data.insert(position, byte)
        elif edit == "replace":
            data[position] = byte
        else:
            del data[position]
    return bytes(data)


@SETTINGS
@given(roles, profile_sets, st.booleans(), st.booleans(), mutated())
def test_mutated_messages(
    role: Role, profiles: set[Profile], strict: bool, pending: bool, data: bytes
) -> None:
    _check(_conn(role, profiles, strict, pending), data, pending)
