"""Helpers of the front-door tests: nodes in cluster mode behind a real HAProxy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ntxcp.localservers.haproxy import Backend, HAProxy
from ntxcp.localservers.nats import NatsServer
from ntxcp.localservers.node import NodeProcess


def backend_of(name: str, node: NodeProcess) -> Backend:
    """The node as HAProxy sees it: its WebSocket port, and its API port for /healthz."""
    ws, api = urlsplit(node.ws_url).port, urlsplit(node.api_url).port
    assert ws is not None and api is not None
    return Backend(name, "127.0.0.1", ws, api)


@dataclass
class Cluster:
    """Nodes in cluster mode sharing one fresh PostgreSQL database, behind HAProxy."""

    database: str
    nats: NatsServer
    directory: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    front_door: HAProxy | None = None

    def start_node(self, name: str) -> NodeProcess:
        node = NodeProcess(
            [
                "--db", self.database, "--cluster", self.nats.url, "--node-id", name,
                "--server-key-file", str(self.directory / "server.key"),
                "--unknown-gateways", "accept",
            ],
            self.directory / f"{name}.log",
        )  # fmt: skip
        self.nodes.append(node)
        return node.start(timeout=60)

    def open_front_door(self) -> HAProxy:
        proxy = self.front_door = HAProxy(
            [backend_of(f"node{n}", node) for n, node in enumerate(self.nodes)]
        )
        proxy.start()
        proxy.wait_states({f"node{n}": "UP" for n in range(len(self.nodes))}, timeout=30)
        return proxy

    def close(self) -> None:
        if self.front_door is not None:
            self.front_door.remove()
        for node in self.nodes:
            node.kill()
