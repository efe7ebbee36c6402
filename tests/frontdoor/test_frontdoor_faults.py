"""Faults of a two-node cluster behind HAProxy: a node killed, the bus away (issue: several nodes).

Real parts: PostgreSQL, NATS, two ``ntxcp control-center --cluster`` processes and
HAProxy, all on free loopback ports; 200 gateways with store and forward in this
process, connecting through HAProxy. Bounded: 10,000 messages, every wait with a
deadline.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable

import asyncpg
from frontdoor_helpers import Cluster

from ntxcp import Backoff, Gateway
from ntxcp.endpoints.store import MemoryStore
from ntxcp.v10 import core
from payloads import meter_values
from waiting import eventually

GATEWAYS = 200
PER_GATEWAY = 50  # 200 x 50 = 10,000 MeterValues
OUTAGE = 10.0  # s without NATS
RECONNECT = Backoff(initial=0.5, maximum=2.0, reset_after=1.0)


def _healthz(api_url: str) -> dict[str, object]:
    with urllib.request.urlopen(api_url.rstrip("/") + "/healthz", timeout=5) as answer:
        body: dict[str, object] = json.load(answer)
        return body


def _held(api_url: str) -> int:
    return int(str(_healthz(api_url)["connectedGateways"]))


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


async def _holds(api_url: str, count: int) -> bool:
    return await asyncio.to_thread(_held, api_url) == count


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


async def _start_gateways(url: str) -> list[Gateway]:
    gateways = [
        Gateway(f"GW-F{n:03}", backoff=RECONNECT, store=MemoryStore(), ping_interval=5.0)
        for n in range(GATEWAYS)
    ]
    await asyncio.gather(*(gw.start(url, retry=True) for gw in gateways))
    return gateways


async def test_a_killed_node_loses_nothing_and_its_gateways_come_back(
    make_cluster: Callable[[int], Cluster],
) -> None:
    cluster = make_cluster(2)
    assert cluster.front_door is not None
    first, second = cluster.nodes
    gateways = await _start_gateways(cluster.front_door.url())
    try:
        held = [await asyncio.to_thread(_held, node.api_url) for node in cluster.nodes]
        assert sum(held) == GATEWAYS and min(held) > 0, held  # leastconn spreads them
        for seq in range(PER_GATEWAY):
            for gw in gateways:
                gw.queue_request(meter_values(seq))
            if seq == PER_GATEWAY // 2:
                first.signal(signal.SIGKILL)  # mid-run, with messages in flight
            await asyncio.sleep(0)  # let the forwarders run between rounds
        await asyncio.gather(*(gw.flush(60) for gw in gateways))
        assert await _stored(cluster.database) == (GATEWAYS * PER_GATEWAY,) * 2
        await eventually(
            lambda: _holds(second.api_url, GATEWAYS), 30, what="all back on the surviving node"
        )
        assert all(gw.is_connected for gw in gateways)
    finally:
        await asyncio.gather(*(gw.stop() for gw in gateways))


async def test_ingest_goes_on_while_the_bus_is_away_and_commands_recover(
    make_cluster: Callable[[int], Cluster],
) -> None:
    cluster = make_cluster(2)
    assert cluster.front_door is not None
    gw = Gateway("GW-BUS", backoff=RECONNECT, store=MemoryStore())
    gw.set_core_handler(_ClearsCache())
    await gw.start(cluster.front_door.url())
    try:
        held = [await asyncio.to_thread(_held, node.api_url) for node in cluster.nodes]
        other = cluster.nodes[held.index(0)].api_url  # the node that does not hold it
        # The owner subscribes to the gateway's subject right after the connection.
        await eventually(lambda: _command_works(other), 30, what="cross-node command works")
        cluster.nats.kill()
        await eventually(lambda: _bus_down(other), 30, what="the node sees the bus down")
        status, body = await asyncio.to_thread(_call, other, "GW-BUS", "ClearCache")
        assert status == 503, body
        # 10 s without the bus: every MeterValues is stored and answered meanwhile.
        loop = asyncio.get_running_loop()
        outage_ends, sent = loop.time() + OUTAGE, 0
        while loop.time() < outage_ends:
            await gw.meter_values(1, meter_values(sent).meter_value, timeout=10)
            sent += 1
            assert await _stored(cluster.database) == (sent, sent)
        status, body = await asyncio.to_thread(_call, other, "GW-BUS", "ClearCache")
        assert status == 503, body
        cluster.nats.start()  # same port: the nodes reconnect by themselves
        await eventually(lambda: _command_works(other), 30, what="cross-node command works")
    finally:
        await gw.stop()


class _ClearsCache(core.GatewayHandler):
    def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ClearCacheConfirmation:
        return core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)


async def _bus_down(api_url: str) -> bool:
    health = await asyncio.to_thread(_healthz, api_url)
    cluster = health.get("cluster")
    return isinstance(cluster, dict) and cluster["bus"]["connected"] is False


async def _command_works(api_url: str) -> bool:
    answer = await asyncio.to_thread(_call, api_url, "GW-BUS", "ClearCache")
    return answer == (200, {"status": "Accepted"})
