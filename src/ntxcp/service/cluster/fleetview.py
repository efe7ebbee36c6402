"""The fleet overview of a cluster node: every node's gateways in this node's index.

``GET /api/fleet`` answers from memory (:mod:`ntxcp.service.fleet`); a node's own
handlers keep the index current for the gateways it holds. :class:`FleetView` adds
the other nodes' gateways, from what the cluster already has:

* **events**: the kinds of :data:`FLEET_KINDS` (a connection opened, closed or
  unresponsive, a boot, a status, a gateway heard from) are relayed to the other
  nodes always, not only while they have stream subscribers (see :mod:`.relay`);
  ``seen`` at most once a second per gateway. Each one applied here costs one
  dictionary look-up; the node holding the gateway is the event's node;
* **presence**: the gateways held by a node that is gone (no heartbeat for
  :data:`~.presence.NODE_TTL` seconds) become disconnected, checked every second;
* **the database**: at start, after every (re)connection of this node to the bus,
  and whenever another node arrives (first heard, heard again after a silence, or
  with a new bus session: it may have had events nobody received), the index is
  re-read from PostgreSQL: the gateways with their ``connected`` flag, the node of
  their session row (``cluster_sessions``) and their current statuses. The read
  waits :data:`RESYNC_SETTLE` seconds first (a write the other node posted just
  before its heartbeat is committed by then), and the events received from the
  request on are applied again after it, in order, so the read never takes the
  index back in time. A database that cannot be reached is tried again every
  :data:`RESYNC_RETRY` seconds.

None of this runs on the ingest path: events are applied as they arrive from the
bus, reads happen in a task of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ntxcp.service import queries
from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.fleet import statuses_by_gateway
from ntxcp.service.packing import text_ms

if TYPE_CHECKING:
    from ntxcp.service.cluster.presence import Presence
    from ntxcp.service.cluster.wire import RemoteEvent
    from ntxcp.service.fleet import FleetIndex
    from ntxcp.service.pg_storage import PostgresStorage

__all__ = ["FLEET_KINDS", "RESYNC_RETRY", "RESYNC_SETTLE", "FleetView"]

FLEET_KINDS = frozenset({"connection", "boot", "status", "seen"})
"""The event kinds every node sends the others always: what the overview shows."""

RESYNC_SETTLE = 0.5
"""Seconds between asking for a re-read of the database and reading."""

RESYNC_RETRY = 2.0
"""Seconds between two attempts while the database cannot be reached."""

NODE_CHECK_INTERVAL = 1.0
"""Seconds between two looks for nodes that are gone."""

RESYNC_CHUNK = 2000
"""Gateways brought in line between two turns of the event loop."""

_REPLAY_MOST = 200_000  # events kept for after a read; older ones are in the database

_log = logging.getLogger("ntxcp.service.cluster")


class FleetView:
    """Keeps the other nodes' gateways in this node's fleet index.

    Args:
        node_id: this node's id (the index names it as the holder of local gateways).
        fleet: the node's fleet index.
        storage: the shared database.
        presence: which nodes are alive.
    """

    def __init__(
        self, node_id: str, fleet: FleetIndex, storage: PostgresStorage, presence: Presence
    ) -> None:
        fleet.node_id = node_id
        self.node_id = node_id
        self.fleet = fleet
        self.storage = storage
        self.presence = presence
        self.resyncs = 0
        """Re-reads of the database done."""
        self._wanted = False
        self._replay: deque[RemoteEvent] | None = None
        self._unknown: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- events of other nodes ----------------------------------------------------------

    def on_event(self, event: RemoteEvent) -> None:
        """Apply another node's event of a kind of :data:`FLEET_KINDS`."""
        if self._replay is not None:
            self._replay.append(event)
        try:
            self._apply(event)
        except (KeyError, TypeError, ValueError, AttributeError):
            _log.warning("ignoring an unreadable %s event from node %s", event.kind, event.node)

    def _apply(self, event: RemoteEvent) -> None:
        gateway_id, data, fleet = event.gateway_id, event.data, self.fleet
        if gateway_id is None:
            return
        kind = event.kind
        if kind == "seen":
            fleet.apply_seen(gateway_id, text_ms(data["time"]))
        elif kind == "status":
            fleet.apply_status(gateway_id, data)
        elif kind == "connection":
            fleet.apply_connection(event.node, gateway_id, data)
            self._learn(gateway_id)
        elif kind == "boot":
            fleet.apply_boot(gateway_id, data["bootInfo"])
            self._learn(gateway_id)

    def _learn(self, gateway_id: str) -> None:
        """A gateway another node saw first: read it into the mirror (in the task)."""
        if gateway_id not in self.storage.gateways:
            self._unknown.add(gateway_id)
            self._wake.set()

    # --- nodes that are gone ------------------------------------------------------------

    def check_nodes(self) -> None:
        """Close the connections of the nodes that are gone (see :mod:`.presence`)."""
        for node in self.fleet.holders():
            if not self.presence.alive(node):
                closed = self.fleet.node_gone(node)
                _log.info("node %s is gone: %d of its gateways shown disconnected", node, closed)

    # --- re-reading the database --------------------------------------------------------

    def resync_soon(self) -> None:
        """Re-read the database shortly (several requests make one read)."""
        self._wanted = True
        if self._replay is None:
            self._replay = deque(maxlen=_REPLAY_MOST)
        self._wake.set()

    async def resync(self) -> None:
        """Re-read the other nodes' gateways from the database now.

        Raises:
            DatabaseUnavailableError: the database cannot be reached.
        """
        if self._replay is None:
            self._replay = deque(maxlen=_REPLAY_MOST)
        storage = self.storage
        await storage.refresh_gateways()
        gateways = await storage.read(queries.gateways)
        statuses = statuses_by_gateway(await storage.read(queries.current_statuses))
        sessions = await storage.session_nodes(None)
        holder = self._holder(sessions)
        for start in range(0, len(gateways), RESYNC_CHUNK):
            self.fleet.resync(gateways[start : start + RESYNC_CHUNK], statuses, holder)
            await asyncio.sleep(0)  # gateways' frames are served between two chunks
        replay = self._replay
        for event in replay:  # newer than the read: applied again, in order
            self._apply_quietly(event)
        self._replay = replay if self._wanted else None
        self.resyncs += 1
        self.check_nodes()

    def _apply_quietly(self, event: RemoteEvent) -> None:
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            self._apply(event)  # an unreadable one was warned about when it arrived

    def _holder(self, sessions: Mapping[str, str]) -> Callable[[str, bool], str | None]:
        alive = self.presence.alive

        def holder(gateway_id: str, connected: bool) -> str | None:
            node = sessions.get(gateway_id) if connected else None
            return node if node is not None and alive(node) else None

        return holder

    # --- the tasks ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the tasks: database reads when asked, and the look for nodes gone."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_when_asked(), name="ntxcp-cluster-fleet"),
            loop.create_task(self._watch_nodes(), name="ntxcp-cluster-fleet-nodes"),
        ]

    async def _read_when_asked(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._learn_unknown()
                if self._wanted:
                    await asyncio.sleep(RESYNC_SETTLE)
                    self._wanted = False
                    await self.resync()
            except DatabaseUnavailableError as exc:
                _log.warning("cannot re-read the fleet from the database: %s", exc)
                self._wanted = True
                await asyncio.sleep(RESYNC_RETRY)
                self._wake.set()
            except Exception:  # the next request tries again
                _log.exception("re-reading the fleet from the database failed")

    async def _learn_unknown(self) -> None:
        ids = [i for i in self._unknown if i not in self.storage.gateways]
        self._unknown.clear()
        if ids:
            await self.storage.refresh_gateways(ids, keep_missing=True)

    async def _watch_nodes(self) -> None:
        while True:
            await asyncio.sleep(NODE_CHECK_INTERVAL)
            self.check_nodes()

    async def close(self) -> None:
        """Stop the tasks."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
