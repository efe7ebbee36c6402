"""Faults of a two-node cluster behind HAProxy: a node killed, the bus away (issue: several nodes).

Real parts: PostgreSQL, NATS, two ``ntxcp control-center --cluster`` processes and
HAProxy, all on free loopback ports; 200 gateways with store and forward in this
process, connecting through HAProxy. Bounded: 10,000 messages in the first test, about
as many in the second (200 gateways, one MeterValues each per sampling period for the
10 s outage and a little more), every wait with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence

import asyncpg
from frontdoor_helpers import Cluster

from ntxcp import Backoff, Gateway
from ntxcp.endpoints.store import MemoryStore
from ntxcp.v10 import core
from payloads import meter_values
from waiting import eventually

GATEWAYS = 200
PER_GATEWAY = 50  # 200 x 50 = 10,000 MeterValues
TOTAL = GATEWAYS * PER_GATEWAY
KILL_AFTER = TOTAL // 5  # rows stored before the node is killed: mid-run
OUTAGE = 10.0  # s without NATS
SAMPLING = 0.5  # s between two MeterValues of one gateway while the bus is away
STALL = 3.0  # s: longest the stored count may take to grow by STEP while the bus is away
STEP = GATEWAYS // 2  # rows: half of what the fleet sends in one sampling period
RECONNECT = Backoff(initial=0.5, maximum=2.0, reset_after=1.0)
LOADED_MACHINE = 2.0  # s for 100 handshakes and Boot-less reconnects on a busy 2-core machine


def return_bound(backoff: Backoff = RECONNECT) -> float:
    """Seconds from a node's death until all its gateways are held elsewhere, at worst.

    The node's sockets close with it, so each of its gateways starts reconnecting at
    once and waits its first delay, at most ``initial * 1.25`` (spec §6.2 jitter).
    Until its failed health checks mark the node down, ``leastconn`` may still send a
    reconnecting gateway there (it holds nothing); the connection is refused at once
    (its port is closed) and the front door's ``option redispatch 1`` retries it on
    another node straight away, so that first attempt reaches the survivor. Then one
    spare attempt (a handshake late on a loaded machine) and the handshakes
    themselves (:data:`LOADED_MACHINE`).

    With the test's settings (0.5 s delays capped at 2 s): 0.625 + 1.25 + 2 = 3.875 s.
    Without the redispatch, HAProxy tries the dead node 3 more times, 1 s apart,
    before it gives up on the gateway's connection: about 5 s (measured), over this.
    """
    return backoff.bounds(0)[1] + backoff.bounds(1)[1] + LOADED_MACHINE


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: dict[str, object] = json.load(answer)
        return body


def _held(api_url: str) -> int:
    """The gateways whose sockets the node holds (``/healthz``)."""
    return int(str(_get(api_url.rstrip("/") + "/healthz")["connectedGateways"]))


def _owners(api_url: str) -> dict[str, str | None]:
    """Gateway id -> the node holding it, from the API's gateway list (cluster mode)."""
    page = _get(api_url.rstrip("/") + f"/api/gateways?limit={GATEWAYS + 1}")
    items = page["items"]
    assert isinstance(items, list) and page["next"] is None, page
    return {item["id"]: item["node"] for item in items}


def _call(api_url: str, gateway_id: str, action: str) -> tuple[int, dict[str, object]]:
    """``POST /api/gateways/{id}/calls/{action}`` with an empty payload: (status, body)."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/api/gateways/{gateway_id}/calls/{action}?timeout=5",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def _listed_owners(api_url: str) -> dict[str, str | None]:
    """:func:`_owners` once the list shows the whole fleet connected (a node writes the
    rows of its newcomers in its next batch, so the list may lag a moment)."""
    owners: dict[str, str | None] = {}

    async def complete() -> bool:
        owners.clear()
        owners.update(await asyncio.to_thread(_owners, api_url))
        return len(owners) == GATEWAYS and None not in owners.values()

    await eventually(complete, 30, what="the whole fleet in the gateway list", interval=0.05)
    return owners


async def _all_held_by(api_url: str, node: str) -> bool:
    """Whether ``node`` holds every gateway: by its own count and in the gateway list."""
    if await asyncio.to_thread(_held, api_url) != GATEWAYS:
        return False
    owners = await asyncio.to_thread(_owners, api_url)
    return len(owners) == GATEWAYS and set(owners.values()) == {node}


async def _stored(database: str) -> tuple[int, int]:
    """(rows, distinct (gateway, uniqueId)) of MeterValues in the shared database."""
    connection = await asyncpg.connect(database)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM meter_messages")
        distinct = await connection.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT gateway_id, unique_id FROM meter_messages) d"
        )
        return int(rows), int(distinct)
    finally:
        await connection.close()


async def _rows(database: str) -> int:
    return (await _stored(database))[0]


class _ClearsCache(core.GatewayHandler):
    def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ClearCacheConfirmation:
        return core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)


async def _start_fleet(url: str) -> tuple[list[Gateway], dict[str, MemoryStore]]:
    """The 200 gateways, connected through ``url``, and each one's outbox by id."""
    stores = {f"GW-F{n:03}": MemoryStore() for n in range(GATEWAYS)}
    gateways = [
        Gateway(gateway_id, backoff=RECONNECT, store=store, ping_interval=5.0)
        for gateway_id, store in stores.items()
    ]
    for gw in gateways:
        gw.set_core_handler(_ClearsCache())
    await asyncio.gather(*(gw.start(url, retry=True) for gw in gateways))
    return gateways, stores


async def test_a_killed_node_loses_nothing_and_its_gateways_come_back(
    make_cluster: Callable[[int], Cluster],
) -> None:
    cluster = make_cluster(2)
    assert cluster.front_door is not None
    first, second = cluster.nodes
    loop = asyncio.get_running_loop()
    gateways, stores = await _start_fleet(cluster.front_door.url())
    try:
        owners = await _listed_owners(second.api_url)
        spread = Counter(owners.values())
        assert set(spread) == {"node0", "node1"}, spread  # leastconn spreads them
        for seq in range(PER_GATEWAY):
            for gw in gateways:
                gw.queue_request(meter_values(seq))
        await eventually(
            lambda: _at_least(cluster.database, KILL_AFTER), 60, what=f"{KILL_AFTER} stored"
        )
        rows_before_kill = await _rows(cluster.database)
        first.signal(signal.SIGKILL)
        killed_at = loop.time()
        # Mid-run: rows stored before the kill, and messages the killed node's gateways
        # still hold, unanswered when it died (nothing leaves an outbox before its answer).
        unanswered = sum(len(stores[gw_id]) for gw_id, node in owners.items() if node == "node0")
        rows_at_kill = await _rows(cluster.database)
        assert rows_before_kill > 0 and unanswered > 0, (rows_before_kill, unanswered)
        assert rows_at_kill < TOTAL, rows_at_kill
        bound = return_bound()
        await eventually(
            lambda: _all_held_by(second.api_url, "node1"),
            bound,
            what=f"every gateway held by node1 within {bound:.2f} s of the kill",
            interval=0.05,
        )
        print(
            f"killed with {rows_before_kill} stored and {unanswered} unanswered; all {GATEWAYS} "
            f"back on node1 {loop.time() - killed_at:.2f} s after (bound {bound:.2f} s)"
        )
        assert all(gw.is_connected for gw in gateways)
        await asyncio.gather(*(gw.flush(60) for gw in gateways))
        assert await _stored(cluster.database) == (TOTAL, TOTAL)
        assert not any(store.dead_letters() for store in stores.values())
    finally:
        await asyncio.gather(*(gw.stop() for gw in gateways))


async def _at_least(database: str, rows: int) -> bool:
    return await _rows(database) >= rows


async def test_ingest_goes_on_while_the_bus_is_away_and_commands_recover(
    make_cluster: Callable[[int], Cluster],
) -> None:
    cluster = make_cluster(2)
    assert cluster.front_door is not None
    other = cluster.nodes[1].api_url
    gateways, stores = await _start_fleet(cluster.front_door.url())
    stop_sampling = asyncio.Event()
    sampling = asyncio.create_task(_sample(gateways, stop_sampling))
    try:
        owners = await _listed_owners(other)
        target = min(gw_id for gw_id, node in owners.items() if node == "node0")
        # The owner subscribes to the gateway's subject right after the connection.
        await eventually(lambda: _command_works(other, target), 30, what="cross-node command")
        await eventually(lambda: _at_least(cluster.database, 1), 30, what="ingest under way")
        growth = await _outage(cluster, other, target)
        print(f"stored during the outage: {growth}")
        await eventually(lambda: _command_works(other, target), 30, what="command after the bus")
        stop_sampling.set()
        sent = (await sampling) * GATEWAYS
        await asyncio.gather(*(gw.flush(60) for gw in gateways))
        assert await _stored(cluster.database) == (sent, sent)
        assert not any(store.dead_letters() for store in stores.values())
    finally:
        stop_sampling.set()
        await sampling
        await asyncio.gather(*(gw.stop() for gw in gateways))


async def _outage(cluster: Cluster, api_url: str, target: str) -> list[int]:
    """NATS away for :data:`OUTAGE` s, restarted even when a check fails.

    Meanwhile, each time the stored count has grown by :data:`STEP` (within
    :data:`STALL` s, or the ingest stalled), a cross-node command answers 503.

    Returns:
        The stored count at each check, from the kill of NATS to its restart.
    """
    loop = asyncio.get_running_loop()
    cluster.nats.kill()
    outage_ends = loop.time() + OUTAGE
    try:
        growth = [await _rows(cluster.database)]
        await eventually(lambda: _bus_down(api_url), OUTAGE, what="the node sees the bus down")
        while loop.time() < outage_ends:
            await eventually(
                lambda: _grown_past(cluster.database, growth),
                STALL,
                what=f"stored count grows from {growth[-1]} by {STEP} during the outage",
                interval=0.1,
            )
            status, body = await asyncio.to_thread(_call, api_url, target, "ClearCache")
            assert status == 503, (status, body)
        assert len(growth) >= OUTAGE / STALL, growth
        return growth
    finally:
        cluster.nats.start()  # same port: the nodes reconnect by themselves


async def _grown_past(database: str, growth: list[int]) -> bool:
    """Whether the stored count grew by :data:`STEP` since the last in ``growth`` (appended)."""
    rows = await _rows(database)
    if rows >= growth[-1] + STEP:
        growth.append(rows)
        return True
    return False


async def _sample(gateways: Sequence[Gateway], stop: asyncio.Event) -> int:
    """Each gateway queues one MeterValues per :data:`SAMPLING` s until ``stop``: rounds."""
    rounds = 0
    while not stop.is_set():
        for gw in gateways:
            gw.queue_request(meter_values(rounds))
        rounds += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SAMPLING):  # the meters' period, not a wait for a result
                await stop.wait()
    return rounds


async def _bus_down(api_url: str) -> bool:
    health = await asyncio.to_thread(_get, api_url.rstrip("/") + "/healthz")
    cluster = health.get("cluster")
    return isinstance(cluster, dict) and cluster["bus"]["connected"] is False


async def _command_works(api_url: str, gateway_id: str) -> bool:
    answer = await asyncio.to_thread(_call, api_url, gateway_id, "ClearCache")
    return answer == (200, {"status": "Accepted"})
