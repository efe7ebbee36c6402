"""The overview (``GET /api/fleet``) of every node shows the whole fleet.

Node B learns of the gateways node A holds from A's relayed events (sent whether or
not anybody streams events: no stream is open in these tests) and from the database
(after a bus outage). A node that is gone: see ``test_cluster_failures.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_helpers import (
    WAIT,
    cluster_state,
    fleet_item,
    node_apis,
    two_nodes,
    wait_bus,
    wait_item,
    wait_subscribed,
)
from service_helpers import gateway

from ntxcp.localservers.nats import NatsServer
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, postgres: PostgresServer
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "fleet")


async def test_b_shows_the_gateways_of_a_connected_with_their_attention(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    node_a, _ = nodes
    async with node_apis(nodes) as (a, b, _):
        async with gateway(node_a.ws_url, "fleet-1") as gw:
            await gw.boot_notification("DX-100")
            await gw.status_notification("1", "OtherError", "Faulted")
            await wait_subscribed(a, 1)
            for api in (a, b):
                page = await wait_item(
                    api,
                    "fleet-1",
                    "fleet-1 connected on a and faulted",
                    state="connected",
                    connected=True,
                    node="a",
                    model="DX-100",
                    attentionServices=1,
                    needsAttention=True,
                )
                # The counts are the whole cluster's, on either node.
                assert page["states"]["connected"] == 1, page
                assert page["attention"] == {"gateways": 1, "services": 1}, page
                _, item = await fleet_item(api, "fleet-1")
                assert item is not None and item["lastSeen"] is not None, item
                assert item["services"][0]["status"] == "Faulted", item
            # Back to Available: no attention on B either.
            await gw.status_notification("1", "NoError", "Available")
            await wait_item(b, "fleet-1", "fleet-1 available", needsAttention=False)
        for api in (a, b):
            page = await wait_item(
                api, "fleet-1", "fleet-1 gone", state="disconnected", connected=False, node=None
            )
            assert page["states"]["connected"] == 0, page
        # No event stream was open: the overview's events are sent regardless.
        assert (await cluster_state(b))["otherNodesListening"] is False


async def test_b_reads_the_fleet_again_after_a_bus_outage(
    nodes: tuple[ServiceProcess, ServiceProcess], nats_server: NatsServer
) -> None:
    """What happened on A while the bus was away reaches B's overview from the database."""
    node_a, _ = nodes
    async with node_apis(nodes) as (a, b, _), gateway(node_a.ws_url, "outage-1") as leaving:
        await leaving.boot_notification("DX-100")
        await wait_subscribed(a, 1)
        await wait_item(b, "outage-1", "outage-1 connected", state="connected", node="a")
        resyncs = (await cluster_state(b))["fleetResyncs"]
        nats_server.kill()
        down = True
        try:
            await wait_bus(a, connected=False)
            await wait_bus(b, connected=False)
            await leaving.stop()
            async with gateway(node_a.ws_url, "outage-2") as arriving:
                await arriving.boot_notification("DX-200")
                await arriving.status_notification("3", "NoError", "Faulted")

                async def a_has_it() -> bool:  # committed on A, missed by B
                    _, item = await fleet_item(a, "outage-2")
                    return item is not None and item["attentionServices"] == 1

                await eventually(a_has_it, WAIT, what="outage-2 faulted on a")
                _, item = await fleet_item(b, "outage-1")
                assert item is not None and item["state"] == "connected", item
                nats_server.restart()
                down = False
                await wait_bus(a)
                await wait_bus(b)
                await wait_item(
                    b,
                    "outage-2",
                    "outage-2 read from the database",
                    state="connected",
                    node="a",
                    model="DX-200",
                    attentionServices=1,
                )
                await wait_item(
                    b, "outage-1", "outage-1 read from the database", state="disconnected"
                )
                assert (await cluster_state(b))["fleetResyncs"] > resyncs
        finally:
            if down:
                nats_server.restart()
