"""What the RPC layer tells a frame tap about each frame in and out (spec §2).

With ``record_frame_info`` on, :class:`ntxcp.rpc.RpcConnection` records a
:class:`ntxcp.rpc.FrameInfo` for every message it receives (``received_info``) and
every frame it queues (``data_to_send_with_info``): message type, uniqueId, action
(for an answer, the action of the CALL it answers) and a CALLERROR's code.
"""

from __future__ import annotations

import json

from rpc_helpers import connection

from ntxcp.errors import CallError, ErrorCode
from ntxcp.rpc import CallReceived, FrameInfo, RpcConnection
from ntxcp.rpc.frames import UNKNOWN_ID
from ntxcp.v10 import core

NOW = 100.0
HEARTBEAT = b'[2,"h1","Heartbeat",{}]'


def recording(role: str, ids: list[str] | None = None) -> RpcConnection:
    conn = connection(role, ids=ids)
    conn.record_frame_info = True
    return conn


def infos(conn: RpcConnection) -> list[FrameInfo | None]:
    return [info for _, info in conn.data_to_send_with_info()]


def test_a_received_call_and_its_answer_carry_the_action() -> None:
    cc = recording("control_center")
    (event,) = cc.receive(HEARTBEAT, NOW)
    assert cc.received_info == FrameInfo(2, "h1", "Heartbeat")
    assert isinstance(event, CallReceived)
    cc.send_result(event, core.HeartbeatConfirmation(current_time=core_time()))
    pairs = cc.data_to_send_with_info()
    assert [info for _, info in pairs] == [FrameInfo(3, "h1", "Heartbeat")]
    assert json.loads(pairs[0][0])[0] == 3


def test_answers_leave_in_order_each_with_its_info() -> None:
    cc = recording("control_center")
    first = cc.receive(HEARTBEAT, NOW)[0]
    second = cc.receive(b'[2,"h2","Heartbeat",{}]', NOW)[0]
    assert isinstance(first, CallReceived) and isinstance(second, CallReceived)
    cc.send_error(second.unique_id, CallError(ErrorCode.GENERIC_ERROR, "no"))
    assert infos(cc) == []  # held behind the first (spec §2.3.4)
    cc.send_result(first, core.HeartbeatConfirmation(current_time=core_time()))
    assert infos(cc) == [
        FrameInfo(3, "h1", "Heartbeat"),
        FrameInfo(4, "h2", "Heartbeat", "GenericError"),
    ]
    # An answer to a CALL nobody reported (answering twice) still says what it is.
    cc.send_error("h1", CallError(ErrorCode.INTERNAL_ERROR, "again"))
    assert infos(cc) == [FrameInfo(4, "h1", None, "InternalError")]


def test_a_rejected_call_waits_behind_earlier_answers_with_its_info() -> None:
    cc = recording("control_center")
    first = cc.receive(HEARTBEAT, NOW)[0]
    cc.receive(b'[2,"x1","NoSuchAction",{}]', NOW)  # rule 3: NotImplemented
    assert cc.received_info == FrameInfo(2, "x1", "NoSuchAction")
    assert infos(cc) == []
    assert isinstance(first, CallReceived)
    cc.send_result(first, core.HeartbeatConfirmation(current_time=core_time()))
    assert infos(cc) == [
        FrameInfo(3, "h1", "Heartbeat"),
        FrameInfo(4, "x1", "NoSuchAction", "NotImplemented"),
    ]


def test_own_calls_and_their_answers() -> None:
    gw = recording("gateway", ids=["c1", "c2", "c3"])
    gw.send_call(core.HeartbeatRequest(), NOW)
    gw.send_call(core.HeartbeatRequest(), NOW)  # queued behind the first (spec §2.3.1)
    assert infos(gw) == [FrameInfo(2, "c1", "Heartbeat")]
    gw.receive(b'[3,"c1",{"currentTime":"2026-01-01T00:00:00Z"}]', NOW)
    assert gw.received_info == FrameInfo(3, "c1", "Heartbeat")
    assert infos(gw) == [FrameInfo(2, "c2", "Heartbeat")]  # the next one went out
    gw.receive(b'[4,"c2","GenericError","no",{}]', NOW)
    assert gw.received_info == FrameInfo(4, "c2", "Heartbeat", "GenericError")
    gw.receive(b'[3,"zz",{}]', NOW)  # answers nothing in flight (rule 5)
    assert gw.received_info == FrameInfo(3, "zz", None)
    gw.receive(b'[4,"zz","Weird","",{}]', NOW)
    assert gw.received_info == FrameInfo(4, "zz", None, "Weird")


def test_malformed_messages() -> None:
    gw = recording("gateway", ids=["c1"])
    gw.send_call(core.HeartbeatRequest(), NOW)
    gw.data_to_send()
    gw.receive(b'[3,"c1"]', NOW)  # a broken answer to the CALL in flight (rule 6)
    assert gw.received_info == FrameInfo(3, "c1", "Heartbeat")
    gw.receive(b'[4,"nope"]', NOW)  # a broken answer to nothing
    assert gw.received_info == FrameInfo(4, "nope", None)
    cc = recording("control_center")
    cc.receive(b"\xff not json", NOW)
    assert cc.received_info == FrameInfo(None, None, None)
    assert infos(cc) == [FrameInfo(4, UNKNOWN_ID, None, "FormationViolation")]
    cc.receive(b'[2,"k",5,{}]', NOW)  # a CALL whose action is not text
    assert cc.received_info == FrameInfo(2, "k", None)
    cc.receive(b'[2,"m","Heartbeat"]', NOW)  # a CALL without its payload
    assert cc.received_info == FrameInfo(2, "m", "Heartbeat")
    cc.receive(b"[2]", NOW)
    assert cc.received_info == FrameInfo(2, None, None)
    cc.receive(b'[9,"t"]', NOW)
    assert cc.received_info == FrameInfo(None, "t", None)
    assert [info.message_type for info in infos(cc) if info] == [4, 4, 4, 4]


def test_nothing_is_recorded_unless_asked() -> None:
    cc = connection("control_center")
    event = cc.receive(HEARTBEAT, NOW)[0]
    assert cc.received_info is None
    assert isinstance(event, CallReceived)
    cc.send_result(event, core.HeartbeatConfirmation(current_time=core_time()))
    cc.receive(b"garbage", NOW)
    assert infos(cc) == [None, None]  # queued while not recording
    # Switched on with frames already queued: those keep no info, later ones do.
    cc.receive(b"garbage", NOW)
    cc.record_frame_info = True
    cc.receive(b"garbage", NOW)
    assert [info is None for info in infos(cc)] == [True, False]
    cc.receive(b"garbage", NOW)
    assert len(cc.data_to_send()) == 1
    assert infos(cc) == []


def test_close_forgets_queued_frames_and_their_info() -> None:
    cc = recording("control_center")
    cc.receive(b"garbage", NOW)
    cc.close()
    assert cc.data_to_send_with_info() == []


def core_time() -> object:
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)
