"""Control center protections: takeover, graceful stop, slow and hostile clients (spec §1, §6.1)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator

import pytest
from resilience_helpers import client_frame, frame_header, meter_values, now, upgrade_request

import ntxcp.transport._picows
from ntxcp import ControlCenter, DisconnectedError, Gateway, NotConnectedError
from ntxcp.v10 import core
from waiting import WAIT, eventually


async def raw_upgrade(
    port: int, gateway_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port, f"/ntxcp/{gateway_id}"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_close_code(reader: asyncio.StreamReader, timeout: float = 3) -> int | None:
    """Read until the server's close frame (or EOF); returns its code."""
    buffer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = 2
            if length == 126:
                length, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < offset + length:
                break
            payload = buffer[offset : offset + length]
            buffer = buffer[offset + length :]
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
    return None


class Slow(core.ControlCenterHandler):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.started = asyncio.Event()
        self.finished = 0

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        return core.HeartbeatConfirmation(current_time=now())

    async def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        self.started.set()
        await asyncio.sleep(self.delay)
        self.finished += 1
        return core.MeterValuesConfirmation()


class Echo(core.ControlCenterHandler):
    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        return core.DataTransferConfirmation(
            status=core.DataTransferStatus.ACCEPTED, data=request.data
        )


class Answers(core.GatewayHandler):
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ClearCacheConfirmation:
        await asyncio.sleep(self.delay)
        return core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)


@pytest.fixture
async def control() -> AsyncIterator[ControlCenter]:
    cc = ControlCenter(handshake_timeout=0.5, max_message_size=64 * 1024)
    cc.set_core_handler(Slow(0.0))
    await cc.start()
    yield cc
    await cc.stop(grace=0.5)


# --- one connection per id (spec §1) -------------------------------------------------


async def test_reconnect_takes_over_a_half_open_connection(control: ControlCenter) -> None:
    # The old connection: upgraded, then silent (the peer's power went; no FIN ever came).
    sent: list[tuple[str, int | None, str | None]] = []  # (direction, type, action)
    control.set_frame_logger(
        lambda gid, way, frame, info: sent.append((way, info.message_type, info.action))
    )
    old_reader, old_writer = await raw_upgrade(control.port, "GW-TAKE")
    await eventually(lambda: control.connection("GW-TAKE") is not None)
    old_address = control.connection("GW-TAKE").remote_address  # type: ignore[union-attr]
    pending = asyncio.ensure_future(control.clear_cache("GW-TAKE", timeout=30))
    await eventually(lambda: ("out", 2, "ClearCache") in sent)  # the CALL is on the wire
    assert not pending.done()  # and never answered

    new = Gateway("GW-TAKE")
    new.set_core_handler(Answers())
    await new.start(control.url)
    with pytest.raises(DisconnectedError):
        await asyncio.wait_for(pending, WAIT)  # failed at once, not after its 30 s timeout
    connection = control.connection("GW-TAKE")
    assert connection is not None and connection.remote_address != old_address
    assert control.gateways() == ["GW-TAKE"]
    assert await read_close_code(old_reader) == 1008  # "replaced"
    conf = await control.clear_cache("GW-TAKE", timeout=2)  # the new one is served
    assert conf.status is core.ClearCacheStatus.ACCEPTED
    old_writer.transport.abort()
    await new.stop()


# --- graceful stop (spec §6.1) ---------------------------------------------------------


async def test_graceful_stop_lets_a_call_in_flight_finish() -> None:
    handler = Slow(0.4)
    cc = ControlCenter()
    cc.set_core_handler(handler)
    await cc.start()
    gw = Gateway("GW-GRACE", reconnect=False)
    gw.set_core_handler(Answers(0.3))
    await gw.start(cc.url)
    inbound = asyncio.ensure_future(gw.meter_values(1, meter_values(0).meter_value, timeout=5))
    outbound = asyncio.ensure_future(cc.clear_cache("GW-GRACE", timeout=5))
    await handler.started.wait()
    await asyncio.wait_for(cc.stop(grace=60), WAIT)  # not the whole grace period
    assert handler.finished == 1  # but the handler's
    assert isinstance(await inbound, core.MeterValuesConfirmation)  # answered before the close
    assert (await outbound).status is core.ClearCacheStatus.ACCEPTED
    assert gw.queued == 0
    await eventually(lambda: not gw.is_connected)
    assert gw.last_close is not None and gw.last_close[0] == 1001
    with pytest.raises(NotConnectedError):
        await cc.clear_cache("GW-GRACE")
    await gw.stop()


async def test_graceful_stop_fails_what_does_not_finish_within_grace(tmp_path: object) -> None:
    handler = Slow(10.0)
    cc = ControlCenter()
    cc.set_core_handler(handler)
    await cc.start()
    gw = Gateway("GW-SLOW", reconnect=False)
    gw.set_core_handler(Answers(10.0))
    await gw.start(cc.url)
    inbound = asyncio.ensure_future(gw.meter_values(1, meter_values(0).meter_value, timeout=30))
    outbound = asyncio.ensure_future(cc.clear_cache("GW-SLOW", timeout=30))
    await handler.started.wait()
    await asyncio.wait_for(cc.stop(grace=0.5), WAIT)  # not the 10 s handlers
    with pytest.raises(DisconnectedError):
        await outbound
    with pytest.raises(NotConnectedError, match="stays queued"):
        await gw.stop()  # nothing to raise here ...
        await inbound  # ... but the waiting caller learns its message stays queued
    assert gw.queued == 1


async def test_new_connections_refused_while_stopping() -> None:
    cc = ControlCenter()
    handler = Slow(1.0)
    cc.set_core_handler(handler)
    await cc.start()
    gw = Gateway("GW-BUSY", reconnect=False)
    url = cc.url
    await gw.start(url)
    busy = asyncio.ensure_future(gw.meter_values(1, meter_values(0).meter_value, timeout=5))
    await asyncio.wait_for(handler.started.wait(), WAIT)
    stopping = asyncio.ensure_future(cc.stop(grace=3))
    # stop() closes the listening socket in its first step, before its first await:
    # one turn of the loop runs it.
    await asyncio.sleep(0)
    late = Gateway("GW-LATE")
    with pytest.raises((OSError, NotConnectedError)):
        await late.start(url)  # the listening socket is closed
    await stopping
    await busy
    await gw.stop()


# --- slow and hostile clients --------------------------------------------------------


async def test_handshake_timeout_closes_a_silent_socket(control: ControlCenter) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", control.port))
    sock.setblocking(False)
    t0 = time.monotonic()
    data = await asyncio.wait_for(loop.sock_recv(sock, 1024), 5)  # never sent a byte
    elapsed = time.monotonic() - t0
    sock.close()
    assert data == b""  # closed by the server
    assert 0.4 <= elapsed <= 2.0  # handshake_timeout=0.5


async def test_handshake_timeout_closes_a_trickling_upgrade(control: ControlCenter) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", control.port)
    request = upgrade_request(control.port, "/ntxcp/GW-TRICKLE")

    async def trickle() -> None:  # one byte every 20 ms, never the final empty line
        for byte in request[:-4]:
            if writer.transport.is_closing():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(0.02)

    sender = asyncio.ensure_future(trickle())
    t0 = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed while a trickled byte was unread: a reset
        data = b""
    elapsed = time.monotonic() - t0
    sender.cancel()
    writer.transport.abort()
    assert data == b""  # closed without an answer
    assert 0.4 <= elapsed <= 2.0  # handshake_timeout=0.5, although bytes kept coming


async def test_oversized_message_closes_with_1009(control: ControlCenter) -> None:
    reader, writer = await raw_upgrade(control.port, "GW-BIG")
    writer.write(frame_header(64 * 1024 + 1) + b"x" * 100)
    assert await read_close_code(reader) == 1009
    writer.transport.abort()
    reader, writer = await raw_upgrade(control.port, "GW-BIG2")  # the same in fragments
    writer.write(client_frame(b"[" * 40_000, fin=False))
    writer.write(client_frame(b"[" * 40_000, opcode=0x0, fin=False))
    assert await read_close_code(reader) == 1009
    writer.transport.abort()


async def test_bad_message_limit_closes_with_1008(control: ControlCenter) -> None:
    reader, writer = await raw_upgrade(control.port, "GW-NOISE")
    for _ in range(60):  # limit: 50 per minute (spec §2.2 rule 7)
        writer.write(client_frame(b"not json"))
    assert await read_close_code(reader) == 1008
    writer.transport.abort()
    assert control.error_stream.reported >= 50


async def test_inbound_limit_refuses_a_flood_of_calls() -> None:
    handler = Slow(0.005)  # answers leave in arrival order: the refusals follow 64 answers
    cc = ControlCenter()
    cc.set_core_handler(handler)
    await cc.start()
    reader, writer = await raw_upgrade(cc.port, "GW-FLOOD")
    call = (
        b'[2, "id-%d", "MeterValues", {"serviceId": 1, "meterValue": '
        b'[{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]}]'
    )
    for i in range(100):  # a compliant gateway has one CALL in flight (spec §2.3.1)
        writer.write(client_frame(call % i))
    await writer.drain()
    data = b""
    deadline = time.monotonic() + 3
    while b"too many CALLs waiting" not in data and time.monotonic() < deadline:
        data += await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
    assert b"too many CALLs waiting" in data
    writer.transport.abort()
    await cc.stop(grace=0.2)


async def test_a_peer_that_never_reads_cannot_fill_the_server_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ntxcp.transport._picows, "STALLED_WRITE_TIMEOUT", 1.0)
    cc = ControlCenter()
    cc.set_core_handler(Echo())
    await cc.start()
    _, writer = await raw_upgrade(cc.port, "GW-DEAF")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.transport.pause_reading()  # valid CALLs, answers never read
    frame = client_frame(
        b'[2, "x", "DataTransfer", {"vendorId": "v", "data": "' + b"d" * 2000 + b'"}]'
    )
    session = next(iter(cc._all_sessions))
    assert session.link is not None
    server_transport = session.link._transport.underlying_transport  # type: ignore[attr-defined]
    biggest = 0
    blocked = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 and not blocked:
        writer.write(frame * 100)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            blocked = True  # the server stopped reading us: our own buffers fill up
        if not server_transport.is_closing():
            biggest = max(biggest, server_transport.get_write_buffer_size())
    assert blocked
    assert biggest < 1024 * 1024  # bounded near the high-water mark, not growing
    await eventually(lambda: cc.gateways() == [])  # dropped after STALLED_WRITE_TIMEOUT
    writer.transport.abort()
    await cc.stop(grace=0.2)


class CountingHeartbeats(core.ControlCenterHandler):
    def __init__(self) -> None:
        self.count = 0

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        self.count += 1
        return core.HeartbeatConfirmation(current_time=now())


async def test_flow_control_engages_after_a_few_thousand_unread_answers() -> None:
    """The send buffer is small (ServerOptions.send_buffer), so a peer that floods CALLs
    and reads nothing stops being served early: it cannot make the server do the work
    of tens of thousands of CALLs (and hold megabytes of answers) first."""
    cc = ControlCenter()
    handler = CountingHeartbeats()
    cc.set_core_handler(handler)
    await cc.start()
    _, writer = await raw_upgrade(cc.port, "GW-FLOOD")
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.transport.pause_reading()  # answers never read
    session = next(iter(cc._all_sessions))
    link = session.link
    assert link is not None
    calls = b"".join(client_frame(b'[2, "%d", "Heartbeat", {}]' % n) for n in range(60_000))
    writer.write(calls)  # 2 MB: far more than the buffers hold
    deadline = time.monotonic() + 20
    while link._stalled is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
        await asyncio.sleep(0.02)
    assert link._stalled is not None  # type: ignore[attr-defined]
    assert handler.count < 10_000, handler.count  # about 3 000 here; 50 000 without the bound
    writer.transport.abort()
    await cc.stop(grace=0.2)
