"""HAProxy in front of control-center nodes: the gateways' front door (docs/deployment.md).

Real parts only: Debian's ``haproxy`` (``ntxcp.localservers.haproxy``) on a free
loopback port, ``ntxcp control-center`` nodes as subprocesses (each with its own SQLite
file: the front door does not care how the nodes share their data), and gateways
connecting through HAProxy.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontdoor_helpers import backend_of

import ntxcp
from ntxcp import Backoff, Gateway
from ntxcp.localservers.haproxy import Backend, HAProxy, haproxy_config
from ntxcp.v10 import core
from service_process import ServiceProcess
from waiting import WAIT, eventually

FAST = Backoff(initial=0.05, maximum=0.3, reset_after=0.5)


def connected_gateways(node: ServiceProcess) -> int:
    """The node's own count of connected gateways (``/healthz``)."""
    with urllib.request.urlopen(node.api_url.rstrip("/") + "/healthz", timeout=5) as answer:
        count: int = json.load(answer)["connectedGateways"]
        return count


async def holds(node: ServiceProcess, count: int) -> bool:
    return await asyncio.to_thread(connected_gateways, node) == count


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Two control-center nodes (subprocesses) accepting any gateway."""
    started: list[ServiceProcess] = []
    try:
        for n in range(2):
            directory = tmp_path / f"node{n}"
            directory.mkdir()
            node = ServiceProcess(directory, "--unknown-gateways", "accept")
            started.append(node.start())
        yield started
    finally:
        for node in started:
            node.kill()


@pytest.fixture
def front_door(nodes: list[ServiceProcess]) -> Iterator[HAProxy]:
    proxy = HAProxy([backend_of(f"node{n}", node) for n, node in enumerate(nodes)])
    try:
        proxy.start()
        proxy.wait_states({"node0": "UP", "node1": "UP"})
        yield proxy
    finally:
        proxy.remove()


async def test_gateways_pass_haproxy_and_come_back_on_the_other_node(
    nodes: list[ServiceProcess], front_door: HAProxy, tmp_path: Path
) -> None:
    gateways = [Gateway(f"GW-HP-{n}", backoff=FAST, store=tmp_path / f"q{n}.db") for n in range(4)]
    try:
        for gw in gateways:
            await gw.start(front_door.url(), retry=True)
        await eventually(lambda: holds(nodes[0], 2), what="leastconn: 2 gateways on node0")
        await eventually(lambda: holds(nodes[1], 2), what="leastconn: 2 gateways on node1")
        assert [gw.connect_count for gw in gateways] == [1, 1, 1, 1]
        nodes[0].stop()
        front_door.wait_states({"node0": "DOWN", "node1": "UP"})
        await eventually(lambda: holds(nodes[1], 4), WAIT * 2, what="all 4 back on node1")
        # Stored data keeps flowing through the front door after the switch.
        for gw in gateways:
            await gw.status_notification("0", "NoError", "Available", timeout=WAIT)
        assert all(gw.is_connected for gw in gateways)
        assert sum(gw.connect_count for gw in gateways) == 6  # 2 moved, 2 never cut
    finally:
        for gw in gateways:
            await gw.stop()


async def test_plain_websocket_through_http_mode(nodes: list[ServiceProcess]) -> None:
    proxy = HAProxy([backend_of(f"node{n}", node) for n, node in enumerate(nodes)], mode="http")
    gw = Gateway("GW-HTTP")
    try:
        proxy.start()
        proxy.wait_states({"node0": "UP", "node1": "UP"})
        assert "mode http" in proxy.config and "timeout tunnel 3600s" in proxy.config
        await gw.start(proxy.url())
        answer = await gw.heartbeat(timeout=WAIT)
        assert isinstance(answer, core.HeartbeatConfirmation)
    finally:
        await gw.stop()
        proxy.remove()


async def test_tls_passes_through_to_the_node(tmp_path: Path, pki: Any) -> None:
    node = ServiceProcess(
        tmp_path,
        "--unknown-gateways",
        "accept",
        "--certfile",
        str(pki.server_cert),
        "--keyfile",
        str(pki.server_key),
    ).start()
    proxy = HAProxy([backend_of("node0", node)])
    gw = Gateway("GW-TLS", ssl=ntxcp.client_tls_context(str(pki.ca_cert)))
    try:
        assert node.ws_url.startswith("wss://")
        proxy.start()
        proxy.wait_states({"node0": "UP"})
        # The node's certificate (for 127.0.0.1) is what the gateway checks: HAProxy
        # only passes the bytes on.
        await gw.start(proxy.url(scheme="wss"))
        assert isinstance(await gw.heartbeat(timeout=WAIT), core.HeartbeatConfirmation)
    finally:
        await gw.stop()
        proxy.remove()
        node.kill()


async def test_reload_keeps_established_connections(
    nodes: list[ServiceProcess], front_door: HAProxy
) -> None:
    gw = Gateway("GW-RELOAD", backoff=FAST)
    try:
        await gw.start(front_door.url())
        front_door.reload([backend_of("node0", nodes[0])])
        assert set(front_door.server_states()) == {"node0"}
        assert isinstance(await gw.heartbeat(timeout=WAIT), core.HeartbeatConfirmation)
        assert gw.connect_count == 1
        with pytest.raises(RuntimeError, match="refuses"):
            front_door.reload([Backend("node0", "bad[host", 80, 81)])
        assert set(front_door.server_states()) == {"node0"}  # the old one stays
    finally:
        await gw.stop()


def test_haproxy_accepts_the_recipe_and_bad_input_is_refused(tmp_path: Path) -> None:
    nodes = [Backend("node-a", "10.0.0.11", 8887, 8080), Backend("node-b", "10.0.0.12", 8887, 8080)]
    for mode in ("tcp", "http"):
        proxy = HAProxy(nodes, mode=mode)  # type: ignore[arg-type]
        try:
            proxy.check_config()
        finally:
            proxy.remove()
    text = haproxy_config(nodes, bind=":443", max_connections=200_000)
    assert "maxconn 200000" in text and "server node-b 10.0.0.12:8887 check port 8080" in text
    with pytest.raises(ValueError, match="at least one"):
        haproxy_config([], bind=":443")
    with pytest.raises(ValueError, match="bad node name"):
        haproxy_config([Backend("a b", "h", 1, 2)], bind=":443")
    with pytest.raises(ValueError, match="bad port"):
        haproxy_config([Backend("a", "h", 0, 2)], bind=":443")
    with pytest.raises(ValueError, match="mode"):
        haproxy_config(nodes, bind=":443", mode="udp")  # type: ignore[arg-type]


def test_the_recipe_in_the_deployment_guide_is_what_the_tests_run() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    block = guide.split("<!-- haproxy-recipe: begin -->\n```\n")[1].split("```\n")[0]
    nodes = [Backend(f"node-{n}", f"10.0.1.1{n}", 8887, 8080) for n in (1, 2, 3)]
    expected = haproxy_config(
        nodes,
        bind=":443",
        max_connections=220_000,
        admin_socket="/run/haproxy/admin.sock",
        check_interval=2.0,
    )
    assert block == expected
