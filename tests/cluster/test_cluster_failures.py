"""A node killed, or the database stopped, under a running cluster.

Each test starts nodes ``a`` and ``b`` of a cluster of its own (the module's NATS
server carries no other cluster's nodes, whose ids would be the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from cluster_helpers import (
    WAIT,
    cluster_state,
    health,
    node_apis,
    two_nodes,
    wait_item,
    wait_subscribed,
)
from service_helpers import AnsweringCore, Api, gateway

import ntxcp
from ntxcp.localservers.nats import NatsServer
from ntxcp.v10 import core
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def nodes(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, postgres: PostgresServer
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "failures")


async def metrics_of(api: Api) -> str:
    status, text = await api.get("/metrics")
    assert status == 200
    return str(text)


async def wait_both_alive(b: Api) -> None:
    async def both_alive() -> bool:
        return (await cluster_state(b))["nodes"] == ["a", "b"]

    await eventually(both_alive, WAIT, what="b hears a's heartbeat")


async def test_the_gateways_of_a_killed_node_turn_disconnected_in_the_overview_of_b(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    node_a, _ = nodes
    async with node_apis(nodes) as (a, b, _):
        await wait_both_alive(b)
        async with gateway(node_a.ws_url, "orphan-1") as gw:
            await gw.boot_notification("DX-100")
            await gw.status_notification("1", "OtherError", "Faulted")
            await wait_subscribed(a, 1)
            await wait_item(b, "orphan-1", "orphan-1 on a", node="a", needsAttention=True)
            node_a.signal(signal.SIGKILL)  # no "disconnected" event will ever come
            node_a.wait()
            page = await wait_item(
                b,
                "orphan-1",
                "orphan-1 disconnected after a's heartbeat stopped",
                state="disconnected",
                node=None,
                needsAttention=False,
            )
            assert page["states"]["connected"] == 0 and page["attention"]["gateways"] == 0


class SilentReset(AnsweringCore):
    """Answers every core action but Reset, which it never answers."""

    async def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
        await asyncio.get_running_loop().create_future()  # cancelled when the gateway stops
        raise AssertionError("never answered")


@contextlib.asynccontextmanager
async def silent_gateway(ws_url: str, gateway_id: str) -> AsyncIterator[ntxcp.Gateway]:
    gw = ntxcp.Gateway(gateway_id, reconnect=False, connect_timeout=WAIT)
    gw.set_core_handler(SilentReset())
    await gw.start(ws_url)
    try:
        yield gw
    finally:
        await gw.stop()


async def test_a_command_in_flight_when_the_owning_node_dies_answers_504(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> None:
    node_a, _ = nodes
    timeout = 3.0  # the command's timeout; b waits 2 s longer for a's answer
    async with node_apis(nodes) as (a, b, _), silent_gateway(node_a.ws_url, "dying-1") as gw:
        await gw.boot_notification("DX-100")
        await wait_subscribed(a, 1)
        started = time.monotonic()
        call = asyncio.ensure_future(
            b.request(
                "POST",
                "/api/gateways/dying-1/calls/Reset",
                json={"type": "Soft"},
                params={"timeout": str(timeout)},
            )
        )

        async def a_serves_it() -> bool:
            assert not call.done(), call.result()
            return "ntxcp_cluster_commands_served 1" in await metrics_of(a)

        await eventually(a_serves_it, WAIT, what="node a sends the Reset to the gateway")
        node_a.signal(signal.SIGKILL)
        node_a.wait()
        status, body = await call
        elapsed = time.monotonic() - started
        assert status == 504, body
        assert "Reset" in body["error"], body
        # Nobody answered: b waited the command's timeout plus its margin. (A living
        # owner answers "timeout" itself after the command's timeout.)
        assert elapsed >= timeout + 1.5, elapsed
        _, log = await b.get("/api/commands", gateway="dying-1")
        assert [(c["action"], c["outcome"]) for c in log["items"]] == [("Reset", "timeout")]


async def test_health_and_metrics_say_when_the_database_is_away_and_back(
    nodes: tuple[ServiceProcess, ServiceProcess], postgres: PostgresServer
) -> None:
    async with node_apis(nodes) as (a, b, _):
        for api in (a, b):
            assert "ntxcp_cluster_database_reachable 1" in await metrics_of(api)
        await asyncio.to_thread(postgres.stop, "fast")
        try:
            for api in (a, b):

                async def unreachable(api: Api = api) -> bool:
                    status, _ = await api.get("/healthz")
                    return status == 503

                await eventually(unreachable, WAIT, what=f"{api.base} sees the database away")
                body = await health(api)
                assert body["status"] == "unavailable", body
                assert body["database"]["reachable"] is False and body["database"]["error"]
                assert body["cluster"]["bus"]["connected"] is True, body
                assert "ntxcp_cluster_database_reachable 0" in await metrics_of(api)
        finally:
            await asyncio.to_thread(postgres.start)
        for api in (a, b):

            async def reachable(api: Api = api) -> bool:
                status, _ = await api.get("/healthz")
                return status == 200

            await eventually(reachable, WAIT, what=f"{api.base} sees the database back")
            assert (await health(api))["status"] == "ok"
            assert "ntxcp_cluster_database_reachable 1" in await metrics_of(api)
