"""Error paths end to end: what a caller gets when the other side cannot answer (spec §2.1, §5).

* a handler raising ``CallError`` answers with that code, description and details;
* a handler raising anything else answers ``InternalError`` and is reported;
* a handler returning something that is not a valid confirmation of the action answers
  ``InternalError`` and is reported as ``invalid-confirmation``;
* an action of a profile without handler, or a base-class method left as is, answers
  ``NotSupported``;
* requests that cannot be sent (wrong direction, invalid payload) fail before sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from endpoint_helpers import (
    C2G_REPLIES,
    G2C_REPLIES,
    GW,
    METER_VALUE,
    T0,
    WAIT,
    RawServer,
    Recording,
    call_frame,
    eventually,
    next_error,
    raw_connect,
    reports,
)

from ntxcp import CallError, ErrorCode, PayloadValidationError
from ntxcp.v10 import Profile, core, firmware
from ntxcp.v10 import remotetrigger as rt

pytestmark = pytest.mark.timeout(30)

STYLES = [pytest.param(False, id="def"), pytest.param(True, id="async-def")]
DETAILS = {"reason": "meter busy", "retryAfter": 30, "nested": {"list": [1, 2.5, None, True]}}


def raising(exc: BaseException) -> Any:
    def reply(request: Any) -> Any:
        raise exc

    return reply


def returning(value: Any) -> Any:
    return lambda request: value


def frames_in(cc: Any) -> list[bytes]:
    """Record the frames a control center receives (on connections opened afterwards)."""
    frames: list[bytes] = []
    cc.set_frame_logger(
        lambda gid, direction, frame, info: frames.append(frame) if direction == "in" else None
    )
    return frames


async def later_round_trip(gw: Any) -> None:
    """A Heartbeat CALL and its answer: an event later than everything before it."""
    with contextlib.suppress(CallError):
        await gw.heartbeat(timeout=WAIT)


# --- CallError raised by a handler --------------------------------------------------------


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
@pytest.mark.parametrize("is_async", STYLES)
async def test_call_error_from_control_center_handler(make_cc, make_gw, code, is_async):
    cc = await make_cc()
    error = CallError(code, f"handler says {code}", DETAILS)
    Recording(
        control_center=True, replies={**G2C_REPLIES, "Heartbeat": raising(error)}, is_async=is_async
    ).install(cc)
    gw = await make_gw(cc.url)
    with pytest.raises(CallError) as caught:
        await gw.heartbeat()
    assert type(caught.value) is CallError
    assert caught.value.code is code
    assert caught.value.description == f"handler says {code}"
    assert caught.value.details == DETAILS
    # a CallError is an answer, not a problem: nothing on the error stream
    assert reports(cc) == []
    # the connection still works
    assert (await gw.data_transfer("Ding")).status == "Accepted"


@pytest.mark.parametrize("is_async", STYLES)
async def test_call_error_from_gateway_handler(make_cc, make_gw, is_async):
    cc = await make_cc()
    gw = await make_gw(None, start=False)
    error = CallError(ErrorCode.PROTOCOL_ERROR, "no such service", {"serviceId": "heat-9"})
    Recording(
        control_center=False,
        replies={**C2G_REPLIES, "CaptureProcess": raising(error)},
        is_async=is_async,
    ).install(gw)
    await gw.start(cc.url)
    with pytest.raises(CallError) as caught:
        await cc.capture_process(GW, "heat-9", ["t1"])
    assert (caught.value.code, caught.value.description, caught.value.details) == (
        ErrorCode.PROTOCOL_ERROR,
        "no such service",
        {"serviceId": "heat-9"},
    )
    assert reports(gw) == []


async def test_send_request_async_reports_call_error_once(make_cc, make_gw):
    cc = await make_cc()
    error = CallError(ErrorCode.GENERIC_ERROR, "nope", {"k": "v"})
    Recording(control_center=True, replies={**G2C_REPLIES, "Heartbeat": raising(error)}).install(cc)
    gw = await make_gw(cc.url)
    calls: list[tuple[Any, Any]] = []
    done = asyncio.Event()

    def callback(confirmation: Any, err: BaseException | None) -> None:
        calls.append((confirmation, err))
        done.set()

    gw.send_request_async(core.HeartbeatRequest(), callback)
    await asyncio.wait_for(done.wait(), WAIT)
    await later_round_trip(gw)  # a second callback would have come before its answer
    assert len(calls) == 1
    confirmation, err = calls[0]
    assert confirmation is None
    assert isinstance(err, CallError)
    assert (err.code, err.description, err.details) == (ErrorCode.GENERIC_ERROR, "nope", {"k": "v"})


# --- handler raising something else -------------------------------------------------------


@pytest.mark.parametrize("is_async", STYLES)
async def test_control_center_handler_exception_is_internal_error(make_cc, make_gw, is_async):
    cc = await make_cc()
    Recording(
        control_center=True,
        replies={**G2C_REPLIES, "MeterValues": raising(ZeroDivisionError("meter broke"))},
        is_async=is_async,
    ).install(cc)
    gw = await make_gw(cc.url)
    with pytest.raises(CallError) as caught:
        await gw.meter_values(1, [METER_VALUE])
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "ZeroDivisionError" in caught.value.description
    assert "meter broke" in caught.value.description
    report = await next_error(cc, "handler-error")
    assert report.gateway_id == GW
    assert report.code is ErrorCode.INTERNAL_ERROR
    assert "MeterValues" in str(report)


@pytest.mark.parametrize("is_async", STYLES)
async def test_gateway_handler_exception_is_internal_error(make_cc, make_gw, is_async):
    cc = await make_cc()
    gw = await make_gw(None, start=False)
    Recording(
        control_center=False,
        replies={**C2G_REPLIES, "Reset": raising(RuntimeError("relay stuck"))},
        is_async=is_async,
    ).install(gw)
    await gw.start(cc.url)
    with pytest.raises(CallError) as caught:
        await cc.reset(GW, "Soft")
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "RuntimeError: relay stuck" in caught.value.description
    report = await next_error(gw, "handler-error")
    assert report.gateway_id == GW
    # the gateway goes on answering
    assert (await cc.clear_cache(GW)).status == "Rejected"


def test_sync_gateway_handler_exception_is_internal_error(threaded_loop, threaded_cc, make_sync_gw):
    cc = threaded_cc()
    gw = make_sync_gw()
    error = CallError(ErrorCode.SECURITY_ERROR, "locked", {"by": "operator"})
    Recording(
        control_center=False,
        replies={
            **C2G_REPLIES,
            "Reset": raising(KeyError("x")),
            "ClearCache": raising(error),
        },
    ).install(gw)
    gw.start(cc.url)
    with pytest.raises(CallError) as caught:
        threaded_loop.run(cc.reset(GW, "Hard"))
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "KeyError" in caught.value.description
    with pytest.raises(CallError) as caught:
        threaded_loop.run(cc.clear_cache(GW))
    assert (caught.value.code, caught.value.description, caught.value.details) == (
        ErrorCode.SECURITY_ERROR,
        "locked",
        {"by": "operator"},
    )


# --- handler returning an invalid confirmation --------------------------------------------

BAD_BOOT_REPLIES = [
    pytest.param(
        core.BootNotificationConfirmation(status="Accepted", current_time=T0, interval=-5),
        "interval",
        id="constraint-broken",
    ),
    pytest.param(
        core.BootNotificationConfirmation(status="Maybe", current_time=T0, interval=5),
        "status",
        id="bad-enum",
    ),
    pytest.param(
        core.HeartbeatConfirmation(current_time=T0), "HeartbeatConfirmation", id="wrong-class"
    ),
    pytest.param(None, "NoneType", id="none"),
    pytest.param({"status": "Accepted"}, "dict", id="dict"),
]


@pytest.mark.parametrize(("reply", "mentions"), BAD_BOOT_REPLIES)
@pytest.mark.parametrize("is_async", STYLES)
async def test_invalid_confirmation_from_control_center(
    make_cc, make_gw, reply, mentions, is_async
):
    cc = await make_cc()
    Recording(
        control_center=True,
        replies={**G2C_REPLIES, "BootNotification": returning(reply)},
        is_async=is_async,
    ).install(cc)
    gw = await make_gw(cc.url)
    with pytest.raises(CallError) as caught:
        await gw.boot_notification("DX-100")
    assert type(caught.value) is CallError
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert mentions in caught.value.description
    report = await next_error(cc, "invalid-confirmation")
    assert report.gateway_id == GW
    assert report.code is ErrorCode.INTERNAL_ERROR
    assert "BootNotification" in str(report)
    # the connection goes on
    assert (await gw.heartbeat()).current_time == T0


@pytest.mark.parametrize("is_async", STYLES)
async def test_invalid_confirmation_from_gateway(make_cc, make_gw, is_async):
    cc = await make_cc()
    gw = await make_gw(None, start=False)
    Recording(
        control_center=False,
        replies={
            **C2G_REPLIES,
            "GetDiagnostics": returning(firmware.GetDiagnosticsConfirmation(file_name="x" * 256)),
            "TriggerMessage": returning(core.ResetConfirmation(status="Accepted")),
        },
        is_async=is_async,
    ).install(gw)
    await gw.start(cc.url)
    with pytest.raises(CallError) as caught:
        await cc.get_diagnostics(GW, "ftp://example.com/")
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "fileName" in caught.value.description or "file_name" in caught.value.description
    with pytest.raises(CallError) as caught:
        await cc.trigger_message(GW, "Heartbeat")
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "ResetConfirmation" in caught.value.description
    invalid: list[Any] = []

    def both_reported() -> bool:
        invalid.extend(reports(gw, "invalid-confirmation"))
        return len(invalid) >= 2

    await eventually(both_reported)
    assert [("GetDiagnostics" in str(r), "TriggerMessage" in str(r)) for r in invalid] == [
        (True, False),
        (False, True),
    ]


# --- NotSupported (spec §5) ---------------------------------------------------------------


async def test_profile_without_handler_is_not_supported(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    cc.set_firmware_management_handler(None)
    gw = await make_gw(None, start=False)
    recording = Recording(control_center=False, replies=C2G_REPLIES)
    gw.set_core_handler(recording.handlers[Profile.CORE])
    await gw.start(cc.url)
    with pytest.raises(CallError) as caught:
        await gw.firmware_status_notification("Downloading")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    with pytest.raises(CallError) as caught:
        await gw.diagnostics_status_notification("Uploading")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    for send in (
        cc.trigger_message(GW, "Heartbeat"),
        cc.update_firmware(GW, "https://example.com/fw", T0),
        cc.get_diagnostics(GW, "ftp://example.com/"),
    ):
        with pytest.raises(CallError) as caught:
            await send
        assert caught.value.code is ErrorCode.NOT_SUPPORTED
    # the registered profiles still work
    assert (await gw.heartbeat()).current_time == T0
    assert (await cc.reset(GW, "Soft")).status == "Accepted"
    assert recording.actions() == ["Reset"]


async def test_no_handler_at_all_is_not_supported(make_cc, make_gw):
    cc = await make_cc()
    gw = await make_gw(cc.url)
    with pytest.raises(CallError) as caught:
        await gw.boot_notification("DX-100")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    with pytest.raises(CallError) as caught:
        await cc.data_transfer(GW, "Ding")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED


async def test_removed_handler_is_not_supported(make_cc, make_gw):
    cc = await make_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    gw = await make_gw(cc.url)
    await gw.heartbeat()
    cc.set_core_handler(None)
    with pytest.raises(CallError) as caught:
        await gw.heartbeat()
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    assert recording.actions() == ["Heartbeat"]


@pytest.mark.parametrize("is_async", STYLES)
async def test_base_class_method_not_overridden_is_not_supported(make_cc, make_gw, is_async):
    class OnlyBoot(core.ControlCenterHandler):
        def on_boot_notification(self, gateway_id, request):
            return core.BootNotificationConfirmation(status="Accepted", current_time=T0, interval=1)

    class OnlyBootAsync(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            return core.BootNotificationConfirmation(status="Accepted", current_time=T0, interval=1)

    class OnlyReset(core.GatewayHandler):
        def on_reset(self, request):
            return core.ResetConfirmation(status="Rejected")

    class EmptyTrigger(rt.GatewayHandler):
        pass

    cc = await make_cc()
    cc.set_core_handler(OnlyBootAsync() if is_async else OnlyBoot())
    gw = await make_gw(None, start=False)
    gw.set_core_handler(OnlyReset())
    gw.set_remote_trigger_handler(EmptyTrigger())
    await gw.start(cc.url)
    assert (await gw.boot_notification("DX")).status == "Accepted"
    with pytest.raises(CallError) as caught:
        await gw.heartbeat()
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    assert "Heartbeat" in caught.value.description
    assert (await cc.reset(GW, "Hard")).status == "Rejected"
    with pytest.raises(CallError) as caught:
        await cc.change_configuration(GW, "k", "v")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    with pytest.raises(CallError) as caught:
        await cc.trigger_message(GW, "StatusNotification")
    assert caught.value.code is ErrorCode.NOT_SUPPORTED
    # NotSupported from a base method is an answer, not a handler failure
    assert reports(cc, "handler-error") == []
    assert reports(gw, "handler-error") == []


async def test_wrong_direction_call_on_the_wire_is_not_supported(make_gw, raw_server):
    gw = await make_gw(None, start=False)
    Recording(control_center=False, replies=C2G_REPLIES).install(gw)
    await gw.start(raw_server.url)
    peer = await raw_server.accept()
    peer.send_json(call_frame("a", "BootNotification", {"dingxGatewayModel": "X"}))
    peer.send_json(call_frame("b", "RemoteStartTransaction", {}))
    peer.send_json(call_frame("c", "Reset", {"type": "Sideways"}))
    peer.send_json(call_frame("d", "Reset", {"type": "Soft"}))
    answers = [await peer.receive() for _ in range(4)]
    assert [a[:3] for a in answers] == [
        [4, "a", "NotSupported"],
        [4, "b", "NotImplemented"],
        [4, "c", "PropertyConstraintViolation"],
        [3, "d", {"status": "Accepted"}],
    ]


# --- requests that cannot be sent ---------------------------------------------------------


async def test_wrong_direction_request_is_a_value_error(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    gw = await make_gw(None, start=False)
    Recording(control_center=False, replies=C2G_REPLIES).install(gw)
    frames = frames_in(cc)
    await gw.start(cc.url)
    for request in (
        core.BootNotificationRequest(dingx_gateway_model="DX"),
        core.HeartbeatRequest(),
        firmware.FirmwareStatusNotificationRequest(status="Idle"),
    ):
        with pytest.raises(ValueError, match="does not send"):
            await cc.send_request(GW, request)
        with pytest.raises(ValueError):
            cc.send_request_async(GW, request, lambda c, e: pytest.fail("callback called"))
    for request in (
        core.ResetRequest(type="Soft"),
        rt.TriggerMessageRequest(requested_message="Heartbeat"),
        firmware.UpdateFirmwareRequest(location="https://x.example/", retrieve_date=T0),
    ):
        with pytest.raises(ValueError, match="does not send"):
            await gw.send_request(request)
    # DataTransfer goes both ways
    assert (
        await cc.send_request(GW, core.DataTransferRequest(vendor_id="V"))
    ).status == "UnknownMessageId"
    assert (await gw.send_request(core.DataTransferRequest(vendor_id="V"))).data == "pong"
    await gw.heartbeat()  # a later frame: anything sent by mistake would come before it
    # only the DataTransfer CALL, the answer to the other one, then the Heartbeat
    assert len(frames) == 3 and b'"Heartbeat"' in frames[2]


def test_wrong_direction_request_on_sync_gateway(threaded_cc, make_sync_gw):
    cc = threaded_cc()
    gw = make_sync_gw()
    gw.start(cc.url)
    with pytest.raises(ValueError, match="does not send"):
        gw.send_request(core.GetConfigurationRequest())
    with pytest.raises(ValueError, match="does not send"):
        gw.send_request_async(core.ClearCacheRequest(), lambda c, e: None)


async def test_invalid_request_fails_before_sending(make_cc, make_gw):
    cc = await make_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    gw = await make_gw(None, start=False)
    gw_recording = Recording(control_center=False, replies=C2G_REPLIES)
    gw_recording.install(gw)
    frames = frames_in(cc)
    await gw.start(cc.url)
    called = threading.Event()

    with pytest.raises(PayloadValidationError) as caught:
        await gw.boot_notification("M" * 21)
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert caught.value.path == "dingxGatewayModel"
    with pytest.raises(PayloadValidationError) as caught:
        await gw.send_request(core.MeterValuesRequest(service_id=-1, meter_value=[METER_VALUE]))
    assert caught.value.path == "serviceId"
    with pytest.raises(PayloadValidationError):
        gw.send_request_async(
            core.DataTransferRequest(vendor_id="v" * 256), lambda c, e: called.set()
        )
    with pytest.raises(PayloadValidationError) as caught:
        await cc.change_configuration(GW, "k" * 51, "v")
    assert caught.value.path == "key"
    with pytest.raises(PayloadValidationError) as caught:
        await cc.get_diagnostics(GW, "not a uri")
    assert caught.value.path == "location"
    with pytest.raises(PayloadValidationError):
        cc.send_request_async(
            GW,
            core.CaptureProcessRequest(service_id="s", datapoint_ids=[]),
            lambda c, e: called.set(),
        )
    # nothing is stuck in the queue: the next valid calls go through at once, and
    # anything sent by mistake would have arrived before them
    assert (await gw.heartbeat()).current_time == T0
    assert (await cc.reset(GW, "Soft")).status == "Accepted"
    assert not called.is_set()
    assert len(frames) == 2 and b'"Heartbeat"' in frames[0]  # the Heartbeat, the Reset's answer
    assert recording.actions() == ["Heartbeat"] and gw_recording.actions() == ["Reset"]


# --- the blocking gateway: callbacks, hooks and error stream -------------------------------


def test_sync_gateway_async_callback_error_and_hooks(threaded_loop, threaded_cc, make_sync_gw):
    cc = threaded_cc()
    error = CallError(ErrorCode.SECURITY_ERROR, "who are you", {"hint": "boot first"})
    Recording(control_center=True, replies={**G2C_REPLIES, "DataTransfer": raising(error)}).install(
        cc
    )
    gw = make_sync_gw()
    states: list[tuple[str, str]] = []
    gw.set_connected_handler(lambda: states.append(("up", threading.current_thread().name)))
    gw.set_disconnected_handler(lambda: states.append(("down", threading.current_thread().name)))
    gw.start(cc.url)
    done = threading.Event()
    calls: list[tuple[Any, Any]] = []

    def callback(confirmation: Any, err: BaseException | None) -> None:
        calls.append((confirmation, err))
        done.set()

    gw.send_request_async(core.DataTransferRequest(vendor_id="V"), callback)
    assert done.wait(WAIT)
    threading.Event().wait(0.05)
    assert len(calls) == 1
    assert calls[0][0] is None
    assert isinstance(calls[0][1], CallError) and calls[0][1].details == {"hint": "boot first"}
    threaded_loop.run(cc.stop())
    for _ in range(100):  # the hook runs on the handler thread, soon
        if len(states) == 2:
            break
        threading.Event().wait(0.02)
    assert [s for s, _ in states] == ["up", "down"]
    assert all(thread.startswith("ntxcp-handler-") for _, thread in states)


def test_sync_gateway_error_stream(threaded_loop, make_sync_gw):
    server = threaded_loop.run(RawServer().start())
    try:
        gw = make_sync_gw()
        gw.start(server.url)
        peer = threaded_loop.run(server.accept())
        threaded_loop.call(lambda: peer.send_json([3, "unknown-id", {}]))
        report = next(gw.errors())
        assert report.kind == "unmatched-response"
        assert report.gateway_id == GW
    finally:
        threaded_loop.run(server.close())


# --- values past the edges of spec §3's types --------------------------------------------------


async def test_out_of_range_values_on_the_wire_are_answered_and_the_connection_stays(make_cc):
    """A date-time out of range in UTC or a huge integer gets a CALLERROR, never a 1011.

    A store-and-forward gateway re-sends a stored message until it is answered: a closed
    connection (or an ``InternalError``) would make it loop for ever (spec §6.2).
    """
    cc = await make_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    peer = await raw_connect(f"{cc.url}/{GW}")
    status = {"serviceId": "1", "status": "Available", "errorCode": "NoError"}
    meter = {"timestamp": "2026-11-23T18:36:34.123Z", "sampledValue": [{"value": "1"}]}
    peer.send_json(
        call_frame("a", "StatusNotification", {**status, "timestamp": "0001-01-01T00:00:00+01:00"})
    )
    peer.send_json(
        call_frame("b", "StatusNotification", {**status, "timestamp": "9999-12-31T23:59:59-01:00"})
    )
    peer.send_json(
        call_frame(
            "c", "MeterValues", {"serviceId": 99999999999999999999999999, "meterValue": [meter]}
        )
    )
    peer.send_json(call_frame("d", "Heartbeat"))
    answers = [await peer.receive() for _ in range(4)]
    assert [a[:3] for a in answers[:3]] == [
        [4, "a", "PropertyConstraintViolation"],
        [4, "b", "PropertyConstraintViolation"],
        [4, "c", "PropertyConstraintViolation"],
    ]
    assert "timestamp" in answers[0][3] and "serviceId" in answers[2][3]
    assert answers[3][:2] == [3, "d"]
    assert peer.close_code is None and cc.is_connected(GW)
    assert [r.action for r in recording.received] == ["Heartbeat"]
    peer.close()
