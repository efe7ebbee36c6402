"""Live frames of a gateway held by another node: two real nodes, one NATS, one PostgreSQL.

A stream on node B that watches the frames of a gateway connected to node A gets them
live, though nobody on A watches them: B's announcements on ``ntxcp.listeners`` name
the gateways whose frames its streams want. A sends the frames of those gateways only,
and stops within the announcements' time to live once B's stream is gone. A tap on
the bus (a plain NATS subscription) sees what A sends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import nats
import pytest
from cluster_helpers import WAIT, cluster_state, event_stream, node_apis, two_nodes
from nats.aio.msg import Msg
from service_helpers import Api, gateway

from ntxcp.localservers.nats import NatsServer
from ntxcp.service.cluster.relay import LISTENING_TTL
from pg_server import PostgresServer
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(120)

WATCHED, QUIET = "gw-watched", "gw-quiet"
_PROBE_LATENCY = 2.0  # s: a loaded machine's time from a probe's send to its status on the tap
_STREAM_GONE = 1.0  # s: a node notices a closed stream within a second (live_api)


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer, postgres: PostgresServer
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Nodes ``a`` and ``b`` of one cluster."""
    yield from two_nodes(tmp_path_factory, nats_server, postgres, "frames")


@pytest.fixture
async def apis(
    nodes: tuple[ServiceProcess, ServiceProcess],
) -> AsyncIterator[tuple[Api, Api, aiohttp.ClientSession]]:
    async with node_apis(nodes) as apis:
        yield apis


class BusTap:
    """Every event the nodes send on the bus (``ntxcp.events.>``), in arrival order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def on_message(self, message: Msg) -> None:
        self.events.append(json.loads(message.data))

    def frames(self, gateway_id: str, containing: str = "") -> list[dict[str, Any]]:
        """The ``frame`` events sent about a gateway (whose frame holds ``containing``)."""
        return [
            event["data"]
            for event in self.events
            if event["kind"] == "frame"
            and event["gateway_id"] == gateway_id
            and containing in (event["data"]["raw"] or "")
        ]

    def status(self, gateway_id: str, info: str) -> bool:
        """Whether a ``status`` event of the gateway with this ``info`` was sent."""
        return any(
            event["kind"] == "status"
            and event["gateway_id"] == gateway_id
            and event["data"].get("info") == info
            for event in self.events
        )


@pytest.fixture
async def tap(nats_server: NatsServer) -> AsyncIterator[BusTap]:
    bus_tap = BusTap()
    client = await nats.connect(nats_server.url)
    try:
        await client.subscribe("ntxcp.events.>", cb=bus_tap.on_message)
        await client.flush()
        yield bus_tap
    finally:
        await client.close()


async def wait_frames_sent(api: Api, gateways: list[str]) -> None:
    """Wait until the node sends the frames of these gateways (``/healthz``)."""

    async def reached() -> bool:
        sent = (await cluster_state(api))["framesSent"]
        return sent == {"allGateways": False, "gateways": gateways}

    await eventually(reached, WAIT, what=f"frames of {gateways} sent by {api.base}")


async def test_a_stream_on_b_gets_the_frames_of_a_gateway_on_a_live(
    nodes: tuple[ServiceProcess, ServiceProcess], apis: tuple[Api, Api, aiohttp.ClientSession]
) -> None:
    node_a, _ = nodes
    a, b, session = apis
    async with event_stream(session, b, gateway=WATCHED, kinds="frame") as on_b:
        await wait_frames_sent(a, [WATCHED])  # no stream is open on A
        async with gateway(node_a.ws_url, WATCHED) as gw:
            await gw.boot_notification("DX-100")

            def boot_frames() -> list[tuple[str, str]]:
                return [
                    (frame["direction"], frame["messageType"])
                    for frame in on_b.of("frame", gatewayId=WATCHED, action="BootNotification")
                ]

            await eventually(
                lambda: boot_frames() == [("in", "CALL"), ("out", "CALLRESULT")],
                WAIT,
                what="the BootNotification's frames in and out on B's stream",
            )
            (frame_in,) = on_b.of("frame", direction="in", action="BootNotification")
            assert '"BootNotification"' in frame_in["raw"], frame_in
    assert (await cluster_state(a))["otherNodesListening"] is True


async def test_frames_of_gateways_nobody_watches_elsewhere_stay_off_the_bus(
    nodes: tuple[ServiceProcess, ServiceProcess],
    apis: tuple[Api, Api, aiohttp.ClientSession],
    tap: BusTap,
) -> None:
    node_a, _ = nodes
    a, b, session = apis
    async with (
        # B's overview (no frames) and a gateway's message log; A's own stream shows
        # the quiet gateway's frames (never the watched one's: the other tests rely
        # on A having no stream of its own that wants them).
        event_stream(session, b, kinds="connection,status,seen"),
        event_stream(session, b, gateway=WATCHED, kinds="frame") as on_b,
        event_stream(session, a, gateway=QUIET, kinds="frame") as on_a,
        gateway(node_a.ws_url, QUIET) as quiet,
        gateway(node_a.ws_url, WATCHED) as watched,
    ):
        await wait_frames_sent(a, [WATCHED])
        for n in range(20):
            await quiet.status_notification("1", "NoError", "Available", info=f"quiet-{n}")
        await watched.status_notification("1", "NoError", "Available", info="marker")
        # A sends its events in order: the marker's frame on the bus comes after every
        # frame of the quiet gateway that A would have sent.
        await eventually(lambda: bool(tap.frames(WATCHED, "marker")), WAIT, what="marker")
        assert tap.frames(QUIET) == []
        await eventually(  # A's own stream had them
            lambda: len(on_a.of("frame", gatewayId=QUIET, direction="in")) == 20,
            WAIT,
            what="the quiet gateway's frames on A's stream",
        )
        await eventually(
            lambda: bool(on_b.of("frame", gatewayId=WATCHED, direction="out")),
            WAIT,
            what="the marker's answer on B's stream",
        )
        assert on_b.of("frame", gatewayId=QUIET) == []


async def test_frames_stop_within_the_ttl_once_the_stream_on_b_is_closed(
    nodes: tuple[ServiceProcess, ServiceProcess],
    apis: tuple[Api, Api, aiohttp.ClientSession],
    tap: BusTap,
) -> None:
    node_a, _ = nodes
    a, b, session = apis
    async with gateway(node_a.ws_url, WATCHED) as gw:
        async with event_stream(session, b, gateway=WATCHED, kinds="frame"):
            await wait_frames_sent(a, [WATCHED])
            await gw.status_notification("1", "NoError", "Available", info="watched")
            await eventually(lambda: bool(tap.frames(WATCHED, "watched")), WAIT, what="sent")
        closed = time.monotonic()
        probes = iter(range(1_000))

        async def frames_stopped() -> bool:
            # A status is always sent, after the frame that carried it in (if sent).
            info = f"probe-{next(probes)}"
            await gw.status_notification("1", "NoError", "Available", info=info)
            await eventually(lambda: tap.status(WATCHED, info), WAIT, what=info)
            return not tap.frames(WATCHED, info)

        await eventually(frames_stopped, WAIT, what="A no longer sends the frames")
        took = time.monotonic() - closed
        assert took < _STREAM_GONE + LISTENING_TTL + _PROBE_LATENCY, took
        await wait_frames_sent(a, [])
