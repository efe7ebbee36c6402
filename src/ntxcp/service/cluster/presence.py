"""Which nodes are alive: a heartbeat of every node on ``ntxcp.nodes``.

Each node publishes its id every :data:`HEARTBEAT_INTERVAL` seconds. A node not heard
from for :data:`NODE_TTL` seconds is taken for gone (killed, or cut off from the bus).
This is for display only: the gateway list shows a gateway whose recorded node is
gone as disconnected, while the database row still names that node (a killed node
writes nothing more). Routing never depends on it: a gone node's subscriptions went
with its NATS connection.

While this node's own bus is down, or has been up for less than :data:`NODE_TTL`
(it is still learning who is there), every node counts as alive: the recorded state
is shown as it is.

Each heartbeat also names the sender's current connection to the bus (a new random
``session`` at every connection). A node heard for the first time, after a silence of
:data:`NODE_TTL` or with a new session may have had events this node never received:
:attr:`Presence.on_arrival` is told (the fleet overview then re-reads the database).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from ntxcp.service.cluster.subjects import NODES
from ntxcp.service.cluster.wire import Heartbeat, decode

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from ntxcp.service.cluster.bus import Bus

__all__ = ["HEARTBEAT_INTERVAL", "NODE_TTL", "Presence"]

HEARTBEAT_INTERVAL = 1.0
"""Seconds between two heartbeats of a node."""

NODE_TTL = 5.0
"""Seconds without a heartbeat after which a node counts as gone."""

_HEARTBEAT = msgspec.json.Decoder(Heartbeat)


class Presence:
    """The nodes this node hears from.

    Args:
        node_id: this node's name.
        bus: the node's bus.
    """

    def __init__(self, node_id: str, bus: Bus) -> None:
        self.node_id = node_id
        self.bus = bus
        self._seen: dict[str, float] = {}
        self._sessions: dict[str, str] = {}
        self._up_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat = msgspec.json.encode(Heartbeat(node_id))
        self.on_arrival: Callable[[str], object] | None = None
        """Told the id of a node that arrives (see the module's description)."""

    def bus_up(self) -> None:
        """The bus (re)connected: say so at once, and learn who is there from now on."""
        self._up_since = time.monotonic()
        self._heartbeat = msgspec.json.encode(Heartbeat(self.node_id, secrets.token_hex(8)))
        self.bus.publish(NODES, self._heartbeat)

    async def on_heartbeat(self, message: Msg) -> None:
        """Another node's heartbeat."""
        heartbeat = decode(_HEARTBEAT, message.data, "heartbeat")
        if heartbeat is None or heartbeat.node == self.node_id:
            return
        node, now = heartbeat.node, time.monotonic()
        arrives = (
            now - self._seen.get(node, -NODE_TTL) >= NODE_TTL
            or self._sessions.get(node) != heartbeat.session
        )
        self._seen[node] = now
        self._sessions[node] = heartbeat.session
        if arrives and self.on_arrival is not None:
            self.on_arrival(node)

    def _learning(self, now: float) -> bool:
        up = self._up_since
        return not self.bus.connected or up is None or now - up < NODE_TTL

    def alive(self, node: str) -> bool:
        """Whether ``node`` is there (see the module's description)."""
        now = time.monotonic()
        if node == self.node_id or self._learning(now):
            return True
        return now - self._seen.get(node, -NODE_TTL) < NODE_TTL

    def nodes(self) -> list[str]:
        """The nodes heard from within :data:`NODE_TTL`, this one included."""
        now = time.monotonic()
        others = [node for node, seen in self._seen.items() if now - seen < NODE_TTL]
        return sorted({self.node_id, *others})

    def start(self) -> None:
        """Start the heartbeat."""
        self._task = asyncio.get_running_loop().create_task(
            self._beat(), name="ntxcp-cluster-heartbeat"
        )

    async def _beat(self) -> None:
        while True:
            self.bus.publish(NODES, self._heartbeat)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def close(self) -> None:
        """Stop the heartbeat."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
