"""A TCP proxy cuts the gateway's connection at random moments, at least 50 times.

Cuts are RST, FIN or a black hole (both sockets stay open, nothing passes: only the
ping notices, and the control center sees the reconnect as a duplicate id that
replaces the half-open connection). No message is lost or reordered, no call
outlives its timeout, and the gateway ends connected.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from resilience_helpers import CuttingProxy, check_in_order, meter_values, now, percentile

from ntxcp import (
    Backoff,
    CallTimeoutError,
    ControlCenter,
    Gateway,
    NotConnectedError,
    current_call,
)
from ntxcp.v10 import core

MIN_CUTS = 50
MAX_COUNT = 20_000
PACE = 0.003  # seconds between two sends of one producer
CALL_TIMEOUT = 1.5
SLACK = 0.5  # event-loop scheduling on a busy 2-core machine


class Recorder(core.ControlCenterHandler):
    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []

    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        call = current_call()
        assert call is not None
        self.received.append((call.unique_id, int(request.meter_value[0].sampled_value[0].value)))
        return core.MeterValuesConfirmation()

    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        return core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED)

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        return core.HeartbeatConfirmation(current_time=now())


@pytest.mark.timeout(120)
async def test_random_network_cuts(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    recorder = Recorder()
    cc = ControlCenter(ping_interval=1.0, ping_timeout=1.0)
    cc.set_core_handler(recorder)
    await cc.start()
    proxy = CuttingProxy(cc.port)
    await proxy.start()
    gw = Gateway(
        "GW-CUT",
        store=tmp_path / "outbox.db",
        call_timeout=CALL_TIMEOUT,
        connect_timeout=1.0,
        ping_interval=0.3,
        ping_timeout=0.3,
        backoff=Backoff(initial=0.02, maximum=0.2, reset_after=0.5),
    )
    disconnects = 0

    def on_disconnect() -> None:
        nonlocal disconnects
        disconnects += 1

    gw.set_disconnected_handler(on_disconnect)
    await gw.start(f"ws://127.0.0.1:{proxy.port}/ntxcp", retry=True)

    durations: list[float] = []
    outcomes = {
        "queued": 0,
        "delivered": 0,
        "queued-timeout": 0,
        "direct-ok": 0,
        "direct-failed": 0,
    }
    next_seq = 0
    cutting = True

    async def produce() -> None:
        nonlocal next_seq
        while cutting and next_seq < MAX_COUNT:  # messages flow during every cut
            seq = next_seq
            next_seq += 1
            start = time.monotonic()
            try:
                await gw.meter_values(1, meter_values(seq).meter_value, timeout=CALL_TIMEOUT)
                outcomes["delivered"] += 1
            except CallTimeoutError as exc:
                assert exc.queued  # still in the outbox, delivered later
                outcomes["queued-timeout"] += 1
            durations.append(time.monotonic() - start)
            await asyncio.sleep(PACE)

    async def queue_burst() -> None:  # return-once-queued callers, mixed with the awaiting ones
        nonlocal next_seq
        while cutting and next_seq < MAX_COUNT:
            for _ in range(5):
                gw.queue_request(meter_values(next_seq))
                next_seq += 1
                outcomes["queued"] += 1
            await asyncio.sleep(0.01)

    async def direct_calls() -> None:  # not stored: fail fast when the link is down
        while cutting:
            start = time.monotonic()
            try:
                await gw.data_transfer("ding", data="x", timeout=CALL_TIMEOUT)
                outcomes["direct-ok"] += 1
            except (NotConnectedError, CallTimeoutError):
                outcomes["direct-failed"] += 1
            durations.append(time.monotonic() - start)
            await asyncio.sleep(0.02)

    async def cut() -> None:
        nonlocal cutting
        modes = ["rst"] * 9 + ["fin"] * 9 + ["blackhole"] * 2
        deadline = time.monotonic() + 60
        while proxy.cuts < MIN_CUTS and time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.02, 0.2))
            proxy.cut(rng.choice(modes))
        cutting = False

    started = time.monotonic()
    cutter = asyncio.ensure_future(cut())
    direct = asyncio.ensure_future(direct_calls())
    await asyncio.gather(queue_burst(), *(produce() for _ in range(3)))
    await asyncio.wait_for(cutter, 70)
    await direct
    count = next_seq
    cut_phase = time.monotonic() - started
    await gw.flush(30)
    await gw.wait_connected(10)
    assert gw.is_connected
    result = check_in_order(recorder.received, count)
    worst = max(durations)
    assert len(gw.store.dead_letters()) == 0
    await gw.stop()
    await proxy.stop()
    await cc.stop()
    assert proxy.cuts >= MIN_CUTS
    assert count >= 1_000
    assert worst <= CALL_TIMEOUT + SLACK, f"a call took {worst:.2f} s"
    print(
        f"\n[network-cut] {proxy.cuts} cuts ({proxy.connections} connections through the proxy, "
        f"{disconnects} disconnects seen) over {cut_phase:.1f} s; {count} messages all delivered "
        f"in order, {result['duplicates']} re-sent duplicates (same uniqueId); "
        f"outcomes {outcomes}; "
        f"call time p50 {percentile(durations, 50) * 1000:.1f} ms, "
        f"p99 {percentile(durations, 99) * 1000:.0f} ms, max {worst * 1000:.0f} ms"
    )
