"""Every action of ntxcp 1.0 end to end, in each direction it exists in (spec §4, §5).

Each G→C action is sent by a gateway (the asyncio ``ntxcp.Gateway`` and the blocking
``ntxcp.sync.Gateway``) and each C→G action by the control center, three ways: the
typed method, ``send_request`` and ``send_request_async``. Handlers are written as
``def`` and as ``async def``. The handler must receive a request equal to the one sent
(typed, snake_case attributes) and the caller the confirmation the handler returned.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from endpoint_helpers import (
    C2G_CASES,
    C2G_REPLIES,
    G2C_CASES,
    G2C_REPLIES,
    GW,
    T0,
    WAIT,
    Case,
    Recording,
)

from ntxcp import CallContext, current_call
from ntxcp.v10 import core

pytestmark = pytest.mark.timeout(30)

MODES = ["typed", "send_request", "send_request_async"]
STYLES = [pytest.param(False, id="def"), pytest.param(True, id="async-def")]


def check_received(recording: Recording, case: Case, gateway_id: str | None) -> None:
    assert len(recording.received) == 1
    got = recording.received[0]
    assert got.action == case.action
    assert got.gateway_id == gateway_id
    assert type(got.request) is type(case.request)
    assert got.request == case.request


def check_confirmation(confirmation: Any, case: Case) -> None:
    assert type(confirmation) is type(case.confirmation)
    assert confirmation == case.confirmation


# --- asyncio gateway ------------------------------------------------------------------


async def call_async(send_async: Any, request: Any) -> Any:
    """Use ``send_request_async`` and check the callback runs exactly once."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    calls: list[tuple[Any, Any]] = []

    def callback(confirmation: Any, error: BaseException | None) -> None:
        calls.append((confirmation, error))
        if not done.done():
            done.set_result(None)

    assert send_async(request, callback) is None
    await asyncio.wait_for(done, WAIT)
    # The callback hangs on the confirmation's future, which ends once: a second call
    # would be queued on the loop with the first. A loop callback queued now runs later.
    later = loop.create_future()
    loop.call_soon(later.set_result, None)
    await later
    assert len(calls) == 1
    confirmation, error = calls[0]
    assert error is None
    return confirmation


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("is_async", STYLES)
@pytest.mark.parametrize("case", G2C_CASES, ids=str)
async def test_gateway_to_control_center(make_cc, make_gw, case, is_async, mode):
    cc = await make_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES, is_async=is_async)
    recording.install(cc)
    gw = await make_gw(cc.url)
    if mode == "typed":
        confirmation = await case.typed(gw)
    elif mode == "send_request":
        confirmation = await gw.send_request(case.request)
    else:
        confirmation = await call_async(gw.send_request_async, case.request)
    check_confirmation(confirmation, case)
    check_received(recording, case, GW)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("is_async", STYLES)
@pytest.mark.parametrize("case", C2G_CASES, ids=str)
async def test_control_center_to_gateway(make_cc, make_gw, case, is_async, mode):
    cc = await make_cc()
    gw = await make_gw(None, start=False)
    recording = Recording(control_center=False, replies=C2G_REPLIES, is_async=is_async)
    recording.install(gw)
    await gw.start(cc.url)
    if mode == "typed":
        confirmation = await case.typed(cc, GW)
    elif mode == "send_request":
        confirmation = await cc.send_request(GW, case.request)
    else:

        def send_async(request: Any, callback: Any) -> None:
            return cc.send_request_async(GW, request, callback)

        confirmation = await call_async(send_async, case.request)
    check_confirmation(confirmation, case)
    check_received(recording, case, None)


async def test_handlers_get_the_gateway_id_of_the_caller(make_cc, make_gw):
    cc = await make_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    one = await make_gw(cc.url, "GW one")
    two = await make_gw(cc.url, "GW-two")
    await one.heartbeat()
    await two.heartbeat()
    await one.heartbeat()
    assert [r.gateway_id for r in recording.received] == ["GW one", "GW-two", "GW one"]
    assert sorted(cc.gateways()) == ["GW one", "GW-two"]


async def test_control_center_addresses_each_gateway_by_id(make_cc, make_gw):
    cc = await make_cc()
    answered: dict[str, list[str]] = {"A": [], "B": []}
    for gateway_id in answered:

        class Handler(core.GatewayHandler):
            def on_data_transfer(self, request, _id=gateway_id):
                answered[_id].append(request.data)
                return core.DataTransferConfirmation(status="Accepted", data=_id)

        gw = await make_gw(None, gateway_id, start=False)
        gw.set_core_handler(Handler())
        await gw.start(cc.url)
    for n in range(3):
        for gateway_id in ("A", "B"):
            conf = await cc.data_transfer(gateway_id, "Ding", data=f"{gateway_id}{n}")
            assert conf.data == gateway_id
    assert answered == {"A": ["A0", "A1", "A2"], "B": ["B0", "B1", "B2"]}


# --- blocking gateway -----------------------------------------------------------------


def sync_call_async(gw: Any, request: Any) -> Any:
    """Blocking ``send_request_async``: the callback runs once, on the handler thread."""
    done = threading.Event()
    calls: list[tuple[Any, Any, str]] = []

    def callback(confirmation: Any, error: BaseException | None) -> None:
        calls.append((confirmation, error, threading.current_thread().name))
        done.set()

    assert gw.send_request_async(request, callback) is None
    assert done.wait(WAIT)
    threading.Event().wait(0.05)  # a second call would show up here
    assert len(calls) == 1
    confirmation, error, thread = calls[0]
    assert error is None
    assert thread.startswith("ntxcp-handler-")
    return confirmation


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("is_async", STYLES)
@pytest.mark.parametrize("case", G2C_CASES, ids=str)
def test_sync_gateway_to_control_center(threaded_cc, make_sync_gw, case, is_async, mode):
    cc = threaded_cc()
    recording = Recording(control_center=True, replies=G2C_REPLIES, is_async=is_async)
    recording.install(cc)
    gw = make_sync_gw()
    gw.start(cc.url)
    assert gw.is_connected
    if mode == "typed":
        confirmation = case.typed(gw)
    elif mode == "send_request":
        confirmation = gw.send_request(case.request)
    else:
        confirmation = sync_call_async(gw, case.request)
    check_confirmation(confirmation, case)
    check_received(recording, case, GW)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("is_async", STYLES)
@pytest.mark.parametrize("case", C2G_CASES, ids=str)
def test_control_center_to_sync_gateway(
    threaded_loop, threaded_cc, make_sync_gw, case, is_async, mode
):
    cc = threaded_cc()
    gw = make_sync_gw()
    recording = Recording(control_center=False, replies=C2G_REPLIES, is_async=is_async)
    recording.install(gw)
    gw.start(cc.url)
    if mode == "typed":
        confirmation = threaded_loop.run(case.typed(cc, GW))
    elif mode == "send_request":
        confirmation = threaded_loop.run(cc.send_request(GW, case.request))
    else:

        async def send() -> Any:
            def send_async(request: Any, callback: Any) -> None:
                return cc.send_request_async(GW, request, callback)

            return await call_async(send_async, case.request)

        confirmation = threaded_loop.run(send())
    check_confirmation(confirmation, case)
    check_received(recording, case, None)
    # plain handlers run on the gateway's handler thread, never on its event loop
    thread = recording.received[0].thread
    assert thread.startswith("ntxcp-loop-" if is_async else "ntxcp-handler-")


async def test_current_call_inside_handlers(make_cc, make_gw):
    seen: list[Any] = []

    class CenterSide(core.ControlCenterHandler):
        async def on_heartbeat(self, gateway_id, request):
            seen.append(current_call())
            await asyncio.sleep(0)
            seen.append(current_call())  # still the same call after an await
            return core.HeartbeatConfirmation(current_time=T0)

    class GatewaySide(core.GatewayHandler):
        def on_clear_cache(self, request):
            seen.append(current_call())
            return core.ClearCacheConfirmation(status="Accepted")

    cc = await make_cc()
    cc.set_core_handler(CenterSide())
    frames: list[bytes] = []
    cc.set_frame_logger(lambda gid, direction, frame, info: frames.append(frame))
    gw = await make_gw(None, start=False)
    gw.set_core_handler(GatewaySide())
    await gw.start(cc.url)
    await gw.heartbeat()
    await cc.clear_cache(GW)
    assert current_call() is None  # outside of handlers
    first, again, on_gateway = seen
    assert isinstance(first, CallContext)
    assert (first.gateway_id, first.action) == (GW, "Heartbeat")
    assert again.unique_id == first.unique_id
    assert f'[2,"{first.unique_id}","Heartbeat",{{}}]'.encode() == frames[0]
    assert (on_gateway.gateway_id, on_gateway.action) == (GW, "ClearCache")
    assert on_gateway.unique_id in frames[2].decode()
