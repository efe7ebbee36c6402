"""A gateway with several control-center URLs: failover without a load balancer (§6.2).

Every control center here is a real :class:`ntxcp.ControlCenter` on a free loopback
port; "down" means stopped (nothing listens) or never started.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from resilience_helpers import check_in_order, free_port, meter_values, seq_of

from ntxcp import Backoff, ControlCenter, Gateway, HandshakeRefusedError, current_call
from ntxcp.v10 import core
from waiting import WAIT, eventually

FAST = Backoff(initial=0.02, maximum=0.1, reset_after=0.5)


class Node(core.ControlCenterHandler):
    """A control center that records the MeterValues it acknowledged, with a hook."""

    def __init__(self) -> None:
        self.control = ControlCenter()
        self.control.set_core_handler(self)
        self.meters: list[tuple[str, int]] = []  # (uniqueId, seq) of every MeterValues
        self.hold: Callable[[int], Awaitable[None]] | None = None

    async def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        call = current_call()
        assert call is not None
        self.meters.append((call.unique_id, seq_of(request)))
        if self.hold is not None:
            await self.hold(seq_of(request))
        return core.MeterValuesConfirmation()

    def holds(self, gateway_id: str) -> bool:
        return self.control.is_connected(gateway_id)


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    """Two started control centers, stopped after the test."""
    made = [Node(), Node()]
    for node in made:
        await node.control.start(0)
    yield made
    for node in made:
        await node.control.stop(grace=0.5)


def dead_url() -> str:
    """A URL on a loopback port nothing listens on."""
    return f"ws://127.0.0.1:{free_port()}/ntxcp"


async def test_first_node_stopped_the_second_serves_and_nothing_is_lost(
    nodes: list[Node], tmp_path: Path
) -> None:
    first, second = nodes
    stopped = asyncio.Event()

    async def hang_on_five(seq: int) -> None:
        if seq == 5:  # handled, never acknowledged: the node dies before answering
            await stopped.wait()

    first.hold = hang_on_five
    gw = Gateway("GW-FO", store=tmp_path / "outbox.db", backoff=FAST)
    await gw.start([first.control.url, second.control.url])
    assert first.holds("GW-FO") and gw.url == first.control.url + "/GW-FO"
    for seq in range(10):
        gw.queue_request(meter_values(seq))
    await eventually(lambda: any(seq == 5 for _, seq in first.meters))
    stop = asyncio.ensure_future(first.control.stop(grace=0.2))
    await eventually(lambda: second.holds("GW-FO"))
    await gw.flush(WAIT)
    stopped.set()
    await stop
    assert gw.url == second.control.url + "/GW-FO" and gw.queued == 0
    # 0..9 once each, in order; 5 again on the second node with the same uniqueId
    report = check_in_order(first.meters + second.meters, 10)
    assert report["duplicates"] == 1
    assert [seq for _, seq in second.meters] == list(range(5, 10))
    assert second.meters[0][0] == first.meters[-1][0]
    await gw.stop()


async def test_a_dead_first_url_is_passed_over_at_once(nodes: list[Node]) -> None:
    _, second = nodes
    dead = dead_url()
    gw = Gateway("GW-SKIP", backoff=Backoff(initial=30, maximum=60))  # no waiting in a round
    await asyncio.wait_for(gw.start([dead, second.control.url]), WAIT)
    assert second.holds("GW-SKIP")
    assert gw.urls == (dead + "/GW-SKIP", second.control.url + "/GW-SKIP")
    (report,) = gw.error_stream.pending()
    assert report.kind == "connection-error"
    assert dead in str(report) and "trying the next URL" in str(report)
    await gw.stop()


async def test_every_reconnect_moves_on_to_the_next_url(nodes: list[Node]) -> None:
    first, second = nodes
    gw = Gateway("GW-RR", backoff=FAST)
    await gw.start([first.control.url, second.control.url])
    assert first.holds("GW-RR")
    # The node drops the gateway but stays up: the gateway still moves to the next URL.
    assert first.control.disconnect("GW-RR")
    # The node registers the connection before the gateway has read the upgrade answer:
    # wait for both sides, or a disconnect could hit a connection not yet established.
    await eventually(lambda: second.holds("GW-RR") and gw.connect_count == 2)
    assert second.control.disconnect("GW-RR")
    # round-robin: back to the first
    await eventually(lambda: first.holds("GW-RR") and gw.connect_count == 3)
    await gw.stop()


async def test_one_round_without_retry_raises_the_last_failure() -> None:
    first, second = dead_url(), dead_url()
    gw = Gateway("GW-NONE")
    with pytest.raises(OSError):
        await gw.start([first, second])
    assert gw.url == second + "/GW-NONE" and not gw.is_connected
    (report,) = gw.error_stream.pending()  # the first URL's; the caller gets the second's
    assert first in str(report)
    with pytest.raises(ValueError, match="at least one"):
        await gw.start([])


async def test_max_attempts_counts_rounds_over_all_urls() -> None:
    urls = [dead_url(), dead_url()]
    gw = Gateway("GW-ROUNDS", backoff=Backoff(initial=0.01, maximum=0.02, max_attempts=2))
    with pytest.raises(OSError):
        await asyncio.wait_for(gw.start(urls, retry=True), WAIT)
    reports = [str(e) for e in gw.error_stream.pending()]
    assert len(reports) == 4, reports  # 2 rounds x 2 URLs
    assert [urls[0] in text for text in reports] == [True, False, True, False]
    assert "giving up after 2 attempts" in reports[-1]


async def test_a_url_refused_for_good_does_not_stop_the_others(tmp_path: Path) -> None:
    # The first URL answers 404 (wrong path) on every attempt; the second is down at
    # first and comes up later. A refusal "for good" on one URL must not slow the
    # round down to the longest backoff (here 60 s) while another URL may answer.
    refusing = ControlCenter()
    await refusing.start(0)
    port = free_port()
    later = Node()
    gw = Gateway("GW-404", backoff=Backoff(initial=0.02, maximum=60))
    wrong_path = refusing.url + "/wrong"
    start = asyncio.ensure_future(
        gw.start([wrong_path, f"ws://127.0.0.1:{port}/ntxcp"], retry=True)
    )
    try:
        await eventually(lambda: gw.error_stream.reported >= 4)  # two rounds at least
        await later.control.start(port)
        await asyncio.wait_for(start, WAIT)
        assert later.holds("GW-404")
        refused = [e for e in gw.error_stream.pending() if e.kind == "handshake-refused"]
        assert refused and wrong_path in str(refused[0]) and "HTTP 404" in str(refused[0])
        assert gw.last_error is None
    finally:
        start.cancel()
        await gw.stop()
        await later.control.stop()
        await refusing.stop()


async def test_every_url_refused_for_good_waits_the_longest_delay() -> None:
    refusing = ControlCenter()
    refusing.set_basic_auth_handler(lambda gateway_id, password: False)
    await refusing.start(0)
    gw = Gateway("GW-401", password="wrong", backoff=Backoff(initial=0.01, maximum=0.3))
    start = asyncio.ensure_future(gw.start([refusing.url, refusing.url + "/"], retry=True))
    seen: list[str] = []

    def refused_for_good() -> bool:
        seen.extend(str(e) for e in gw.error_stream.pending() if e.kind == "handshake-refused")
        return any("longest backoff" in text for text in seen)

    try:
        await eventually(refused_for_good)
        assert "trying the next URL" in seen[0] and refusing.url in seen[0]
        assert isinstance(gw.last_error, HandshakeRefusedError) and gw.last_error.permanent
    finally:
        await gw.stop()
        start.cancel()
        await refusing.stop()
