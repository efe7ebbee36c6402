"""Call flow end to end: timeouts, queueing, ordering, disconnects (spec §2.3, §6.4)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from endpoint_helpers import (
    C2G_REPLIES,
    G2C_REPLIES,
    GW,
    METER_VALUE,
    T0,
    WAIT,
    Recording,
    call_frame,
    eventually,
    next_error,
    raw_connect,
)

from ntxcp import (
    CallTimeoutError,
    DisconnectedError,
    NotConnectedError,
    QueueFullError,
)
from ntxcp.v10 import core, encode_payload

pytestmark = pytest.mark.timeout(30)

ACCEPTED_BOOT = core.BootNotificationConfirmation(status="Accepted", current_time=T0, interval=60)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


# --- timeouts (spec §2.3.2) -----------------------------------------------------------------


async def test_timeout_then_next_queued_call_works_and_late_answer_is_reported(make_cc, make_gw):
    class SlowReset(core.GatewayHandler):
        async def on_reset(self, request):
            await asyncio.sleep(3.0)  # far past the timeout, even on a loaded machine
            return core.ResetConfirmation(status="Accepted")

        def on_clear_cache(self, request):
            return core.ClearCacheConfirmation(status="Accepted")

    cc = await make_cc()
    gw = await make_gw(None, start=False)
    gw.set_core_handler(SlowReset())
    await gw.start(cc.url)
    start = time.monotonic()
    first = asyncio.ensure_future(cc.reset(GW, "Soft", timeout=0.2))
    second = asyncio.ensure_future(cc.clear_cache(GW, timeout=10))  # queued behind the first
    with pytest.raises(CallTimeoutError) as caught:
        await first
    assert 0.15 < elapsed_since(start) < 2.0
    assert caught.value.action == "Reset"
    assert caught.value.timeout == 0.2
    assert isinstance(caught.value, TimeoutError)
    assert not second.done()
    assert (await second).status == "Accepted"
    late = await next_error(cc, "unmatched-response")
    assert late.gateway_id == GW
    assert caught.value.unique_id in late.data
    assert cc.is_connected(GW)


async def test_gateway_call_timeout_and_default_call_timeout(make_cc, make_gw):
    class SlowBoot(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            await asyncio.sleep(3.0)  # far past the timeout, even on a loaded machine
            return ACCEPTED_BOOT

        def on_heartbeat(self, gateway_id, request):
            return core.HeartbeatConfirmation(current_time=T0)

    cc = await make_cc()
    cc.set_core_handler(SlowBoot())
    gw = await make_gw(cc.url, call_timeout=0.2)  # the default timeout of every call
    start = time.monotonic()
    with pytest.raises(CallTimeoutError) as caught:
        await gw.boot_notification("DX")
    assert caught.value.timeout == 0.2
    assert elapsed_since(start) < 2.0
    # the control center's worker is still in the slow handler; the heartbeat waits for it
    assert (await gw.heartbeat(timeout=10)).current_time == T0
    late = await next_error(gw, "unmatched-response")
    assert late.gateway_id == GW


def test_sync_gateway_timeout(threaded_cc, make_sync_gw):
    # The first answer takes 3 s: a call with a 0.2 s timeout must fail long before it
    # (the margin leaves room for a loaded machine), not wait for the late answer.
    delays = [3.0]

    class SlowHeartbeat(core.ControlCenterHandler):
        async def on_heartbeat(self, gateway_id, request):
            await asyncio.sleep(delays.pop() if delays else 0.0)
            return core.HeartbeatConfirmation(current_time=T0)

    cc = threaded_cc()
    cc.set_core_handler(SlowHeartbeat())
    gw = make_sync_gw()
    gw.start(cc.url)
    start = time.monotonic()
    with pytest.raises(CallTimeoutError):
        gw.heartbeat(timeout=0.2)
    assert elapsed_since(start) < 2.0
    assert gw.heartbeat(timeout=10).current_time == T0


def test_sync_gateway_every_call_times_out_on_time(threaded_cc, make_sync_gw):
    # uvloop (the blocking gateway's loop) keeps time in milliseconds: a deadline of
    # now + 0.2 can be 865.7950000000001 while the timer runs at 865.795. The call
    # must still fail then, not wait for a late answer.
    class SlowHeartbeat(core.ControlCenterHandler):
        async def on_heartbeat(self, gateway_id, request):
            await asyncio.sleep(0.6)
            return core.HeartbeatConfirmation(current_time=T0)

    cc = threaded_cc()
    cc.set_core_handler(SlowHeartbeat())
    for number, timeout in enumerate((0.1, 0.2, 0.3) * 3):
        gw = make_sync_gw(f"{GW}-{number}")
        gw.start(cc.url)
        with pytest.raises(CallTimeoutError):
            gw.heartbeat(timeout=timeout)


# --- a slow handler never blocks the other direction (spec §6.4) -----------------------------


async def test_gateway_handler_awaits_its_own_call_to_the_control_center(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    gw = await make_gw(None, start=False)
    seen: list[Any] = []

    class ResetAfterStatus(core.GatewayHandler):
        async def on_reset(self, request):
            # a G→C call from inside the handler of a C→G call
            seen.append(await gw.status_notification("0", "NoError", "Unavailable"))
            seen.append(await gw.heartbeat())
            return core.ResetConfirmation(status="Accepted")

    gw.set_core_handler(ResetAfterStatus())
    await gw.start(cc.url)
    assert (await cc.reset(GW, "Soft", timeout=3)).status == "Accepted"
    assert seen == [
        core.StatusNotificationConfirmation(),
        core.HeartbeatConfirmation(current_time=T0),
    ]


async def test_control_center_handler_awaits_its_own_call_to_the_gateway(make_cc, make_gw):
    cc = await make_cc()

    class BootThenAskConfiguration(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            conf = await cc.get_configuration(gateway_id, ["HeartbeatInterval"])
            interval = int(conf.configuration_key[0].value)
            return core.BootNotificationConfirmation(
                status="Accepted", current_time=T0, interval=interval
            )

    cc.set_core_handler(BootThenAskConfiguration())
    gw = await make_gw(None, start=False)
    Recording(control_center=False, replies=C2G_REPLIES).install(gw)
    await gw.start(cc.url)
    assert (await gw.boot_notification("DX", timeout=3)).interval == 600


def test_sync_gateway_handler_calls_the_control_center(threaded_loop, threaded_cc, make_sync_gw):
    cc = threaded_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    gw = make_sync_gw()

    class ResetAfterStatus(core.GatewayHandler):
        def on_reset(self, request):
            gw.status_notification("0", "NoError", "Unavailable", info="resetting")
            return core.ResetConfirmation(status="Accepted")

    gw.set_core_handler(ResetAfterStatus())
    gw.start(cc.url)
    assert threaded_loop.run(cc.reset(GW, "Hard", timeout=3)).status == "Accepted"
    assert recording.actions() == ["StatusNotification"]
    assert recording.received[0].request.info == "resetting"


async def test_slow_handlers_do_not_delay_answers_to_own_calls(make_cc, make_gw):
    """Both sides busy in a slow handler still get the answers to their own CALLs."""
    release = asyncio.Event()
    busy: list[str] = []

    class SlowBoot(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            busy.append("boot")
            await release.wait()
            return ACCEPTED_BOOT

        def on_heartbeat(self, gateway_id, request):
            return core.HeartbeatConfirmation(current_time=T0)

    class SlowReset(core.GatewayHandler):
        async def on_reset(self, request):
            busy.append("reset")
            await release.wait()
            return core.ResetConfirmation(status="Accepted")

        def on_clear_cache(self, request):
            return core.ClearCacheConfirmation(status="Accepted")

    cc = await make_cc()
    cc.set_core_handler(SlowBoot())
    gw = await make_gw(None, start=False)
    gw.set_core_handler(SlowReset())
    await gw.start(cc.url)
    boot = asyncio.ensure_future(gw.boot_notification("DX", timeout=5))
    reset = asyncio.ensure_future(cc.reset(GW, "Soft", timeout=5))
    await eventually(lambda: sorted(busy) == ["boot", "reset"])  # both handlers are busy
    assert not boot.done() and not reset.done()
    # a second gateway is not held up by the first one's slow handler
    other = await make_gw(None, "GW-2", start=False)
    other.set_core_handler(SlowReset())
    await other.start(cc.url)
    # (held up, these would wait for `release`, set only below, and time out)
    assert (await other.heartbeat(timeout=WAIT)).current_time == T0
    assert (await cc.clear_cache("GW-2", timeout=WAIT)).status == "Accepted"
    release.set()
    assert (await boot).status == "Accepted"
    assert (await reset).status == "Accepted"


# --- CALLs answered in arrival order (spec §2.3.4, §6.4) ---------------------------------------


async def test_control_center_answers_in_arrival_order(make_cc):
    order: list[str] = []

    class Mixed(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            order.append("boot")
            await asyncio.sleep(0.15)
            return ACCEPTED_BOOT

        def on_heartbeat(self, gateway_id, request):
            order.append("heartbeat")
            return core.HeartbeatConfirmation(current_time=T0)

        async def on_status_notification(self, gateway_id, request):
            order.append("status")
            return core.StatusNotificationConfirmation()

        def on_meter_values(self, gateway_id, request):
            order.append("meter")
            return core.MeterValuesConfirmation()

        async def on_data_transfer(self, gateway_id, request):
            order.append("data")
            await asyncio.sleep(float(request.data))
            return core.DataTransferConfirmation(status="Accepted", data=request.data)

    cc = await make_cc()
    cc.set_core_handler(Mixed())
    peer = await raw_connect(f"{cc.url}/{GW}")
    boot = {"dingxGatewayModel": "DX"}
    status = {"serviceId": "0", "errorCode": "NoError", "status": "Available"}
    meter = payload_json(core.MeterValuesRequest(service_id=1, meter_value=[METER_VALUE]))
    calls = [
        call_frame("1", "BootNotification", boot),
        call_frame("2", "Heartbeat"),
        call_frame("3", "StatusNotification", status),
        call_frame("4", "Heartbeat"),
        call_frame("5", "DataTransfer", {"vendorId": "V", "data": "0.1"}),
        call_frame("6", "MeterValues", meter),
        call_frame("7", "DataTransfer", {"vendorId": "V", "data": "0"}),
        call_frame("8", "Heartbeat"),
    ]
    for frame in calls:
        peer.send_json(frame)
    answers = [await peer.receive() for _ in calls]
    assert [a[0] for a in answers] == [3] * len(calls)
    assert [a[1] for a in answers] == [str(n) for n in range(1, 9)]
    assert order == [
        "boot",
        "heartbeat",
        "status",
        "heartbeat",
        "data",
        "meter",
        "data",
        "heartbeat",
    ]
    peer.close()


async def test_rejected_calls_are_answered_in_arrival_order_too(make_cc):
    class SlowBoot(core.ControlCenterHandler):
        async def on_boot_notification(self, gateway_id, request):
            await asyncio.sleep(0.2)
            return ACCEPTED_BOOT

    cc = await make_cc()
    cc.set_core_handler(SlowBoot())
    peer = await raw_connect(f"{cc.url}/{GW}")
    peer.send_json(call_frame("1", "BootNotification", {"dingxGatewayModel": "DX"}))
    peer.send_json(call_frame("2", "BootNotification", {}))  # invalid payload
    peer.send_json(call_frame("3", "FirmwareStatusNotification", {"status": "Idle"}))  # no handler
    peer.send_json(call_frame("4", "Heartbeat"))  # base method: NotSupported
    answers = [await peer.receive() for _ in range(4)]
    assert [a[1] for a in answers] == ["1", "2", "3", "4"]
    assert [a[0] for a in answers] == [3, 4, 4, 4]
    assert [a[2] for a in answers[1:]] == [
        "OccurrenceConstraintViolation",
        "NotSupported",
        "NotSupported",
    ]
    peer.close()


async def test_gateway_answers_in_arrival_order(make_gw, raw_server):
    order: list[str] = []

    class Mixed(core.GatewayHandler):
        async def on_reset(self, request):
            order.append("reset")
            await asyncio.sleep(0.15)
            return core.ResetConfirmation(status="Accepted")

        def on_clear_cache(self, request):
            order.append("clear")
            return core.ClearCacheConfirmation(status="Accepted")

        async def on_get_configuration(self, request):
            order.append("get")
            return core.GetConfigurationConfirmation(unknown_key=request.key)

        def on_change_configuration(self, request):
            order.append("change")
            return core.ChangeConfigurationConfirmation(status="Accepted")

    gw = await make_gw(None, start=False)
    gw.set_core_handler(Mixed())
    await gw.start(raw_server.url)
    peer = await raw_server.accept()
    assert peer.request is not None
    assert peer.request.path == b"/ntxcp/GW-1" or peer.request.path == "/ntxcp/GW-1"
    calls = [
        call_frame("a", "Reset", {"type": "Soft"}),
        call_frame("b", "ClearCache"),
        call_frame("c", "GetConfiguration", {"key": ["x"]}),
        call_frame("d", "ChangeConfiguration", {"key": "k", "value": "v"}),
        call_frame("e", "Reset", {"type": "Hard"}),
        call_frame("f", "ClearCache"),
    ]
    for frame in calls:
        peer.send_json(frame)
    answers = [await peer.receive() for _ in calls]
    assert [(a[0], a[1]) for a in answers] == [(3, x) for x in "abcdef"]
    assert answers[2][2] == {"unknownKey": ["x"]}
    assert order == ["reset", "clear", "get", "change", "reset", "clear"]


def payload_json(request: Any) -> Any:
    return json.loads(encode_payload(request))


# --- one CALL in flight, FIFO queue (spec §2.3.1) ---------------------------------------------


async def test_queue_full(make_cc):
    cc = await make_cc(queue_capacity=2)
    peer = await raw_connect(f"{cc.url}/{GW}")  # sees every frame the control center sends
    await eventually(lambda: cc.is_connected(GW))
    finished: list[str] = []

    async def change(key: str) -> None:
        await cc.change_configuration(GW, key, "v", timeout=WAIT)
        finished.append(key)

    in_flight = asyncio.ensure_future(change("k1"))
    call = await peer.receive()
    assert call[2:] == ["ChangeConfiguration", {"key": "k1", "value": "v"}]  # one on the wire
    queued = [asyncio.ensure_future(change(k)) for k in ("k2", "k3")]
    extra = asyncio.ensure_future(change("k4"))
    with pytest.raises(QueueFullError) as caught:
        await extra
    assert caught.value.capacity == 2
    with pytest.raises(QueueFullError):
        cc.send_request_async(
            GW, core.ClearCacheRequest(), lambda c, e: pytest.fail("callback called")
        )
    # A later frame from the control center: a queued CALL sent too early would come first.
    peer.send_json(call_frame("later", "Heartbeat"))
    assert (await peer.receive())[:2] == [4, "later"]
    for key in ("k1", "k2", "k3"):  # still one in flight: the next only after an answer
        assert call[2:] == ["ChangeConfiguration", {"key": key, "value": "v"}]
        peer.send_json([3, call[1], {"status": "Accepted"}])
        if key != "k3":
            call = await peer.receive()
    await asyncio.wait_for(asyncio.gather(in_flight, *queued), WAIT)
    assert finished == ["k1", "k2", "k3"]
    peer.close()


async def test_gateway_queue_full(make_cc, make_gw):
    release = asyncio.Event()
    entered: list[str] = []

    class Blocking(core.ControlCenterHandler):
        async def on_data_transfer(self, gateway_id, request):
            entered.append(request.data)
            await release.wait()
            return core.DataTransferConfirmation(status="Accepted", data=request.data)

    cc = await make_cc()
    cc.set_core_handler(Blocking())
    gw = await make_gw(cc.url, queue_capacity=1)
    first = asyncio.ensure_future(gw.data_transfer("V", data="1"))
    await eventually(lambda: entered == ["1"])  # in flight
    second = asyncio.ensure_future(gw.data_transfer("V", data="2"))
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError):
        await gw.data_transfer("V", data="3")
    release.set()
    assert [(await f).data for f in (first, second)] == ["1", "2"]


# --- disconnect fails pending calls at once (spec §2.3.3) ---------------------------------------


async def test_gateway_disconnect_fails_control_center_calls_at_once(make_cc, make_gw):
    reset_on_the_wire = asyncio.Event()

    class Never(core.GatewayHandler):
        async def on_reset(self, request):
            reset_on_the_wire.set()
            await asyncio.sleep(60)

    cc = await make_cc()
    gw = await make_gw(None, start=False)
    gw.set_core_handler(Never())
    await gw.start(cc.url)
    pending = asyncio.ensure_future(cc.reset(GW, "Soft", timeout=20))
    queued = asyncio.ensure_future(cc.clear_cache(GW, timeout=20))
    await asyncio.wait_for(reset_on_the_wire.wait(), WAIT)  # the ClearCache waits behind it
    results: list[Any] = []
    cc.send_request_async(GW, core.ClearCacheRequest(), lambda c, e: results.append((c, e)))
    await gw.stop()
    for future in (pending, queued):
        with pytest.raises(DisconnectedError):  # at once, not after their 20 s timeout
            await asyncio.wait_for(future, WAIT)
    await eventually(lambda: bool(results))
    assert len(results) == 1
    assert results[0][0] is None and isinstance(results[0][1], DisconnectedError)
    assert not cc.is_connected(GW)
    with pytest.raises(NotConnectedError):
        await cc.reset(GW, "Soft")


async def test_abrupt_gateway_loss_fails_control_center_calls_at_once(make_cc):
    cc = await make_cc()
    peer = await raw_connect(f"{cc.url}/{GW}")
    await eventually(lambda: cc.is_connected(GW))
    pending = asyncio.ensure_future(cc.reset(GW, "Soft", timeout=20))
    assert (await peer.receive())[2] == "Reset"
    assert peer.transport is not None
    peer.transport.underlying_transport.abort()  # no close frame, TCP gone
    with pytest.raises(DisconnectedError):  # at once, not after its 20 s timeout
        await asyncio.wait_for(pending, WAIT)


async def test_control_center_loss_fails_gateway_calls_at_once(make_gw, raw_server):
    gw = await make_gw(raw_server.url)
    peer = await raw_server.accept()
    pending = asyncio.ensure_future(gw.boot_notification("DX", timeout=20))
    queued = asyncio.ensure_future(gw.heartbeat(timeout=20))
    assert (await peer.receive())[2] == "BootNotification"
    peer.close(1011)
    for future in (pending, queued):
        with pytest.raises(DisconnectedError):  # at once, not after their 20 s timeout
            await asyncio.wait_for(future, WAIT)
    assert not gw.is_connected


# --- not connected: fail immediately, never call back ---------------------------------------------


async def test_not_connected(make_cc, make_gw):
    cc = await make_cc()
    called: list[Any] = []  # callbacks of refused sends: must stay empty

    def callback(confirmation: Any, error: Any) -> None:
        called.append((confirmation, error))

    start = time.monotonic()
    with pytest.raises(NotConnectedError) as caught:
        await cc.reset("nobody", "Soft")
    assert not isinstance(caught.value, DisconnectedError)
    with pytest.raises(NotConnectedError):
        await cc.send_request("nobody", core.ClearCacheRequest())
    with pytest.raises(NotConnectedError):
        cc.send_request_async("nobody", core.ClearCacheRequest(), callback)
    gw = await make_gw(None, start=False)
    with pytest.raises(NotConnectedError):
        await gw.heartbeat()
    with pytest.raises(NotConnectedError):
        gw.send_request_async(core.HeartbeatRequest(), callback)
    # a gateway that was connected and left
    await gw.start(cc.url)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    await gw.heartbeat()
    await gw.stop()
    await eventually(lambda: not cc.is_connected(GW))
    with pytest.raises(NotConnectedError):
        await cc.clear_cache(GW)
    with pytest.raises(NotConnectedError):
        cc.send_request_async(GW, core.ClearCacheRequest(), callback)
    with pytest.raises(NotConnectedError):
        await gw.heartbeat()
    assert elapsed_since(start) < 2.0
    # no callback shows up late: proven after a later round trip through both endpoints
    await gw.start(cc.url)
    await gw.heartbeat()
    assert called == []


def test_sync_gateway_not_connected(make_sync_gw):
    gw = make_sync_gw()
    assert not gw.is_connected
    with pytest.raises(NotConnectedError):
        gw.heartbeat()
    with pytest.raises(NotConnectedError):
        gw.send_request_async(core.HeartbeatRequest(), lambda c, e: pytest.fail("called"))
