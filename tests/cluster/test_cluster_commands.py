"""Commands and reads through any node: two real nodes, one NATS, one PostgreSQL.

A command sent to node B for a gateway connected to node A reaches the gateway over
NATS request-reply and is answered with the status codes of one node: the gateway's
answer (200), its CALLERROR (502), no answer in time (504), no node holding it (404).
Reads and the gateway list are the same on both nodes; the command log holds each
command once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import aiohttp
import pytest
from cluster_helpers import (
    WAIT,
    event_stream,
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
    """Nodes ``a`` and ``b`` of one cluster."""
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "cluster")


@pytest.fixture
async def apis(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> AsyncIterator[tuple[Api, Api, aiohttp.ClientSession]]:
    async with node_apis(nodes) as apis:
        yield apis


async def test_a_command_through_b_reaches_the_gateway_on_a(
    nodes: tuple[ServiceProcess, ServiceProcess], apis: tuple[Api, Api, aiohttp.ClientSession]
) -> None:
    node_a, _ = nodes
    a, b, _ = apis
    async with gateway(node_a.ws_url, "gw-1") as gw:
        await gw.boot_notification("DX-100")
        await wait_subscribed(a, 1)
        status, body = await b.call("gw-1", "DataTransfer", {"vendorId": "v", "data": "x"})
        assert (status, body) == (200, {"status": "Accepted", "data": "echo:x"})
        # The gateway's CALLERROR, as on one node (spec §2.1).
        status, body = await b.call("gw-1", "ChangeConfiguration", {"key": "fail", "value": "1"})
        assert status == 502, body
        assert body["code"] == "GenericError" and body["description"] == "refused by the test"
        assert body["details"] == {"key": "fail"}
        # No answer within --call-timeout 1 (the gateway takes 2 s for a hard reset).
        status, body = await b.call("gw-1", "Reset", {"type": "Hard"})
        assert status == 504, body
        # A bad payload is refused by the asking node, before any bus traffic.
        status, body = await b.call("gw-1", "Reset", {"type": "Medium"})
        assert status == 422 and body["path"] == "type"
        # The command log: every command once, whichever node is asked.
        _, log_b = await b.get("/api/commands", gateway="gw-1")
        _, log_a = await a.get("/api/commands", gateway="gw-1")
        assert log_a == log_b
        outcomes = sorted((c["action"], c["outcome"]) for c in log_a["items"])
        assert outcomes == [
            ("ChangeConfiguration", "callerror"),
            ("DataTransfer", "ok"),
            ("Reset", "timeout"),
        ]


async def test_gateway_ids_that_are_not_subject_tokens_are_routed(
    nodes: tuple[ServiceProcess, ServiceProcess], apis: tuple[Api, Api, aiohttp.ClientSession]
) -> None:
    node_a, _ = nodes
    a, b, _ = apis
    odd = "gw.1 *>~"  # NATS subjects cannot carry these characters as they are
    async with gateway(node_a.ws_url, odd) as gw:
        await gw.boot_notification("DX-100")
        await wait_subscribed(a, 1)
        status, body = await b.call(quote(odd, safe=""), "ClearCache", {})
        assert (status, body) == (200, {"status": "Accepted"})


async def test_no_node_holds_the_gateway_404(apis: tuple[Api, Api, aiohttp.ClientSession]) -> None:
    a, b, _ = apis
    status, body = await b.call("nobody-knows", "ClearCache", {})
    assert status == 404 and "unknown gateway" in body["error"]
    # Registered through A: B knows it (the database), but no node holds its socket.
    status, _ = await a.post("/api/gateways", {"id": "offline-1"})
    assert status == 201
    status, body = await b.call("offline-1", "ClearCache", {})
    assert status == 404 and "offline-1" in body["error"], body
    status, body = await b.get("/api/gateways/offline-1")
    assert status == 200 and body["registered"] is True


async def test_reads_and_connection_state_are_the_same_on_every_node(
    nodes: tuple[ServiceProcess, ServiceProcess], apis: tuple[Api, Api, aiohttp.ClientSession]
) -> None:
    node_a, _ = nodes
    a, b, _ = apis
    async with gateway(node_a.ws_url, "gw-read") as gw:
        await gw.boot_notification("DX-100")
        await gw.status_notification("1", "NoError", "Available")
        for api in (a, b):
            status, body = await api.get("/api/gateways/gw-read")
            assert status == 200 and body["connected"] is True, (api.base, body)
            assert body["node"] == "a", (api.base, body)
            _, page = await api.get("/api/gateways")
            assert {g["id"]: g["node"] for g in page["items"]}["gw-read"] == "a"
            status, body = await api.get("/api/gateways/gw-read/status")
            assert status == 200 and body["current"][0]["status"] == "Available", body
    for api in (a, b):

        async def disconnected(api: Api = api) -> bool:
            _, body = await api.get("/api/gateways/gw-read")
            return body["connected"] is False and body["node"] is None

        await eventually(disconnected, WAIT, what=f"gw-read disconnected at {api.base}")


async def test_events_of_a_are_streamed_by_b_once(
    nodes: tuple[ServiceProcess, ServiceProcess], apis: tuple[Api, Api, aiohttp.ClientSession]
) -> None:
    node_a, _ = nodes
    a, b, session = apis
    async with event_stream(session, b) as on_b, event_stream(session, a) as on_a:

        async def a_sends() -> bool:
            _, body = await a.get("/healthz")
            return bool(body["cluster"]["otherNodesListening"])

        await eventually(a_sends, WAIT, what="node a knows that node b listens")
        async with gateway(node_a.ws_url, "gw-events") as gw:
            await gw.status_notification("7", "OtherError", "Faulted", info="first")
            await gw.status_notification("7", "NoError", "Available", info="last")
            for stream in (on_b, on_a):
                await eventually(
                    lambda stream=stream: bool(stream.of("status", info="last")),
                    WAIT,
                    what="the last status event",
                )
        # Each event once on each node: B relays A's events, A does not get its own back.
        for stream in (on_b, on_a):
            assert len(stream.of("status", gatewayId="gw-events", info="first")) == 1
            assert len(stream.of("connection", gatewayId="gw-events", connected=True)) == 1
