"""Connections end to end: hooks, duplicate ids, stopping, keep-alive, error stream (§1, §6)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from endpoint_helpers import (
    C2G_REPLIES,
    G2C_REPLIES,
    GW,
    T0,
    WAIT,
    RawPeer,
    RawServer,
    Recording,
    call_frame,
    eventually,
    next_error,
    raw_connect,
)
from picows import WSFrame, WSMsgType, WSTransport, ws_connect

from ntxcp import (
    Backoff,
    ControlCenter,
    DisconnectedError,
    EndpointError,
    GatewayConnection,
    HandshakeRefusedError,
    NotConnectedError,
)
from ntxcp.transport import SUBPROTOCOL
from ntxcp.v10 import core, types

pytestmark = pytest.mark.timeout(30)


class NeverAnswers(core.GatewayHandler):
    def __init__(self) -> None:
        self.resetting = asyncio.Event()  # set once a Reset is being handled

    async def on_reset(self, request):
        self.resetting.set()
        await asyncio.sleep(60)


class SlowBoot(core.ControlCenterHandler):
    def __init__(self) -> None:
        self.booting = asyncio.Event()  # set once a BootNotification is being handled

    async def on_boot_notification(self, gateway_id, request):
        self.booting.set()
        await asyncio.sleep(60)

    def on_heartbeat(self, gateway_id, request):
        return core.HeartbeatConfirmation(current_time=T0)


# --- connection hooks (spec §6.1) -------------------------------------------------------------


async def test_connection_hooks_get_gateway_connection(make_cc, make_gw):
    cc = await make_cc()
    connected: list[GatewayConnection] = []
    disconnected: list[GatewayConnection] = []
    cc.set_new_gateway_handler(connected.append)
    cc.set_gateway_disconnected_handler(disconnected.append)
    before = datetime.now(UTC)
    gw = await make_gw(cc.url)
    await eventually(lambda: len(connected) == 1)
    after = datetime.now(UTC)
    connection = connected[0]
    assert isinstance(connection, GatewayConnection)
    assert connection.id == GW
    assert connection.remote_address is not None
    host, port = connection.remote_address
    assert host == "127.0.0.1"
    assert isinstance(port, int) and port > 0
    assert connection.tls is False
    assert connection.peer_certificate is None
    assert connection.subprotocol == "ntxcp1.0"
    assert connection.connected_since.tzinfo is not None
    assert before <= connection.connected_since <= after
    assert cc.connection(GW) == connection
    assert cc.is_connected(GW)
    assert cc.gateways() == [GW]
    assert disconnected == []
    await gw.stop()
    await eventually(lambda: len(disconnected) == 1)
    # The same connection, now with how it closed: 1000 from Gateway.stop() (spec §6.2).
    assert disconnected[0].id == connection.id
    assert disconnected[0].connected_since == connection.connected_since
    assert connection.close_code is None
    assert disconnected[0].close_code == 1000
    assert cc.connection(GW) is None
    assert not cc.is_connected(GW)
    assert cc.gateways() == []
    # no late hook call: proven by a later gateway's hooks, called after any for GW
    later = await make_gw(cc.url, "GW-LATER")
    await later.stop()
    await eventually(lambda: [c.id for c in disconnected] == [GW, "GW-LATER"])
    assert [c.id for c in connected] == [GW, "GW-LATER"]


async def test_async_hooks_and_failing_hooks(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    seen: list[str] = []

    async def on_connected(connection: GatewayConnection) -> None:
        await asyncio.sleep(0)
        seen.append(f"up {connection.id}")

    def on_disconnected(connection: GatewayConnection) -> None:
        seen.append(f"down {connection.id}")
        raise RuntimeError("hook bug")  # logged, never breaks anything

    cc.set_new_gateway_handler(on_connected)
    cc.set_gateway_disconnected_handler(on_disconnected)
    one = await make_gw(cc.url, "one")
    await eventually(lambda: seen == ["up one"])
    await one.stop()
    await eventually(lambda: seen == ["up one", "down one"])
    two = await make_gw(cc.url, "two")
    await eventually(lambda: seen[-1] == "up two")
    assert (await two.heartbeat()).current_time == T0


async def test_gateway_state_hooks(make_cc, make_gw):
    cc = await make_cc()
    events: list[str] = []
    gw = await make_gw(None, start=False)
    gw.set_connected_handler(lambda: events.append("connected"))
    gw.set_disconnected_handler(lambda: events.append("disconnected"))
    assert not gw.is_connected
    await gw.start(cc.url)
    assert gw.is_connected
    assert gw.url == f"{cc.url}/{GW}"
    await cc.stop()
    await eventually(lambda: events == ["connected", "disconnected"])
    assert not gw.is_connected


# --- one connection per id (spec §1) -------------------------------------------------------------


async def test_duplicate_id_replaces_the_old_connection(make_cc, make_gw):
    cc = await make_cc()
    connected: list[GatewayConnection] = []
    disconnected: list[GatewayConnection] = []
    cc.set_new_gateway_handler(connected.append)
    cc.set_gateway_disconnected_handler(disconnected.append)
    old = await raw_connect(f"{cc.url}/{GW}")
    await eventually(lambda: len(connected) == 1)
    pending = asyncio.ensure_future(cc.reset(GW, "Soft", timeout=20))
    assert (await old.receive())[2] == "Reset"
    new = await make_gw(None, start=False)
    Recording(control_center=False, replies=C2G_REPLIES).install(new)
    await new.start(cc.url)
    assert await old.wait_closed() == 1008
    assert old.close_reason == "replaced"
    with pytest.raises(DisconnectedError):
        await asyncio.wait_for(pending, 2)
    assert (await cc.reset(GW, "Hard")).status == "Accepted"  # reaches the new connection
    await eventually(lambda: len(disconnected) == 1)
    assert len(connected) == 2
    assert disconnected[0].remote_address == connected[0].remote_address
    assert (disconnected[0].close_code, disconnected[0].close_reason) == (1008, "replaced")
    assert cc.connection(GW) is connected[1]
    assert cc.gateways() == [GW]
    await new.stop()
    await eventually(lambda: len(disconnected) == 2)
    assert disconnected[1].remote_address == connected[1].remote_address
    assert disconnected[1].close_code == 1000
    # no late hook call: proven by a later gateway's hooks, called after any for GW
    later = await make_gw(cc.url, "GW-LATER")
    await later.stop()
    await eventually(lambda: [c.id for c in disconnected] == [GW, GW, "GW-LATER"])
    assert [c.id for c in connected] == [GW, GW, "GW-LATER"]


async def test_replaced_gateway_pending_calls_fail(make_cc, make_gw):
    cc = await make_cc()
    slow_boot = SlowBoot()
    cc.set_core_handler(slow_boot)
    first = await make_gw(cc.url)
    first_down = asyncio.Event()
    first.set_disconnected_handler(first_down.set)
    pending = asyncio.ensure_future(first.boot_notification("DX", timeout=20))
    await asyncio.wait_for(slow_boot.booting.wait(), WAIT)
    second = await make_gw(cc.url)
    with pytest.raises(DisconnectedError):
        await asyncio.wait_for(pending, 2)
    await asyncio.wait_for(first_down.wait(), WAIT)
    assert not first.is_connected
    assert (await second.heartbeat()).current_time == T0


async def test_reject_duplicate(make_cc, make_gw):
    cc = await make_cc(reject_duplicate=True)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    connected: list[GatewayConnection] = []
    cc.set_new_gateway_handler(connected.append)
    first = await make_gw(cc.url)
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(cc.url)
    assert caught.value.status == 409
    assert not caught.value.permanent
    report = await next_error(cc, "handshake-refused")
    assert report.gateway_id == GW
    assert "409" in str(report)
    assert (await first.heartbeat()).current_time == T0
    assert len(connected) == 1
    # once the first is gone, the id is free again
    await first.stop()
    await eventually(lambda: not cc.is_connected(GW))
    again = await make_gw(cc.url)
    assert again.is_connected


# --- stopping (spec §6.1, §6.2) ---------------------------------------------------------------


async def test_control_center_stop_closes_everything_with_1001(make_cc, make_gw):
    cc = await make_cc()
    slow_boot = SlowBoot()
    cc.set_core_handler(slow_boot)
    disconnected: list[str] = []
    cc.set_gateway_disconnected_handler(lambda c: disconnected.append(c.id))
    raw = await raw_connect(f"{cc.url}/raw")
    gw = await make_gw(None, "GW-2", start=False)
    never_answers = NeverAnswers()
    gw.set_core_handler(never_answers)
    await gw.start(cc.url)
    gw_down = asyncio.Event()
    gw.set_disconnected_handler(gw_down.set)
    await eventually(lambda: len(cc.gateways()) == 2)
    g2c = asyncio.ensure_future(gw.boot_notification("DX", timeout=20))
    c2g = asyncio.ensure_future(cc.reset("GW-2", "Soft", timeout=20))
    c2g_queued = asyncio.ensure_future(cc.clear_cache("GW-2", timeout=20))
    raw_pending = asyncio.ensure_future(cc.clear_cache("raw", timeout=20))
    errors_ended = asyncio.ensure_future(_drain(cc))
    # every call is on the wire (the ClearCache to GW-2 waits behind the Reset)
    await asyncio.wait_for(slow_boot.booting.wait(), WAIT)
    await asyncio.wait_for(never_answers.resetting.wait(), WAIT)
    assert (await raw.receive())[2] == "ClearCache"
    url = cc.url
    # calls still pending after the grace period fail: the 60 s handlers are not awaited
    await asyncio.wait_for(cc.stop(grace=0.5), WAIT)
    assert await raw.wait_closed() == 1001
    for future in (g2c, c2g, c2g_queued, raw_pending):
        with pytest.raises(DisconnectedError):
            await asyncio.wait_for(future, 1)
    await asyncio.wait_for(gw_down.wait(), WAIT)
    assert sorted(disconnected) == ["GW-2", "raw"]
    assert cc.gateways() == []
    await asyncio.wait_for(errors_ended, 1)  # the error stream ends with the endpoint
    with pytest.raises(NotConnectedError):
        await cc.reset("GW-2", "Soft")
    with pytest.raises(OSError):
        await raw_connect(f"{url}/late")  # no longer listening


async def test_control_center_stop_is_quick_when_idle(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    gateways = [await make_gw(cc.url, f"GW-{n}") for n in range(5)]
    raw = await raw_connect(f"{cc.url}/raw")
    for gw in gateways:
        await gw.heartbeat()
    await asyncio.wait_for(cc.stop(grace=60), WAIT)  # idle: nothing to wait the grace for
    assert await raw.wait_closed() == 1001
    await eventually(lambda: not any(gw.is_connected for gw in gateways))
    await cc.stop()  # idempotent


async def _drain(endpoint) -> list[EndpointError]:
    return [error async for error in endpoint.errors()]


async def test_gateway_stop_closes_with_1000(make_gw, raw_server):
    gw = await make_gw(raw_server.url)
    peer = await raw_server.accept()
    pending = asyncio.ensure_future(gw.heartbeat(timeout=20))
    assert (await peer.receive())[2] == "Heartbeat"
    await gw.stop()
    assert await peer.wait_closed() == 1000
    with pytest.raises(NotConnectedError):
        await asyncio.wait_for(pending, 1)
    assert not gw.is_connected


async def test_gateway_stop_seen_by_control_center(make_cc, make_gw):
    cc = await make_cc()
    closed = asyncio.Event()
    cc.set_gateway_disconnected_handler(lambda connection: closed.set())
    gw = await make_gw(cc.url)
    await gw.stop()
    await asyncio.wait_for(closed.wait(), WAIT)
    await gw.stop()  # idempotent


def test_sync_gateway_stop_closes_with_1000(threaded_loop, make_sync_gw):
    server = threaded_loop.run(RawServer().start())
    try:
        gw = make_sync_gw()
        gw.start(server.url)
        peer = threaded_loop.run(server.accept())
        assert gw.is_connected
        gw.stop()
        assert threaded_loop.run(peer.wait_closed()) == 1000
        assert not gw.is_connected
        gw.stop()  # idempotent
    finally:
        threaded_loop.run(server.close())


def test_sync_gateway_takes_a_failover_list(threaded_cc, make_sync_gw):
    cc = threaded_cc()
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{probe.getsockname()[1]}/ntxcp"
    gw = make_sync_gw()
    gw.start([dead, cc.url])  # the first URL is down: the second answers
    assert gw.is_connected and gw.url == f"{cc.url}/{GW}"
    assert gw.urls == (f"{dead}/{GW}", f"{cc.url}/{GW}")


# --- keep-alive (spec §1) ---------------------------------------------------------------------


class CountingPongs(RawPeer):
    """A raw peer that answers every PING itself and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.pongs = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            self.pongs += 1
        else:
            super().on_ws_frame(transport, frame)


async def test_server_closes_a_gateway_that_does_not_answer_pings(make_cc):
    cc = await make_cc(ping_interval=0.2, ping_timeout=0.2)
    gone: list[str] = []
    cc.set_gateway_disconnected_handler(lambda c: gone.append(c.id))
    silent = await raw_connect(f"{cc.url}/silent", enable_auto_pong=False)
    polite = CountingPongs()
    await ws_connect(
        lambda: polite,
        f"{cc.url}/polite",
        extra_headers={"Sec-WebSocket-Protocol": SUBPROTOCOL},
        enable_auto_pong=False,
    )
    start = time.monotonic()
    code = await silent.wait_closed(timeout=3)
    assert time.monotonic() - start < 2.0
    assert code == 1001
    await eventually(lambda: gone == ["silent"])
    # the one that answers stays: its third ping comes after the first one's deadline
    await eventually(lambda: polite.pongs >= 3 or polite.disconnected.is_set())
    assert not polite.disconnected.is_set()
    assert cc.gateways() == ["polite"]
    polite.send_json(call_frame("1", "Heartbeat"))
    assert (await polite.receive())[:3] == [4, "1", "NotSupported"]


class SwitchablePongs(RawPeer):
    """A raw peer that answers pings only while ``answering`` (TCP stays open)."""

    def __init__(self) -> None:
        super().__init__()
        self.answering = True
        self.pings = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.PING:
            self.pings += 1
            if self.answering:
                transport.send_pong(frame.get_payload_as_bytes())
        else:
            super().on_ws_frame(transport, frame)


async def _switchable(cc: Any, gateway_id: str, answering: bool) -> SwitchablePongs:
    peer = SwitchablePongs()
    peer.answering = answering
    await ws_connect(
        lambda: peer,
        f"{cc.url}/{gateway_id}",
        extra_headers={"Sec-WebSocket-Protocol": SUBPROTOCOL},
        enable_auto_pong=False,
    )
    return peer


async def test_a_missed_pong_makes_a_gateway_unresponsive_before_it_is_closed(make_cc):
    cc = await make_cc(ping_interval=0.2, ping_timeout=0.3)
    seen: list[tuple[bool, list[str]]] = []  # (answering, connected gateways) per report
    gone: list[str] = []
    cc.set_gateway_responsive_handler(lambda c: seen.append((c.answering, cc.gateways())))
    cc.set_gateway_disconnected_handler(lambda c: gone.append(c.id))
    peer = await _switchable(cc, "hang-1", answering=False)  # hung: TCP open, no pongs
    code = await peer.wait_closed(timeout=10)
    assert code == 1001  # the second missed pong closes it
    assert seen == [(False, ["hang-1"])]  # unresponsive first, while still connected
    await eventually(lambda: gone == ["hang-1"])


# The peer must act within ping_timeout of being reported unresponsive, or the second
# missed pong closes it: 2 s leaves room on a loaded machine.
async def test_any_frame_makes_an_unresponsive_gateway_answer_again(make_cc):
    cc = await make_cc(ping_interval=0.2, ping_timeout=2.0)
    states: list[bool] = []
    cc.set_gateway_responsive_handler(lambda c: states.append(c.answering))
    peer = await _switchable(cc, "busy-1", answering=False)
    await eventually(lambda: states == [False], timeout=10)
    assert cc.gateways() == ["busy-1"] and cc.connection("busy-1").answering is False
    peer.send_json(call_frame("1", "Heartbeat"))  # a message counts (answered as usual)
    await eventually(lambda: states == [False, True])
    assert (await peer.receive())[:3] == [4, "1", "NotSupported"]
    assert cc.connection("busy-1").answering is True
    peer.close()


async def test_a_pong_makes_an_unresponsive_gateway_answer_again(make_cc):
    cc = await make_cc(ping_interval=0.2, ping_timeout=2.0)
    states: list[bool] = []
    cc.set_gateway_responsive_handler(lambda c: states.append(c.answering))
    peer = await _switchable(cc, "late-pong", answering=False)
    await eventually(lambda: states == [False], timeout=10)
    pings = peer.pings
    assert peer.transport is not None
    peer.transport.send_pong(b"")  # an unsolicited pong (RFC 6455 §5.5.3) counts too
    peer.answering = True
    await eventually(lambda: states == [False, True])
    await eventually(lambda: peer.pings >= pings + 2)  # later pings answered: it stays
    assert states == [False, True] and cc.gateways() == ["late-pong"]
    peer.close()


async def test_gateway_closes_a_control_center_that_does_not_answer_pings(make_gw):
    server = await RawServer(enable_auto_pong=False).start()
    try:
        gw = await make_gw(server.url, ping_interval=0.2, ping_timeout=0.2)
        down = asyncio.Event()
        gw.set_disconnected_handler(down.set)
        peer = await server.accept()
        await asyncio.wait_for(down.wait(), 3)
        assert not gw.is_connected
        assert await peer.wait_closed() == 1001
    finally:
        await server.close()


# --- the error stream (Go Errors()) -----------------------------------------------------------


async def test_error_stream_is_bounded_and_never_blocks(make_cc):
    cc = await make_cc(error_capacity=3)
    peer = await raw_connect(f"{cc.url}/{GW}")
    for n in range(5):
        peer.send_text(f"garbage {n}")
    # nobody reads the stream, yet every bad message is answered
    answers = [await peer.receive() for _ in range(5)]
    assert all(a[:3] == [4, "-1", "FormationViolation"] for a in answers)
    stream = cc.error_stream
    assert stream.reported == 5
    assert stream.dropped == 2
    reports = cc.errors()
    kept = [await asyncio.wait_for(anext(reports), 1) for _ in range(3)]
    assert [e.kind for e in kept] == ["bad-message"] * 3
    assert [e.data for e in kept] == ["garbage 2", "garbage 3", "garbage 4"]
    assert all(e.gateway_id == GW for e in kept)
    assert all(isinstance(e, EndpointError) for e in kept)
    # an iterator waits for the next report
    later = asyncio.ensure_future(anext(cc.errors()))
    # still waiting after a later event that reports nothing: another gateway connecting
    other = await raw_connect(f"{cc.url}/GW-OTHER")
    await eventually(lambda: cc.is_connected("GW-OTHER"))
    assert not later.done()
    other.close()
    peer.send_text("[9]")
    report = await asyncio.wait_for(later, 1)
    assert report.data == "[9]"


async def test_gateway_error_stream(make_gw, raw_server):
    gw = await make_gw(raw_server.url, error_capacity=2)
    peer = await raw_server.accept()
    peer.send_text("not json")
    peer.send_json([3, "nobody-asked", {}])
    peer.send_json([2, "x", "Reset", {"type": "Soft"}])  # no handler: NotSupported
    assert (await peer.receive())[:3] == [4, "-1", "FormationViolation"]
    assert (await peer.receive())[:3] == [4, "x", "NotSupported"]
    await eventually(lambda: gw.error_stream.reported == 3)
    assert gw.error_stream.dropped == 1
    kinds = [e.kind for e in gw.error_stream.pending()]
    assert kinds == ["unmatched-response", "bad-message"]


async def test_port_and_url_stay_readable_during_and_after_stop() -> None:
    control = ControlCenter()
    with pytest.raises(RuntimeError):
        _ = control.port
    await control.start()
    port, url = control.port, control.url
    stopping = asyncio.ensure_future(control.stop(grace=0.5))
    await asyncio.sleep(0)
    assert control.port == port and control.url == url
    await stopping
    assert control.port == port and control.url == url


async def test_a_stored_message_leaves_the_outbox_only_on_its_callresult(make_gw, raw_server):
    # Store and forward (spec §6.2): a message whose connection drops before its
    # CALLRESULT stays first in the outbox and goes again with the same uniqueId. The
    # first attempt leaves from the caller (nothing queued ahead), the second from the
    # forwarder after the reconnect; each path is cut once.
    gw = await make_gw(raw_server.url, reconnect=True, backoff=Backoff(initial=0.01, maximum=0.05))
    sample = types.SampledValue(value="1")
    delivered = asyncio.ensure_future(
        gw.meter_values(1, [types.MeterValue(timestamp=T0, sampled_value=[sample])], timeout=20)
    )
    seen: list[str] = []
    for _ in range(2):
        peer = await raw_server.accept()
        frame = await peer.receive()
        assert frame[2] == "MeterValues"
        seen.append(frame[1])
        assert gw.queued == 1
        peer.close(1012)  # "service restart": gone before answering
    peer = await raw_server.accept()
    frame = await peer.receive()
    seen.append(frame[1])
    assert seen == [seen[0]] * 3
    peer.send_json([3, frame[1], {}])
    assert isinstance(await asyncio.wait_for(delivered, WAIT), core.MeterValuesConfirmation)
    assert gw.queued == 0
    assert gw.connect_count == 3
