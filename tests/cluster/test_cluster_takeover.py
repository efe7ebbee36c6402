"""Takeover: a gateway admitted by node B while node A still holds a socket for it.

The nodes check gateway passwords (``--auth basic``); gateways are registered
through one node and connect to the other, which learns of them from the registry
messages on the bus. A raw WebSocket client connects to node A as gateway
``moving-1`` and then stops reading (its TCP session stays open, as one whose peer
vanished). The real gateway then connects to node B: B publishes the takeover with
its session epoch, A closes its older socket with 1008 "replaced" (as one node does
when a gateway connects twice, spec §1) and stops answering commands for it.
Exactly one session remains, and every node shows the gateway connected.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import aiohttp
import pytest
from cluster_helpers import (
    WAIT,
    cluster_state,
    health,
    node_apis,
    two_nodes,
    wait_subscribed,
)
from service_helpers import Api, gateway

from ntxcp.localservers.nats import NatsServer
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, postgres: PostgresServer
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "takeover", "--auth", "basic")


async def raw_socket(
    session: aiohttp.ClientSession, node: ServiceProcess, gateway_id: str, password: str
) -> aiohttp.ClientWebSocketResponse:
    """A bare WebSocket of a gateway that sends nothing and reads only when told to."""
    token = base64.b64encode(f"{gateway_id}:{password}".encode()).decode()
    return await session.ws_connect(
        f"{node.ws_url}/{gateway_id}",
        protocols=("ntxcp1.0",),
        autoping=False,
        headers={"Authorization": f"Basic {token}"},
    )


async def register(registrar: Api, other: Api, gateway_id: str) -> str:
    """Register a gateway through one node; wait until the other knows it. Its secret."""
    known_before = (await health(other))["knownGateways"]
    status, body = await registrar.post(
        "/api/gateways", {"id": gateway_id, "generatePassword": True}
    )
    assert status == 201, body

    async def other_knows() -> bool:
        return bool((await health(other))["knownGateways"] == known_before + 1)

    await eventually(other_knows, WAIT, what=f"the other node knows {gateway_id}")
    return str(body["password"])


async def test_a_half_open_socket_on_a_is_closed_when_b_admits_the_gateway(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    node_a, node_b = nodes
    async with node_apis(nodes) as (a, b, session):
        password = await register(a, b, "moving-1")
        stale = await raw_socket(session, node_a, "moving-1", password)
        try:
            await wait_subscribed(a, 1)  # A holds the socket; nothing is read from now on
            async with gateway(node_b.ws_url, "moving-1", password=password) as gw:
                await gw.boot_notification("DX-100")
                # A closed its older socket the way one node closes a replaced one.
                message = await stale.receive(timeout=WAIT)
                assert message.type is aiohttp.WSMsgType.CLOSE, message
                assert (message.data, message.extra) == (1008, "replaced")
                await wait_subscribed(a, 0)
                await wait_subscribed(b, 1)

                async def a_closed_it() -> bool:  # A's disconnection hooks have run
                    return (await cluster_state(a))["gatewaysOwned"] == 0

                await eventually(a_closed_it, WAIT, what="node a's socket of moving-1 closed")
                state_a, state_b = await cluster_state(a), await cluster_state(b)
                assert (state_a["gatewaysOwned"], state_a["takeovers"]) == (0, 1)
                assert (state_b["gatewaysOwned"], state_b["takeovers"]) == (1, 0)
                # Commands through A now reach the gateway on B.
                status, body = await a.call("moving-1", "ClearCache", {})
                assert (status, body) == (200, {"status": "Accepted"})
                # A's closing did not mark the gateway disconnected: B holds it.
                for api in (a, b):
                    status, body = await api.get("/api/gateways/moving-1")
                    state = await cluster_state(api)
                    assert status == 200 and body["connected"] is True, (api.base, body, state)
                    assert body["node"] == "b", (api.base, body, state)
        finally:
            await stale.close()


async def test_the_newer_session_wins_on_either_node(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    """Back and forth: each admission takes the gateway over from the other node."""
    node_a, node_b = nodes
    async with node_apis(nodes) as (a, b, _):
        password = await register(b, a, "flip-1")
        async with gateway(node_a.ws_url, "flip-1", password=password):
            await wait_subscribed(a, 1)
            async with gateway(node_b.ws_url, "flip-1", password=password):

                async def only_b_holds() -> bool:
                    return (await cluster_state(a))["gatewaysOwned"] == 0 and (
                        await cluster_state(b)
                    )["gatewaysOwned"] == 1

                await eventually(only_b_holds, WAIT, what="only node b holds flip-1")
                async with gateway(node_a.ws_url, "flip-1", password=password):

                    async def only_a_holds() -> bool:
                        return (await cluster_state(a))["gatewaysOwned"] == 1 and (
                            await cluster_state(b)
                        )["gatewaysOwned"] == 0

                    await eventually(only_a_holds, WAIT, what="only node a holds flip-1")
                    await wait_subscribed(a, 1)
                    status, body = await b.call("flip-1", "ClearCache", {})
                    assert (status, body) == (200, {"status": "Accepted"})


async def test_a_new_secret_set_through_b_closes_the_socket_on_a(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    """Spec §1: a connection admitted with the old secret does not outlive it."""
    node_a, _ = nodes
    async with node_apis(nodes) as (a, b, session):
        password = await register(a, b, "rekeyed-1")
        socket = await raw_socket(session, node_a, "rekeyed-1", password)
        try:
            await wait_subscribed(a, 1)
            status, body = await b.request(
                "PUT", "/api/gateways/rekeyed-1/password", json={"generatePassword": True}
            )
            assert status == 200, body
            message = await socket.receive(timeout=WAIT)
            assert message.type is aiohttp.WSMsgType.CLOSE, message
            assert (message.data, message.extra) == (1008, "gateway credentials changed")
            # The new secret works on the node that learned it from the bus.
            async with gateway(node_a.ws_url, "rekeyed-1", password=body["password"]):
                await wait_subscribed(a, 1)
        finally:
            await socket.close()
