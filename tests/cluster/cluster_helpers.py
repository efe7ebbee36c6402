"""Helpers of the cluster tests: nodes as real processes, their health, event streams.

A node is ``python -m ntxcp control-center --cluster nats://... --db postgresql://...``
in a subprocess (:class:`ServiceProcess`); every node of a test module shares the
module's NATS server and one database of the session's PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import TOKEN, Api

from ntxcp.localservers.nats import NatsServer
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

WAIT = 15.0  # s: a loaded machine may take a while to connect a node to the bus
_databases = itertools.count(1)


def cluster_database(postgres: PostgresServer) -> str:
    """A new empty database on the session's PostgreSQL server."""
    return postgres.create_database(f"cluster_{next(_databases)}")


def start_node(
    directory: Path, nats: NatsServer, db: str, node_id: str, *args: str
) -> ServiceProcess:
    """Start one node (call timeout 1 s, API token) and wait for its ready line."""
    node_dir = directory / node_id
    node_dir.mkdir(exist_ok=True)
    return ServiceProcess(
        node_dir,
        "--cluster", nats.url, "--node-id", node_id, "--api-token", TOKEN,
        "--call-timeout", "1", *args,
        db=db,
    ).start(timeout=30)  # fmt: skip


def two_nodes(
    factory: pytest.TempPathFactory,
    nats: NatsServer,
    postgres: PostgresServer,
    name: str,
    *args: str,
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Nodes ``a`` and ``b`` of one cluster on a new database (for a module fixture)."""
    directory = factory.mktemp(name)
    db = cluster_database(postgres)
    a = start_node(directory, nats, db, "a", *args)
    b = start_node(directory, nats, db, "b", *args)
    with stopped_at_exit(a, b):
        yield a, b


@contextlib.asynccontextmanager
async def node_apis(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> AsyncIterator[tuple[Api, Api, aiohttp.ClientSession]]:
    """API clients of both nodes, once they are ready (see :func:`wait_ready`)."""
    async with aiohttp.ClientSession() as session:
        a, b = (Api(session, node.api_url, TOKEN) for node in nodes)
        await wait_ready(a, b)
        yield a, b, session


@contextlib.contextmanager
def stopped_at_exit(*nodes: ServiceProcess) -> Iterator[None]:
    """Stop the nodes at the end of the block (SIGTERM, then kill)."""
    try:
        yield
    finally:
        for node in nodes:
            try:
                node.stop()
            finally:
                node.kill()


async def health(api: Api) -> dict[str, Any]:
    """The node's ``/healthz`` body."""
    _, body = await api.get("/healthz")
    assert isinstance(body, dict), body
    return body


async def cluster_state(api: Api) -> dict[str, Any]:
    """The ``cluster`` part of the node's ``/healthz``."""
    state = (await health(api))["cluster"]
    assert isinstance(state, dict)
    return state


async def wait_bus(api: Api, connected: bool = True) -> None:
    """Wait until the node's bus is (dis)connected."""

    async def reached() -> bool:
        return bool((await cluster_state(api))["bus"]["connected"]) is connected

    await eventually(reached, WAIT, what=f"bus connected == {connected} at {api.base}")


async def wait_ready(*apis: Api) -> None:
    """Wait until the nodes are on the bus and hold no gateway of an earlier test."""
    for api in apis:
        await wait_bus(api)
        await wait_subscribed(api, 0)


async def wait_subscribed(api: Api, count: int) -> None:
    """Wait until the node answers commands for ``count`` gateways on the bus."""

    async def reached() -> bool:
        return (await cluster_state(api))["commandSubscriptions"] == count

    await eventually(reached, WAIT, what=f"{count} command subscriptions at {api.base}")


async def fleet_item(api: Api, gateway_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The node's ``/api/fleet`` page filtered to one gateway: the page and its item."""
    status, page = await api.get("/api/fleet", q=gateway_id)
    assert status == 200, page
    items = [item for item in page["items"] if item["id"] == gateway_id]
    return page, items[0] if items else None


async def wait_item(api: Api, gateway_id: str, what: str, **expected: Any) -> dict[str, Any]:
    """Wait until the gateway's overview item has the expected values; the page."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        page, item = await fleet_item(api, gateway_id)
        seen["page"], seen["item"] = page, item
        return item is not None and all(item.get(k) == v for k, v in expected.items())

    try:
        await eventually(reached, WAIT, what=f"{what} at {api.base}: {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last: {seen.get('item')})") from None
    page: dict[str, Any] = seen["page"]
    return page


class EventStream:
    """A reader of one node's ``/api/events`` (server-sent events), in a task."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ended = False

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """The events of a kind whose data holds every ``match`` item."""
        return [
            data
            for event_kind, data in self.events
            if event_kind == kind and all(data.get(k) == v for k, v in match.items())
        ]

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        kind = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                self.events.append((kind, json.loads(line[6:])))
        self.ended = True


@contextlib.asynccontextmanager
async def event_stream(
    session: aiohttp.ClientSession, api: Api, **params: str
) -> AsyncIterator[EventStream]:
    """Read the node's event stream (query ``params``) for the duration of the block."""
    stream = EventStream()
    async with session.get(
        api.base + "/api/events", params=params, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 200
        task = asyncio.get_running_loop().create_task(stream._read(response))
        try:
            await eventually(lambda: bool(stream.of("hello")), WAIT, what="hello event")
            yield stream
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
