"""Property tests of :meth:`ntxcp.rpc.RpcConnection.receive` (spec §2.2).

Whatever arrives, the state machine reports only the documented events, answers at most
once, answers only with a well-formed CALLERROR, never answers a response, and never
raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from rpc_helpers import ERROR_CODES, assert_callerror, connection, names

from ntxcp.errors import CallTimeoutError, DisconnectedError, QueueFullError
from ntxcp.rpc import (
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    Event,
    OutgoingCall,
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
_CASES = json.loads(GOLDEN.read_text(encoding="utf-8"))
# Messages that are accepted as they are: a random edit then lands anywhere in them.
VALID_SEEDS = [
    case["input"].encode()
    for case in _CASES
    if case["expect"]["events"] in (["CallReceived"], ["CallAnswered"])
] + [
    b'[3,"pending-1",{"status":"Accepted"}]',
    b'[3,"pending-1",{"currentTime":"2026-11-23T18:36:34.123Z"}]',
    b'[4,"pending-1","GenericError","\xc3\xa9",{"why":["x"]}]',
    b'[2,"dt-1","DataTransfer",{"vendorId":"ding.x","messageId":"m","data":"payload"}]',
]
SEEDS = VALID_SEEDS + [case["input"].encode() for case in _CASES]
# At least 300 examples per property; more under the ``long`` profile (tests/conftest.py).
SETTINGS = settings(
    max_examples=max(300, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

roles = st.sampled_from(list(Role))
profile_sets = st.sets(st.sampled_from(list(Profile)))
any_text = st.one_of(
    st.text(),
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))),  # lone surrogates
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
    """A known message (mostly a valid one) with a few random byte edits."""
    seeds = VALID_SEEDS if draw(st.integers(0, 3)) else SEEDS
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.one_of(st.integers(0x80, 0xFF), st.integers(0, 0xFF)))
        if edit == "insert" or not data:
            data.insert(position, byte)
        elif edit == "replace":
            data[position] = byte
        elif len(data) > 1:
            del data[position]
    return bytes(data)


@SETTINGS
@given(roles, profile_sets, st.booleans(), st.booleans(), mutated())
# Regression cases found by random runs with msgspec 0.23, whose decoder raises
# msgspec.DecodeError (not UnicodeDecodeError) for invalid UTF-8: the error escaped
# receive() after the call in flight had been released, so its caller waited forever.
@example(Role.CONTROL_CENTER, set(), True, True, b'[4,"pending-1","InternalError","",{"a":"\xff"}]')
@example(Role.GATEWAY, set(), True, True, b'[4,"pending-1","X","d",{"\xc3":1}]')
@example(
    Role.GATEWAY, set(Profile), False, False, b'[2,"u","DataTransfer",{"vendorId":"v","z":"\xff"}]'
)
def test_mutated_messages(
    role: Role, profiles: set[Profile], strict: bool, pending: bool, data: bytes
) -> None:
    _check(_conn(role, profiles, strict, pending), data, pending)


class CallQueueMachine(RuleBasedStateMachine):
    """Random sends, answers, timeouts and a final close (spec §2.3).

    Whatever happens, at most one CALL is on the wire, CALLs leave in the order they
    were requested, and every accepted request ends exactly once (answered, failed,
    timed out or disconnected): nothing is dropped silently.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.conn = RpcConnection(
            Role.CONTROL_CENTER, queue_capacity=3, call_timeout=10.0, id_factory=self._next_id
        )
        self.now = 0.0
        self.accepted: list[OutgoingCall] = []
        self.outcomes: dict[str, list[Event]] = {}
        self.wire: list[str] = []

    def _next_id(self) -> str:
        self.counter += 1
        return f"q{self.counter}"

    def _record(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CallAnswered | CallFailed):
                self.outcomes.setdefault(event.call.unique_id, []).append(event)
        for frame in self.conn.data_to_send():
            decoded = json.loads(frame)
            assert decoded[0] == 2
            self.wire.append(decoded[1])

    @rule(timeout=st.one_of(st.none(), st.floats(0.5, 25.0)))
    def send(self, timeout: float | None) -> None:
        before = self.conn.queued
        try:
            call = self.conn.send_call(
                core.ChangeConfigurationRequest(key="k", value="v"), self.now, timeout
            )
        except QueueFullError:
            assert self.conn.in_flight is not None
            assert before == 3
        else:
            self.accepted.append(call)
        self._record([])

    @rule(dt=st.floats(0.0, 15.0))
    def advance(self, dt: float) -> None:
        self.now += dt
        events = self.conn.expire(self.now)
        for event in events:
            assert isinstance(event, CallFailed)
            assert isinstance(event.error, CallTimeoutError)
            assert event.call.deadline <= self.now
        self._record(events)

    @rule(
        answer=st.sampled_from(
            [
                '[3,"{id}",{{"status":"Accepted"}}]',
                '[3,"{id}",{{"status":"Nope"}}]',
                '[4,"{id}","GenericError","",{{}}]',
                '[3,"{id}"]',
            ]
        )
    )
    def answer_in_flight(self, answer: str) -> None:
        call = self.conn.in_flight
        if call is None:
            return
        events = self.conn.receive(answer.format(id=call.unique_id), self.now)
        assert isinstance(events[0], CallAnswered | CallFailed)
        assert events[0].call is call
        self._record(events)

    @rule(unique_id=st.sampled_from(["q1", "q2", "q3", "q4", "zz"]))
    def answer_some_id(self, unique_id: str) -> None:
        call = self.conn.in_flight
        events = self.conn.receive(f'[3,"{unique_id}",{{"status":"Accepted"}}]', self.now)
        if call is not None and call.unique_id == unique_id:
            assert isinstance(events[0], CallAnswered)
        else:
            assert names(events) == ["UnmatchedResponse"]
            assert self.conn.in_flight is call
        self._record(events)

    @invariant()
    def one_call_on_the_wire_in_request_order(self) -> None:
        if self.conn.in_flight is None:
            assert self.conn.queued == 0
        order = [call.unique_id for call in self.accepted]
        assert self.wire == [uid for uid in order if uid in set(self.wire)]
        assert len(set(self.wire)) == len(self.wire)
        unsettled = [call for call in self.accepted if call.unique_id not in self.outcomes]
        assert len(unsettled) == self.conn.queued + (self.conn.in_flight is not None)
        assert all(len(events) == 1 for events in self.outcomes.values())

    def teardown(self) -> None:
        in_order = [call for call in self.accepted if call.unique_id not in self.outcomes]
        events = self.conn.close()
        assert [event.call for event in events] == in_order
        assert all(isinstance(event.error, DisconnectedError) for event in events)
        self._record(events)
        assert sorted(self.outcomes) == sorted(call.unique_id for call in self.accepted)
        assert all(len(events) == 1 for events in self.outcomes.values())


TestCallQueue = CallQueueMachine.TestCase
TestCallQueue.settings = settings(
    max_examples=max(150, settings.default.max_examples // 2),
    stateful_step_count=30,
    deadline=None,
)
