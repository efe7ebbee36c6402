"""The cluster when a part fails: the bus stopped, a node killed.

NATS stopped: the node that holds a gateway keeps serving it and storing its data
(the ingest path never waits for the bus); a command sent through another node
answers 503 with the reason; once NATS is back, every node reconnects by itself and
commands are routed again; its event streams end with ``resync``, so that a
dashboard reloads what it missed from the database. A node killed with SIGKILL:
its gateways show as disconnected once its heartbeat has stopped, connect to the other
node and are served there, commands included.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cluster_helpers import (
    WAIT,
    cluster_state,
    event_stream,
    health,
    node_apis,
    two_nodes,
    wait_bus,
    wait_subscribed,
)
from service_helpers import Api, gateway, sample

from ntxcp.localservers.nats import NatsServer
from ntxcp.v10 import types as t
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, postgres: PostgresServer
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "degraded")


async def metrics_of(api: Api) -> str:
    status, text = await api.get("/metrics")
    assert status == 200
    return str(text)


async def _meter_count(api: Api, gateway_id: str) -> int:
    status, body = await api.get(f"/api/gateways/{gateway_id}/meter-values")
    assert status == 200, body
    return int(body["count"])


async def test_with_the_bus_down_ingest_goes_on_and_remote_commands_answer_503(
    cluster: tuple[ServiceProcess, ServiceProcess], nats_server: NatsServer
) -> None:
    node_a, _ = cluster
    async with node_apis(cluster) as (a, b, session):
        async with (
            event_stream(session, b) as stream,
            gateway(node_a.ws_url, "ingest-1") as gw,
        ):
            await gw.boot_notification("DX-100")
            await wait_subscribed(a, 1)
            nats_server.kill()
            try:
                await wait_bus(a, connected=False)
                await wait_bus(b, connected=False)
                # Ingest: acknowledged only once committed, whatever the bus does.
                for minute in range(5):
                    now = datetime(2026, 12, 5, 1, minute, tzinfo=UTC)
                    await gw.meter_values(
                        1, [t.MeterValue(timestamp=now, sampled_value=[sample("1")])]
                    )
                for api in (a, b):  # reads come from the shared database on any node
                    assert await _meter_count(api, "ingest-1") == 5
                # A command through the node that holds the gateway still works ...
                status, body = await a.call("ingest-1", "ClearCache", {})
                assert (status, body) == (200, {"status": "Accepted"})
                # ... one through another node cannot reach it: 503 with the reason.
                status, body = await b.call("ingest-1", "ClearCache", {})
                assert status == 503, body
                assert "cluster bus is unavailable" in body["error"], body
                assert (await health(b))["status"] == "degraded"
                metrics = await metrics_of(b)
                assert 'ntxcp_cluster_node_info{node="b"} 1' in metrics
                assert "ntxcp_cluster_bus_connected 0" in metrics
                assert "ntxcp_cluster_database_reachable 1" in metrics
                assert "ntxcp_cluster_gateways_owned 1" in await metrics_of(a)
            finally:
                nats_server.restart()
            await wait_bus(a)
            await wait_bus(b)

            async def routed_again() -> bool:
                status, _ = await b.call("ingest-1", "ClearCache", {})
                return status == 200

            await eventually(
                routed_again, WAIT, what="commands through b reach ingest-1 again", interval=0.2
            )
            assert (await health(b))["status"] == "ok"
            assert "ntxcp_cluster_bus_connected 1" in await metrics_of(b)
            assert (await cluster_state(b))["bus"]["reconnects"] >= 1
            # B missed A's events meanwhile: its streams end with resync (reload).
            await eventually(lambda: stream.ended, WAIT, what="b's event stream ended")
            assert stream.events[-1][0] == "resync"
        _, log = await b.get("/api/commands", gateway="ingest-1")
        assert {c["outcome"] for c in log["items"]} >= {"ok", "bus-unavailable"}


async def test_the_gateways_of_a_killed_node_are_served_by_the_other(
    cluster: tuple[ServiceProcess, ServiceProcess],
) -> None:
    node_a, node_b = cluster
    async with node_apis(cluster) as (a, b, _):

        async def both_alive() -> bool:
            return (await cluster_state(b))["nodes"] == ["a", "b"]

        await eventually(both_alive, WAIT, what="b hears a's heartbeat")
        async with gateway(node_a.ws_url, "survivor-1") as gw:
            await gw.boot_notification("DX-100")
            await wait_subscribed(a, 1)
            _, body = await b.get("/api/gateways/survivor-1")
            assert (body["connected"], body["node"]) == (True, "a")
            status, body = await b.call("survivor-1", "ClearCache", {})
            assert (status, body) == (200, {"status": "Accepted"}), body
            node_a.signal(signal.SIGKILL)
            node_a.wait()

            async def shown_disconnected() -> bool:  # node a's heartbeat stopped
                _, body = await b.get("/api/gateways/survivor-1")
                return body["connected"] is False and body["node"] is None

            await eventually(shown_disconnected, WAIT, what="b shows survivor-1 disconnected")
            assert (await cluster_state(b))["nodes"] == ["b"]
        # The gateway comes back on the surviving node (what a failover URL list or a
        # load balancer does), and commands reach it there.
        async with gateway(node_b.ws_url, "survivor-1") as gw:
            await gw.boot_notification("DX-100")
            await wait_subscribed(b, 1)
            status, body = await b.call("survivor-1", "ClearCache", {})
            assert (status, body) == (200, {"status": "Accepted"})
            status, body = await b.get("/api/gateways/survivor-1")
            assert (body["connected"], body["node"]) == (True, "b")
