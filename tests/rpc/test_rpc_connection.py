"""Unit tests of the ntxcpj state machine :class:`ntxcp.rpc.RpcConnection` (spec §2).

Time is a plain number handed to the state machine; nothing here sleeps.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from rpc_helpers import assert_callerror, connection, names, sent

from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    ErrorCode,
    NotConnectedError,
    PayloadValidationError,
    QueueFullError,
)
from ntxcp.rpc import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    MessageType,
    OutgoingCall,
    Role,
    RpcConnection,
    UnmatchedResponse,
)
from ntxcp.v10 import ACTIONS, Direction, Profile, Request, core, firmware, remotetrigger

CC = Role.CONTROL_CENTER
GW = Role.GATEWAY


def ids(prefix: str = "c") -> list[str]:
    return [f"{prefix}{n}" for n in range(1, 100)]


def change(key: str = "k") -> core.ChangeConfigurationRequest:
    return core.ChangeConfigurationRequest(key=key, value="v")


def accepted_result(unique_id: str) -> str:
    return json.dumps([3, unique_id, {"status": "Accepted"}])


def control_center(**kwargs: Any) -> RpcConnection:
    kwargs.setdefault("ids", ids())
    return connection(CC, **kwargs)


def receive_call(conn: RpcConnection, frame: list[Any], now: float = 0.0) -> CallReceived:
    [event] = conn.receive(json.dumps(frame), now)
    assert isinstance(event, CallReceived)
    return event


# --- construction and defaults ------------------------------------------------------------


def test_defaults_follow_the_spec() -> None:
    assert DEFAULT_CALL_TIMEOUT == 30.0
    assert DEFAULT_QUEUE_CAPACITY == 1000
    assert DEFAULT_BAD_MESSAGE_LIMIT == 50
    conn = RpcConnection(GW)
    assert conn.call_timeout == DEFAULT_CALL_TIMEOUT
    assert conn.queue_capacity == DEFAULT_QUEUE_CAPACITY
    assert conn.bad_message_limit == DEFAULT_BAD_MESSAGE_LIMIT
    assert conn.strict is True
    assert conn.profiles == frozenset()
    assert not conn.closed
    assert conn.in_flight is None
    assert conn.queued == 0
    assert conn.data_to_send() == []


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_call_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="call_timeout"):
        RpcConnection(CC, call_timeout=timeout)


def test_queue_capacity_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="queue_capacity"):
        RpcConnection(CC, queue_capacity=-1)
    assert RpcConnection(CC, queue_capacity=0).queue_capacity == 0


def test_message_type_values() -> None:
    assert [int(t) for t in MessageType] == [2, 3, 4]
    assert MessageType.CALL.name == "CALL"
    assert MessageType(3) is MessageType.CALLRESULT
    assert MessageType(4) is MessageType.CALLERROR


@pytest.mark.parametrize("action", list(ACTIONS))
def test_roles_handle_and_send_by_direction(action: str) -> None:
    spec = ACTIONS[action]
    both = spec.direction is Direction.BOTH
    g2c = spec.direction is Direction.GATEWAY_TO_CONTROL_CENTER
    c2g = spec.direction is Direction.CONTROL_CENTER_TO_GATEWAY
    assert CC.handles(spec) is (both or g2c)
    assert GW.handles(spec) is (both or c2g)
    assert CC.sends(spec) is (both or c2g)
    assert GW.sends(spec) is (both or g2c)


def test_role_values() -> None:
    assert Role("control_center") is CC
    assert Role("gateway") is GW


# --- encoding ------------------------------------------------------------------------------


def test_call_frame_bytes() -> None:
    conn = connection(GW, ids=["boot-1"])
    call = conn.send_call(
        core.BootNotificationRequest(dingx_gateway_model="DX-1", firmware_version="1.0"), 0.0
    )
    expected = (
        b'[2,"boot-1","BootNotification",{"dingxGatewayModel":"DX-1","firmwareVersion":"1.0"}]'
    )
    assert conn.data_to_send() == [expected]
    assert call.frame == expected
    assert call.unique_id == "boot-1"
    assert call.action == "BootNotification"


def test_call_frame_with_empty_payload() -> None:
    conn = connection(GW, ids=["hb"])
    conn.send_call(core.HeartbeatRequest(), 0.0)
    assert conn.data_to_send() == [b'[2,"hb","Heartbeat",{}]']


def test_call_frame_writes_utc_milliseconds() -> None:
    conn = connection(GW, ids=["sn"])
    stamp = datetime(2026, 11, 23, 20, 36, 34, 123999, tzinfo=timezone(timedelta(hours=2)))
    conn.send_call(
        core.StatusNotificationRequest(
            service_id="0",
            error_code=core.DingxGatewayErrorCode.NO_ERROR,
            status=core.DingxGatewayStatus.AVAILABLE,
            timestamp=stamp,
        ),
        0.0,
    )
    assert conn.data_to_send() == [
        b'[2,"sn","StatusNotification",{"serviceId":"0","errorCode":"NoError",'
        b'"status":"Available","timestamp":"2026-11-23T18:36:34.123Z"}]'
    ]


def test_callresult_frame_bytes() -> None:
    conn = connection(GW)
    event = receive_call(conn, [2, "rst-9", "Reset", {"type": "Hard"}])
    assert conn.send_result(event, core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)) is None
    assert conn.data_to_send() == [b'[3,"rst-9",{"status":"Accepted"}]']


def test_callresult_frame_with_empty_payload() -> None:
    conn = connection(CC)
    event = receive_call(
        conn,
        [
            2,
            "st-1",
            "StatusNotification",
            {"serviceId": "1", "errorCode": "NoError", "status": "Charging"},
        ],
    )
    assert conn.send_result(event, core.StatusNotificationConfirmation()) is None
    assert conn.data_to_send() == [b'[3,"st-1",{}]']


def test_callerror_frame_bytes() -> None:
    conn = connection(GW)
    conn.send_error("e-1", CallError(ErrorCode.SECURITY_ERROR, 'no "way"', {"retry": [1, 2]}))
    conn.send_error("e-2", CallError(ErrorCode.GENERIC_ERROR))
    conn.send_error("e-3", CallError(ErrorCode.PROTOCOL_ERROR, "caf\u00e9", {}))
    assert conn.data_to_send() == [
        b'[4,"e-1","SecurityError","no \\"way\\"",{"retry":[1,2]}]',
        b'[4,"e-2","GenericError","",{}]',
        '[4,"e-3","ProtocolError","caf\u00e9",{}]'.encode(),
    ]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_callerror_frame_writes_every_code_as_the_spec_spells_it(code: ErrorCode) -> None:
    conn = connection(GW)
    conn.send_error("x", CallError(code, "d"))
    assert conn.data_to_send() == [f'[4,"x","{code.value}","d",{{}}]'.encode()]


def test_send_error_with_details_that_are_not_json() -> None:
    conn = connection(GW)
    conn.send_error("nj-1", CallError(ErrorCode.INTERNAL_ERROR, "boom", {"obj": object()}))
    conn.send_error("nj-2", CallError(ErrorCode.INTERNAL_ERROR, "boom", {("a", "b"): 1}))
    frames = sent(conn)
    # Still a CALLERROR with the code and description; only the details are replaced.
    assert frames == [
        [4, "nj-1", "InternalError", "boom", {"note": "details not JSON"}],
        [4, "nj-2", "InternalError", "boom", {"note": "details not JSON"}],
    ]


def test_send_error_with_details_that_are_not_utf8() -> None:
    conn = connection(GW)
    conn.send_error("nu-1", CallError(ErrorCode.GENERIC_ERROR, "d", {"text": "\ud800"}))
    assert sent(conn) == [[4, "nu-1", "GenericError", "d", {"note": "details not JSON"}]]


def test_frames_are_kept_until_taken_in_order() -> None:
    conn = connection(GW)
    conn.send_error("a", CallError(ErrorCode.GENERIC_ERROR))
    conn.send_error("b", CallError(ErrorCode.GENERIC_ERROR))
    assert [frame[1] for frame in sent(conn)] == ["a", "b"]
    assert conn.data_to_send() == []


# --- sending rules (spec §2.3) ---------------------------------------------------------------


def test_id_factory_makes_the_unique_ids() -> None:
    made: list[str] = []

    def factory() -> str:
        made.append(f"id-{len(made)}")
        return made[-1]

    conn = RpcConnection(CC, id_factory=factory)
    calls = [conn.send_call(change(), 0.0) for _ in range(3)]
    assert [call.unique_id for call in calls] == ["id-0", "id-1", "id-2"]
    assert made == ["id-0", "id-1", "id-2"]
    assert json.loads(conn.data_to_send()[0])[1] == "id-0"


def test_default_ids_are_uuid4_strings() -> None:
    conn = RpcConnection(CC)
    unique_ids = [conn.send_call(change(), 0.0).unique_id for _ in range(20)]
    assert len(set(unique_ids)) == 20
    for unique_id in unique_ids:
        assert len(unique_id) == 36
        assert str(uuid.UUID(unique_id)) == unique_id
        assert uuid.UUID(unique_id).version == 4


def test_explicit_unique_id_is_used() -> None:
    factory_calls: list[int] = []

    def factory() -> str:
        factory_calls.append(1)
        return "from-factory"

    conn = RpcConnection(GW, id_factory=factory)
    call = conn.send_call(core.HeartbeatRequest(), 0.0, unique_id="stored-17")
    assert call.unique_id == "stored-17"
    assert conn.data_to_send() == [b'[2,"stored-17","Heartbeat",{}]']
    assert factory_calls == []
    conn.send_call(core.HeartbeatRequest(), 0.0, unique_id="z" * 36)
    assert conn.queued == 1


@pytest.mark.parametrize("unique_id", ["", "z" * 37])
def test_explicit_unique_id_must_fit_the_spec(unique_id: str) -> None:
    conn = RpcConnection(GW)
    with pytest.raises(ValueError, match="uniqueId"):
        conn.send_call(core.HeartbeatRequest(), 0.0, unique_id=unique_id)
    assert conn.in_flight is None
    assert conn.data_to_send() == []


def test_one_call_in_flight_per_direction() -> None:
    conn = control_center()
    first = conn.send_call(change("a"), 0.0)
    second = conn.send_call(change("b"), 0.0)
    assert [frame[1] for frame in sent(conn)] == ["c1"]
    assert conn.in_flight is first
    assert conn.queued == 1
    # The second goes out only when the first is answered.
    [answered] = conn.receive(accepted_result("c1"), 1.0)
    assert isinstance(answered, CallAnswered)
    assert answered.call is first
    assert [frame[:3] for frame in sent(conn)] == [[2, "c2", "ChangeConfiguration"]]
    assert conn.in_flight is second
    assert conn.queued == 0
    conn.receive(accepted_result("c2"), 2.0)
    assert conn.in_flight is None
    assert sent(conn) == []


def test_queued_calls_leave_in_fifo_order() -> None:
    conn = control_center()
    calls = [conn.send_call(change(f"k{n}"), float(n)) for n in range(5)]
    order: list[str] = []
    answered: list[OutgoingCall] = []
    for _ in calls:
        [frame] = sent(conn)
        order.append(frame[3]["key"])
        [event] = conn.receive(accepted_result(frame[1]), 10.0)
        assert isinstance(event, CallAnswered)
        answered.append(event.call)
    assert order == ["k0", "k1", "k2", "k3", "k4"]
    assert answered == calls


@pytest.mark.parametrize(
    "answer",
    [
        '[4,"c1","GenericError","",{}]',
        '[3,"c1",{"status":"Maybe"}]',
        '[3,"c1"]',
        '[4,"c1","GenericError"]',
    ],
    ids=["callerror", "invalid-result", "malformed-result", "malformed-error"],
)
def test_any_answer_sends_the_next_queued_call(answer: str) -> None:
    conn = control_center()
    first = conn.send_call(change("a"), 0.0)
    conn.send_call(change("b"), 0.0)
    sent(conn)
    events = conn.receive(answer, 1.0)
    assert isinstance(events[0], CallFailed)
    assert events[0].call is first
    assert [frame[1] for frame in sent(conn)] == ["c2"]
    assert conn.in_flight is not None
    assert conn.in_flight.unique_id == "c2"


def test_full_queue_fails_the_new_request_and_drops_nothing() -> None:
    conn = control_center(queue_capacity=2)
    kept = [conn.send_call(change(f"k{n}"), 0.0) for n in range(3)]  # 1 in flight + 2 queued
    with pytest.raises(QueueFullError) as info:
        conn.send_call(change("rejected"), 0.0)
    assert info.value.capacity == 2
    assert "2" in str(info.value)
    assert conn.queued == 2
    # Every accepted call is still sent and answered, in order; the rejected one never is.
    keys = []
    while conn.in_flight is not None:
        [frame] = sent(conn)
        keys.append(frame[3]["key"])
        conn.receive(accepted_result(frame[1]), 1.0)
    assert keys == ["k0", "k1", "k2"]
    assert [call.unique_id for call in kept] == ["c1", "c2", "c3"]
    # Room again once the queue drains.
    conn.send_call(change("later"), 2.0)
    assert sent(conn)[0][3]["key"] == "later"


def test_queue_capacity_zero_allows_only_the_call_in_flight() -> None:
    conn = control_center(queue_capacity=0)
    conn.send_call(change(), 0.0)
    with pytest.raises(QueueFullError):
        conn.send_call(change(), 0.0)
    assert conn.queued == 0
    conn.receive(accepted_result("c1"), 1.0)
    conn.send_call(change(), 1.0)
    assert conn.in_flight is not None
    assert conn.in_flight.unique_id == "c2"


def test_send_call_rejects_an_invalid_request_before_queuing() -> None:
    conn = control_center()
    with pytest.raises(PayloadValidationError) as info:
        conn.send_call(core.ChangeConfigurationRequest(key="k" * 51, value="v"), 0.0)
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.path == "key"
    assert conn.in_flight is None
    assert conn.data_to_send() == []


@pytest.mark.parametrize(
    ("role", "req"),
    [
        (GW, core.ResetRequest(type=core.ResetType.HARD)),
        (GW, core.CaptureProcessRequest(service_id="1", datapoint_ids=["a"])),
        (GW, firmware.GetDiagnosticsRequest(location="ftp://example.com/")),
        (
            GW,
            remotetrigger.TriggerMessageRequest(
                requested_message=remotetrigger.MessageTrigger.HEARTBEAT
            ),
        ),
        (CC, core.BootNotificationRequest(dingx_gateway_model="DX-1")),
        (CC, core.HeartbeatRequest()),
        (CC, firmware.FirmwareStatusNotificationRequest(status=firmware.FirmwareStatus.IDLE)),
    ],
)
def test_a_role_never_sends_an_action_of_the_other_direction(role: Role, req: Request) -> None:
    conn = connection(role, ids=["never"])
    with pytest.raises(ValueError, match=type(req).__name__):
        conn.send_call(req, 0.0)
    assert conn.in_flight is None
    assert conn.data_to_send() == []


@pytest.mark.parametrize("role", [CC, GW])
def test_both_roles_send_data_transfer(role: Role) -> None:
    conn = connection(role, ids=["dt"])
    conn.send_call(core.DataTransferRequest(vendor_id="ding.x"), 0.0)
    assert conn.data_to_send() == [b'[2,"dt","DataTransfer",{"vendorId":"ding.x"}]']


class _UnknownRequest(Request):
    ACTION: ClassVar[str] = "Authorize"
    CONFIRMATION = core.HeartbeatConfirmation
    PROFILE = Profile.CORE
    DIRECTION = Direction.BOTH


class _ImpostorRequest(Request):
    ACTION: ClassVar[str] = "DataTransfer"
    CONFIRMATION = core.DataTransferConfirmation
    PROFILE = Profile.CORE
    DIRECTION = Direction.BOTH


@pytest.mark.parametrize("req", [_UnknownRequest(), _ImpostorRequest()])
def test_send_call_rejects_requests_not_in_the_registry(req: Request) -> None:
    conn = connection(CC, ids=["never"])
    with pytest.raises(ValueError, match="does not send"):
        conn.send_call(req, 0.0)
    assert conn.data_to_send() == []


def test_deadline_of_the_call_in_flight() -> None:
    conn = control_center(call_timeout=10.0)
    call = conn.send_call(change(), 5.0)
    assert call.deadline == 15.0
    assert call.timeout == 10.0
    assert conn.expire(14.999) == []
    assert conn.in_flight is call
    [event] = conn.expire(15.0)
    assert isinstance(event, CallFailed)
    assert event.call is call
    error = event.error
    assert isinstance(error, CallTimeoutError)
    assert isinstance(error, TimeoutError)
    assert (error.action, error.unique_id, error.timeout) == ("ChangeConfiguration", "c1", 10.0)
    assert conn.in_flight is None
    assert conn.expire(100.0) == []


def test_per_call_timeout_overrides_the_default() -> None:
    conn = control_center(call_timeout=30.0)
    call = conn.send_call(change(), 1.0, timeout=2.5)
    assert (call.deadline, call.timeout) == (3.5, 2.5)
    [event] = conn.expire(3.5)
    assert isinstance(event.error, CallTimeoutError)
    assert event.error.timeout == 2.5


def test_next_call_is_sent_after_a_timeout() -> None:
    conn = control_center(call_timeout=10.0)
    first = conn.send_call(change("a"), 0.0)
    second = conn.send_call(change("b"), 1.0)
    assert [frame[1] for frame in sent(conn)] == ["c1"]
    [event] = conn.expire(10.0)
    assert isinstance(event, CallFailed)
    assert event.call is first
    assert [frame[1] for frame in sent(conn)] == ["c2"]
    assert conn.in_flight is second
    # Its deadline counts from when it was requested (time spent queued included).
    assert second.deadline == 11.0
    assert conn.expire(10.999) == []
    [event] = conn.expire(11.0)
    assert event.call is second


def test_queued_call_times_out_without_being_sent() -> None:
    conn = control_center(call_timeout=30.0)
    first = conn.send_call(change("a"), 0.0)
    short = conn.send_call(change("b"), 0.0, timeout=5.0)
    third = conn.send_call(change("c"), 0.0)
    sent(conn)
    assert short.deadline == 5.0
    [event] = conn.expire(5.0)
    assert isinstance(event, CallFailed)
    assert event.call is short
    assert isinstance(event.error, CallTimeoutError)
    assert conn.in_flight is first
    assert conn.queued == 1
    assert sent(conn) == []  # nothing new goes out while the first is still in flight
    conn.receive(accepted_result("c1"), 6.0)
    assert [frame[1] for frame in sent(conn)] == ["c3"]
    assert conn.in_flight is third


def test_expire_fails_in_flight_and_queued_calls_together() -> None:
    conn = control_center(call_timeout=10.0)
    first = conn.send_call(change("a"), 0.0)
    second = conn.send_call(change("b"), 0.0)
    later = conn.send_call(change("c"), 5.0)
    sent(conn)
    events = conn.expire(10.0)
    assert {event.call.unique_id for event in events} == {"c1", "c2"}
    assert all(isinstance(event, CallFailed) for event in events)
    assert {id(event.call) for event in events} == {id(first), id(second)}
    assert conn.in_flight is later
    assert [frame[1] for frame in sent(conn)] == ["c3"]


def test_late_answer_after_timeout_is_unmatched() -> None:
    conn = control_center(call_timeout=10.0)
    conn.send_call(change("a"), 0.0)
    second = conn.send_call(change("b"), 5.0)
    assert names(conn.expire(10.0)) == ["CallFailed"]
    assert conn.in_flight is second
    sent(conn)
    events = conn.receive(accepted_result("c1"), 11.0)
    assert names(events) == ["UnmatchedResponse"]
    assert isinstance(events[0], UnmatchedResponse)
    assert events[0].unique_id == "c1"
    # The late answer does not settle the call now in flight.
    assert conn.in_flight is second
    assert sent(conn) == []
    late_error = conn.receive('[4,"c1","GenericError","late",{}]', 12.0)
    assert names(late_error) == ["UnmatchedResponse"]
    assert conn.in_flight is second


def test_answer_for_a_queued_call_is_unmatched() -> None:
    conn = control_center()
    first = conn.send_call(change("a"), 0.0)
    conn.send_call(change("b"), 0.0)
    events = conn.receive(accepted_result("c2"), 1.0)
    assert names(events) == ["UnmatchedResponse"]
    assert conn.in_flight is first
    assert conn.queued == 1


def test_close_fails_everything_in_order() -> None:
    conn = control_center()
    calls = [conn.send_call(change(f"k{n}"), 0.0) for n in range(4)]
    conn.send_error("pending-answer", CallError(ErrorCode.GENERIC_ERROR))
    events = conn.close()
    assert [event.call for event in events] == calls
    for event in events:
        assert isinstance(event, CallFailed)
        assert isinstance(event.error, DisconnectedError)
        assert isinstance(event.error, NotConnectedError)
        assert "ChangeConfiguration" in str(event.error)
    assert conn.closed
    assert conn.in_flight is None
    assert conn.queued == 0
    assert conn.data_to_send() == []  # unsent frames are discarded with the connection
    assert conn.close() == []
    assert conn.expire(1e9) == []


def test_close_without_calls() -> None:
    conn = control_center()
    assert conn.close() == []
    assert conn.closed


def test_nothing_is_sent_after_close() -> None:
    conn = connection(GW, ids=["x"])
    event = receive_call(conn, [2, "r-1", "Reset", {"type": "Soft"}])
    conn.close()
    with pytest.raises(NotConnectedError):
        conn.send_call(core.HeartbeatRequest(), 0.0)
    assert conn.send_result(event, core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)) is None
    conn.send_error("r-1", CallError(ErrorCode.GENERIC_ERROR))
    error = conn.send_result(
        event, core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)
    )
    assert error is not None
    assert error.code is ErrorCode.INTERNAL_ERROR
    # A bad message is still reported, but not answered on a closed connection.
    assert names(conn.receive("junk", 1.0)) == ["BadMessage"]
    assert conn.data_to_send() == []


def test_incoming_calls_are_handled_while_a_call_is_in_flight() -> None:
    conn = connection(GW, ids=["boot"])
    boot = conn.send_call(core.BootNotificationRequest(dingx_gateway_model="DX-1"), 0.0)
    sent(conn)
    event = receive_call(conn, [2, "cfg-1", "GetConfiguration", {}], 1.0)
    assert conn.in_flight is boot
    assert conn.send_result(event, core.GetConfigurationConfirmation(unknown_key=["x"])) is None
    assert sent(conn) == [[3, "cfg-1", {"unknownKey": ["x"]}]]
    assert conn.in_flight is boot
    [answered] = conn.receive(
        '[3,"boot",{"status":"Accepted","currentTime":"2026-11-23T18:36:34Z","interval":300}]',
        2.0,
    )
    assert isinstance(answered, CallAnswered)
    assert answered.call is boot


# --- CALLRESULT (spec §2.2 rules 5, 6) --------------------------------------------------------


def test_callresult_is_decoded_as_the_requests_confirmation() -> None:
    conn = connection(GW, ids=["hb"])
    call = conn.send_call(core.HeartbeatRequest(), 0.0)
    [event] = conn.receive('[3,"hb",{"currentTime":"2026-11-23T20:36:34.123456+02:00"}]', 1.0)
    assert isinstance(event, CallAnswered)
    assert event.call is call
    assert event.confirmation == core.HeartbeatConfirmation(
        current_time=datetime(2026, 11, 23, 18, 36, 34, 123000, tzinfo=UTC)
    )
    assert type(event.confirmation) is core.HeartbeatConfirmation


@pytest.mark.parametrize(
    ("payload", "code", "path"),
    [
        ({"status": "Maybe"}, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "status"),
        ({}, ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "status"),
        ({"status": 1}, ErrorCode.TYPE_CONSTRAINT_VIOLATION, "status"),
        ({"status": "Accepted", "why": "x"}, ErrorCode.FORMATION_VIOLATION, "why"),
    ],
)
def test_invalid_callresult_fails_the_call_without_a_reply(
    payload: dict[str, Any], code: ErrorCode, path: str
) -> None:
    conn = connection(CC, ids=["rst"])
    call = conn.send_call(core.ResetRequest(type=core.ResetType.SOFT), 0.0)
    sent(conn)
    text = json.dumps([3, "rst", payload])
    events = conn.receive(text, 1.0)
    assert names(events) == ["CallFailed", "BadMessage"]
    failed, bad = events
    assert isinstance(failed, CallFailed)
    assert failed.call is call
    assert isinstance(failed.error, PayloadValidationError)
    assert failed.error.code is code
    assert failed.error.path == path
    assert isinstance(bad, BadMessage)
    assert bad.error is failed.error
    assert bad.answered is False
    assert bad.unique_id == "rst"
    assert bad.data == text
    assert conn.data_to_send() == []  # OCPP never answers a result
    assert conn.in_flight is None


def test_callresult_for_the_wrong_confirmation_class_fails() -> None:
    # A Heartbeat confirmation sent for a Reset: validated against ResetConfirmation.
    conn = connection(CC, ids=["rst"])
    conn.send_call(core.ResetRequest(type=core.ResetType.SOFT), 0.0)
    events = conn.receive('[3,"rst",{"currentTime":"2026-11-23T18:36:34Z"}]', 1.0)
    assert isinstance(events[0], CallFailed)
    assert events[0].error.code is ErrorCode.FORMATION_VIOLATION


def test_lenient_callresult_ignores_unknown_fields() -> None:
    conn = connection(CC, ids=["rst"], strict=False)
    conn.send_call(core.ResetRequest(type=core.ResetType.SOFT), 0.0)
    [event] = conn.receive('[3,"rst",{"status":"Rejected","why":{"a":1}}]', 1.0)
    assert isinstance(event, CallAnswered)
    assert event.confirmation == core.ResetConfirmation(status=core.ResetStatus.REJECTED)


@pytest.mark.parametrize("payload", ["[]", "null", '"x"', "1"])
def test_callresult_payload_must_be_an_object(payload: str) -> None:
    conn = connection(GW, ids=["hb"])
    conn.send_call(core.HeartbeatRequest(), 0.0)
    events = conn.receive(f'[3,"hb",{payload}]', 1.0)
    assert names(events) == ["CallFailed", "BadMessage"]
    assert events[0].error.code is ErrorCode.FORMATION_VIOLATION
    assert conn.data_to_send()[1:] == []


def test_malformed_callresult_fails_the_call_it_names() -> None:
    conn = connection(GW, ids=["hb"])
    call = conn.send_call(core.HeartbeatRequest(), 0.0)
    sent(conn)
    events = conn.receive('[3,"hb",{"currentTime":"2026-11-23T18:36:34Z"},"extra"]', 1.0)
    assert names(events) == ["CallFailed", "BadMessage"]
    assert events[0].call is call
    assert events[0].error.code is ErrorCode.FORMATION_VIOLATION
    assert events[1].answered is False
    assert conn.data_to_send() == []


# --- CALLERROR (spec §2.1) ---------------------------------------------------------------------


def _fail_with(frame: str) -> CallError:
    conn = connection(CC, ids=["e"])
    call = conn.send_call(change(), 0.0)
    sent(conn)
    [event] = conn.receive(frame, 1.0)
    assert isinstance(event, CallFailed)
    assert event.call is call
    assert conn.data_to_send() == []
    assert conn.in_flight is None
    assert isinstance(event.error, CallError)
    return event.error


@pytest.mark.parametrize("code", list(ErrorCode))
def test_callerror_codes_are_kept(code: ErrorCode) -> None:
    error = _fail_with(json.dumps([4, "e", code.value, "because", {}]))
    assert error.code is code
    assert error.description == "because"
    assert error.details == {}


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("OccurenceConstraintViolation", ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION),
        ("FormatViolation", ErrorCode.FORMATION_VIOLATION),
        ("MessageTypeNotSupported", ErrorCode.NOT_SUPPORTED),
        ("RpcFrameworkError", ErrorCode.GENERIC_ERROR),
    ],
)
def test_callerror_spelling_variants_map_to_the_nearest_code(variant: str, code: ErrorCode) -> None:
    error = _fail_with(json.dumps([4, "e", variant, "old peer", {}]))
    assert error.code is code
    assert error.description == "old peer"


def test_unknown_callerror_code_becomes_generic_error_keeping_the_text() -> None:
    error = _fail_with('[4,"e","TeapotError","short and stout",{}]')
    assert error.code is ErrorCode.GENERIC_ERROR
    assert error.description == "TeapotError: short and stout"


def test_unknown_callerror_code_without_description() -> None:
    error = _fail_with('[4,"e","notimplemented","",{}]')  # codes are case-sensitive
    assert error.code is ErrorCode.GENERIC_ERROR
    assert error.description == "notimplemented"


def test_callerror_details_are_kept() -> None:
    error = _fail_with('[4,"e","InternalError","db down",{"retryAfter":30,"hosts":["a","b"]}]')
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert error.details == {"retryAfter": 30, "hosts": ["a", "b"]}


@pytest.mark.parametrize("details", ["[]", "null", '"x"', "7"])
def test_callerror_details_that_are_not_an_object_are_dropped(details: str) -> None:
    error = _fail_with(f'[4,"e","InternalError","d",{details}]')
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert error.details == {}


def test_malformed_callerror_still_fails_the_caller() -> None:
    conn = connection(CC, ids=["e"])
    call = conn.send_call(change(), 0.0)
    events = conn.receive('[4,"e","GenericError"]', 1.0)
    assert names(events) == ["CallFailed", "BadMessage"]
    assert events[0].call is call
    assert events[0].error.code is ErrorCode.FORMATION_VIOLATION
    assert events[1].answered is False
    assert conn.in_flight is None


# --- answering received CALLs -----------------------------------------------------------------


def test_send_result_with_the_wrong_class_sends_internal_error() -> None:
    conn = connection(GW)
    event = receive_call(conn, [2, "r-1", "Reset", {"type": "Soft"}])
    error = conn.send_result(
        event, core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)
    )
    assert isinstance(error, CallError)
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert "ClearCacheConfirmation" in error.description
    assert "ResetConfirmation" in error.description
    [frame] = sent(conn)
    assert_callerror(frame)
    assert frame == [4, "r-1", "InternalError", error.description, {}]


def test_send_result_rejects_a_subclass_of_the_confirmation() -> None:
    class Special(core.ResetConfirmation):
        pass

    conn = connection(GW)
    event = receive_call(conn, [2, "r-2", "Reset", {"type": "Soft"}])
    error = conn.send_result(event, Special(status=core.ResetStatus.ACCEPTED))
    assert error is not None
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert sent(conn)[0][:3] == [4, "r-2", "InternalError"]


@pytest.mark.parametrize(
    ("confirmation", "fragment"),
    [
        (core.ResetConfirmation(status="Maybe"), "status"),
        (core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED, data=5), "data"),
        (
            core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED, data=object()),
            "cannot encode",
        ),
        (
            core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED, data="\ud800"),
            "surrogates",
        ),
    ],
    ids=["enum", "type", "not-json", "not-utf8"],
)
def test_send_result_with_an_invalid_confirmation_sends_internal_error(
    confirmation: Any, fragment: str
) -> None:
    conn = connection(GW)
    action = "Reset" if isinstance(confirmation, core.ResetConfirmation) else "DataTransfer"
    payload = {"type": "Soft"} if action == "Reset" else {"vendorId": "v"}
    event = receive_call(conn, [2, "inv-1", action, payload])
    error = conn.send_result(event, confirmation)
    assert error is not None
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert "invalid confirmation" in error.description
    assert fragment in error.description
    [frame] = sent(conn)
    assert frame == [4, "inv-1", "InternalError", error.description, {}]


# --- the bad-message limit (spec §2.2 rule 7) ---------------------------------------------------


def test_bad_message_limit_is_reported_once() -> None:
    conn = connection(CC, bad_message_limit=3)
    for n in range(3):
        assert names(conn.receive("junk", float(n))) == ["BadMessage"]
    assert conn.bad_messages_last_minute == 3
    events = conn.receive("junk", 3.0)
    assert names(events) == ["BadMessage", "BadMessageLimitExceeded"]
    exceeded = events[1]
    assert isinstance(exceeded, BadMessageLimitExceeded)
    assert (exceeded.count, exceeded.limit) == (4, 3)
    # Reported once; later bad messages are still answered and reported.
    assert names(conn.receive("junk", 4.0)) == ["BadMessage"]
    assert len(conn.data_to_send()) == 5


def test_bad_message_limit_window_slides() -> None:
    conn = connection(CC, bad_message_limit=3)
    for now in (0.0, 10.0, 20.0):
        conn.receive("junk", now)
    # At 60 s the message of 0 s has left the window: still three in the last minute.
    assert names(conn.receive("junk", 60.0)) == ["BadMessage"]
    assert conn.bad_messages_last_minute == 3
    # Four within one minute (10, 20, 60, 69.9) exceed the limit.
    assert names(conn.receive("junk", 69.9)) == ["BadMessage", "BadMessageLimitExceeded"]
    assert conn.bad_messages_last_minute == 4


def test_bad_message_limit_counts_within_sixty_seconds() -> None:
    conn = connection(CC, bad_message_limit=1)
    conn.receive("junk", 0.0)
    assert names(conn.receive("junk", 59.99)) == ["BadMessage", "BadMessageLimitExceeded"]


def test_bad_message_limit_counts_every_kind_of_bad_message() -> None:
    conn = connection(CC, profiles=[], bad_message_limit=4, ids=["c1"])
    conn.send_call(change(), 0.0)
    conn.receive('[2,"a","Heartbeat",{}]', 1.0)  # NotSupported
    conn.receive('[2,"b","Nope",{}]', 1.0)  # NotImplemented
    conn.receive('[3,"zzz",{}]', 1.0)  # unmatched response
    conn.receive('[3,"c1",{}]', 1.0)  # invalid CALLRESULT
    assert conn.bad_messages_last_minute == 4
    assert names(conn.receive("[", 1.0)) == ["BadMessage", "BadMessageLimitExceeded"]


def test_valid_messages_are_not_counted() -> None:
    conn = connection(CC, bad_message_limit=0, ids=["c1"])
    conn.send_call(change(), 0.0)
    assert names(conn.receive('[2,"a","Heartbeat",{}]', 1.0)) == ["CallReceived"]
    assert names(conn.receive(accepted_result("c1"), 1.0)) == ["CallAnswered"]
    assert conn.bad_messages_last_minute == 0
    assert names(conn.receive("junk", 1.0)) == ["BadMessage", "BadMessageLimitExceeded"]


def test_bad_message_limit_can_be_disabled() -> None:
    conn = connection(CC, bad_message_limit=None)
    for n in range(200):
        assert names(conn.receive("junk", float(n) / 100)) == ["BadMessage"]
    assert conn.bad_messages_last_minute == 0


# --- receiving odds and ends ------------------------------------------------------------------


def test_profiles_are_kept_by_reference() -> None:
    profiles: set[Profile] = set()
    conn = RpcConnection(CC, profiles=profiles)
    assert conn.receive('[2,"a","Heartbeat",{}]', 0.0)[0].code is ErrorCode.NOT_SUPPORTED
    profiles.add(Profile.CORE)
    assert names(conn.receive('[2,"b","Heartbeat",{}]', 0.0)) == ["CallReceived"]


def test_call_received_carries_the_typed_request() -> None:
    conn = connection(GW)
    event = receive_call(
        conn, [2, "cap", "CaptureProcess", {"serviceId": "7", "datapointIds": ["T1", "T2"]}]
    )
    assert event.unique_id == "cap"
    assert event.spec is ACTIONS["CaptureProcess"]
    assert event.request == core.CaptureProcessRequest(service_id="7", datapoint_ids=["T1", "T2"])


def test_invalid_utf8_in_the_frame_is_answered_with_unknown_id() -> None:
    conn = connection(CC)
    [event] = conn.receive(b'[2,"\xff","Heartbeat",{}]', 0.0)
    assert isinstance(event, BadMessage)
    assert event.unique_id == "-1"
    assert event.data == '[2,"\ufffd","Heartbeat",{}]'
    assert sent(conn) == [[4, "-1", "FormationViolation", "message is not valid JSON", {}]]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    "payload",
    [b'{"vendorId":"\xff"}', b'{"vendorId":"v","data":"\xed\xa0\x80"}'],
    ids=["invalid-start", "encoded-surrogate"],
)
def test_invalid_utf8_in_a_call_payload_is_a_formation_violation(
    payload: bytes, strict: bool
) -> None:
    conn = connection(GW, strict=strict)
    [event] = conn.receive(b'[2,"u8",' + b'"DataTransfer",' + payload + b"]", 0.0)
    assert isinstance(event, BadMessage)
    assert event.code is ErrorCode.FORMATION_VIOLATION
    assert "UTF-8" in event.error.description
    assert sent(conn)[0][:3] == [4, "u8", "FormationViolation"]


def test_invalid_utf8_in_an_unknown_field_lenient() -> None:
    # Skipped by the strict decoder, read when unknown fields are dropped (lenient mode).
    conn = connection(GW, strict=False)
    [event] = conn.receive(b'[2,"u8","DataTransfer",{"vendorId":"v","zz":"\xff"}]', 0.0)
    assert isinstance(event, BadMessage)
    assert "UTF-8" in event.error.description
    strict = connection(GW)
    [event] = strict.receive(b'[2,"u8","DataTransfer",{"vendorId":"v","zz":"\xff"}]', 0.0)
    assert "unknown field" in event.error.description


def test_invalid_utf8_in_a_callresult_fails_the_call() -> None:
    conn = connection(CC, ids=["dt"])
    call = conn.send_call(core.DataTransferRequest(vendor_id="v"), 0.0)
    events = conn.receive(b'[3,"dt",{"status":"Accepted","data":"\xff"}]', 1.0)
    assert names(events) == ["CallFailed", "BadMessage"]
    assert events[0].call is call
    assert events[0].error.code is ErrorCode.FORMATION_VIOLATION
    assert conn.in_flight is None


def test_invalid_utf8_in_callerror_details_still_fails_the_call() -> None:
    conn = connection(CC, ids=["dt"])
    call = conn.send_call(core.DataTransferRequest(vendor_id="v"), 0.0)
    [event] = conn.receive(b'[4,"dt","InternalError","d",{"a":"\xff"}]', 1.0)
    assert isinstance(event, CallFailed)
    assert event.call is call
    assert event.error.code is ErrorCode.INTERNAL_ERROR
    assert event.error.details == {}


def test_text_with_lone_surrogates_is_a_bad_message() -> None:
    conn = connection(CC)
    [event] = conn.receive('[2,"a\ud800","Heartbeat",{}]', 0.0)
    assert isinstance(event, BadMessage)
    assert event.code is ErrorCode.FORMATION_VIOLATION
    assert sent(conn)[0][:3] == [4, "-1", "FormationViolation"]


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deeply_nested_message_is_a_bad_message(depth: int) -> None:
    conn = connection(CC)
    [event] = conn.receive("[" * depth + "]" * depth, 0.0)
    assert isinstance(event, BadMessage)
    assert event.answered
    assert sent(conn)[0][:3] == [4, "-1", "FormationViolation"]


def test_deeply_nested_payloads_never_raise() -> None:
    # Around the decoder's depth limit, whichever step hits it must not escape.
    for depth in range(900, 1100, 3):
        nested = "[" * depth + "]" * depth
        for frame in (
            f'[2,"d","Heartbeat",{{"x":{nested}}}]',
            f'[3,"c1",{{"status":"Accepted","x":{nested}}}]',
            f'[4,"c1","GenericError","",{{"x":{nested}}}]',
        ):
            for strict in (True, False):
                conn = connection(CC, ids=["c1"], strict=strict)
                conn.send_call(change(), 0.0)
                events = conn.receive(frame, 1.0)
                assert 1 <= len(events) <= 2
                assert len(conn.data_to_send()) <= 2


def test_reported_data_is_truncated_to_one_kib() -> None:
    conn = connection(CC)
    text = '[2,"big","Heartbeat",{"pad":"' + "x" * 5000 + '"}]'
    [as_text] = conn.receive(text, 0.0)
    [as_bytes] = conn.receive(text.encode(), 0.0)
    [unmatched] = conn.receive(b'[3,"nobody",{"pad":"' + b"y" * 5000 + b'"}]', 0.0)
    assert isinstance(as_text, BadMessage)
    assert isinstance(as_bytes, BadMessage)
    assert isinstance(unmatched, UnmatchedResponse)
    assert as_text.data == text[:1024]
    assert as_bytes.data == text[:1024]
    assert unmatched.data.startswith('[3,"nobody"')
    assert len(unmatched.data) == 1024


def test_truncation_does_not_split_into_an_error() -> None:
    conn = connection(CC)
    text = '[3,"nobody",{"pad":"' + "\u00e9" * 1000 + '"}]'  # two bytes per character
    [event] = conn.receive(text.encode(), 0.0)
    assert isinstance(event, UnmatchedResponse)
    assert event.data.startswith('[3,"nobody"')
    assert len(event.data.encode()) <= 1024 + 2


# --- event objects ------------------------------------------------------------------------------


def test_event_reprs_name_what_happened() -> None:
    conn = connection(CC, ids=["r1"], bad_message_limit=0)
    call = conn.send_call(core.ResetRequest(type=core.ResetType.HARD), 0.0)
    assert repr(call) == "OutgoingCall('Reset', id='r1')"
    assert call.context is None
    received = receive_call(conn, [2, "hb-7", "Heartbeat", {}])
    assert repr(received) == "CallReceived('Heartbeat', id='hb-7')"
    bad, exceeded = conn.receive("junk", 0.0)
    assert repr(bad) == (
        "BadMessage(CallError('FormationViolation', 'message is not valid JSON', {}), "
        "id='-1', answered=True)"
    )
    assert repr(exceeded) == "BadMessageLimitExceeded(1 > 0/min)"
    [unmatched] = conn.receive('[3,"who",{}]', 0.0)
    assert repr(unmatched) == "UnmatchedResponse(id='who')"
    [answered] = conn.receive('[3,"r1",{"status":"Accepted"}]', 0.0)
    assert repr(answered) == "CallAnswered(OutgoingCall('Reset', id='r1'))"
    failed = CallFailed(call, CallError(ErrorCode.GENERIC_ERROR, "x"))
    assert (
        repr(failed)
        == "CallFailed(OutgoingCall('Reset', id='r1'), CallError('GenericError', 'x', {}))"
    )
