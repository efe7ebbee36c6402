"""One node of a cluster: its bus, the gateways it holds, routed commands, relayed events.

:class:`ClusterNode` is what ``--cluster nats://...`` adds to a :class:`~ntxcp.service.
service.Service`. The service calls it when a gateway is admitted or leaves, when the
API changes the registry of gateways, and for commands to gateways it does not hold;
the node keeps its state on the bus up to date by itself after every reconnection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import msgspec

from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.cluster.bus import Bus
from ntxcp.service.cluster.fleetview import FleetView
from ntxcp.service.cluster.ownership import Ownership
from ntxcp.service.cluster.presence import Presence
from ntxcp.service.cluster.relay import EventRelay
from ntxcp.service.cluster.routing import RemoteCaller
from ntxcp.service.cluster.subjects import EVENTS, LISTENERS, NODES, REGISTRY, TAKEOVER
from ntxcp.service.cluster.wire import RegistryChange, decode
from ntxcp.service.metrics import Gauge, Info

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from ntxcp.endpoints import ControlCenter
    from ntxcp.service.events import EventHub, FrameInterest
    from ntxcp.service.fleet import FleetIndex
    from ntxcp.service.metrics import ServiceMetrics
    from ntxcp.service.pg_storage import PostgresStorage

__all__ = ["ClusterNode", "ClusterUnavailableError", "default_node_id"]

_log = logging.getLogger("ntxcp.service.cluster")
_REGISTRY = msgspec.json.Decoder(RegistryChange)


class ClusterUnavailableError(Exception):
    """Cluster mode cannot run here (the NATS client is not installed)."""


def default_node_id() -> str:
    """A node id when none is given: the host name and the process id."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"{host[:40] or 'node'}-{os.getpid()}"


class ClusterNode:
    """This process as one node of a cluster.

    Args:
        url: the ``nats://`` URL of the bus.
        node_id: this node's name (default :func:`default_node_id`).
        control_center: the endpoint the gateways are connected to.
        storage: the shared PostgreSQL database (its ``node_id`` is set here, before
            it starts).
        events: the node's event hub.
        fleet: the node's fleet index (the other nodes' gateways are added to it).
        metrics: where the node's metrics are added.
        call_timeout: the default seconds to wait for a gateway's answer.
    """

    def __init__(
        self,
        url: str,
        node_id: str | None,
        *,
        control_center: ControlCenter,
        storage: PostgresStorage,
        events: EventHub,
        fleet: FleetIndex,
        metrics: ServiceMetrics,
        call_timeout: float,
    ) -> None:
        self.node_id = node_id or default_node_id()
        self.control_center = control_center
        self.storage = storage
        storage.node_id = self.node_id
        self.bus = Bus(url, self.node_id, on_connected=self._bus_connected)
        self.ownership = Ownership(self.node_id, self.bus, control_center, storage)
        self.relay = EventRelay(self.node_id, self.bus, events)
        self.remote = RemoteCaller(self.bus, call_timeout)
        self.presence = Presence(self.node_id, self.bus)
        self.fleet_view = FleetView(self.node_id, fleet, storage, self.presence)
        self.relay.fleet = self.fleet_view.on_event
        self.presence.on_arrival = lambda node: self.fleet_view.resync_soon()
        self.events = events
        self._subscribed = False
        self._connections = 0
        self._add_metrics(metrics)

    def _add_metrics(self, metrics: ServiceMetrics) -> None:
        for metric in (
            Info(
                "ntxcp_cluster_node_info", "This node's id in the cluster.", {"node": self.node_id}
            ),
            Gauge(
                "ntxcp_cluster_bus_connected",
                "1 while this node is connected to the cluster bus (NATS).",
                lambda: float(self.bus.connected),
            ),
            Gauge(
                "ntxcp_cluster_database_reachable",
                "1 while the shared database answers.",
                lambda: float(self.storage.unreachable is None),
            ),
            Gauge(
                "ntxcp_cluster_gateways_owned",
                "Gateways whose socket this node holds.",
                lambda: float(len(self.ownership.epochs)),
            ),
            Gauge(
                "ntxcp_cluster_takeovers",
                "Sockets closed here because the gateway was admitted by another node later.",
                lambda: float(self.ownership.taken_over),
            ),
            Gauge(
                "ntxcp_cluster_bus_reconnects",
                "Reconnections to the cluster bus since the start.",
                lambda: float(self.bus.reconnects),
            ),
            Gauge(
                "ntxcp_cluster_commands_sent",
                "Commands of this node's API sent to other nodes (gateways held there).",
                lambda: float(self.remote.sent),
            ),
            Gauge(
                "ntxcp_cluster_commands_served",
                "Commands from other nodes sent to gateways held here.",
                lambda: float(self.ownership.served),
            ),
        ):
            metrics.registry.add(metric)

    async def start(self) -> None:
        """Start connecting to the bus (in the background: the node serves without it).

        Raises:
            ClusterUnavailableError: the NATS client is not installed.
        """
        try:
            import nats  # noqa: F401
        except ModuleNotFoundError:
            raise ClusterUnavailableError(
                "--cluster needs the NATS client: pip install 'ntxcp[cluster]'"
            ) from None
        await self.bus.start()
        self.relay.start()
        self.presence.start()
        self.fleet_view.start()

    async def _bus_connected(self) -> None:
        """After every (re)connection: subscribe, and re-read what may have been missed."""
        self._connections += 1
        self.presence.bus_up()
        if not self._subscribed:  # nats-py renews these after a reconnection itself
            for subject, handler in (
                (TAKEOVER, self.ownership.on_takeover),
                (EVENTS, self.relay.on_event),
                (LISTENERS, self.relay.on_listening),
                (REGISTRY, self._registry_changed),
                (NODES, self.presence.on_heartbeat),
            ):
                await self.bus.subscribe(subject, handler)
            self._subscribed = True
        await self.ownership.resubscribe()
        # Other nodes' events were missed before this connection (even the first: the
        # overview was filled at start, before the bus was up).
        self.fleet_view.resync_soon()
        if self._connections > 1:  # events and registry changes may have been missed
            self.events.resync()
            await self.storage.refresh_gateways()

    # --- the service's hooks ------------------------------------------------------------

    def gateway_admitted(self, gateway_id: str) -> None:
        """A gateway's socket was accepted by this node."""
        self.ownership.admitted(gateway_id)

    def gateway_left(self, gateway_id: str) -> None:
        """A gateway's socket on this node closed."""
        self.ownership.released(gateway_id)

    def gateways_changed(self, gateway_ids: list[str], disconnect: str | None = None) -> None:
        """The API registered, changed or removed gateways: tell the other nodes.

        Args:
            gateway_ids: the gateways.
            disconnect: the other nodes close these gateways' sockets with this reason.
        """
        change = RegistryChange(self.node_id, gateway_ids, disconnect)
        self.bus.publish(REGISTRY, msgspec.json.encode(change))

    async def _registry_changed(self, message: Msg) -> None:
        change = decode(_REGISTRY, message.data, "registry")
        if change is None or change.node == self.node_id:
            return
        try:  # first: a gateway that reconnects at once meets the new secret
            await self.storage.refresh_gateways(change.gateway_ids)
        except DatabaseUnavailableError as exc:  # re-read at the next reconnection
            _log.warning("cannot re-read changed gateways: %s", exc)
        if change.disconnect is not None:
            for gateway_id in change.gateway_ids:
                self.control_center.disconnect(gateway_id, change.disconnect)

    async def knows(self, gateway_id: str) -> bool:
        """Whether the gateway is registered or was seen by any node (re-read if needed)."""
        if gateway_id not in self.storage.gateways:
            await self.storage.refresh_gateways([gateway_id])
        return gateway_id in self.storage.gateways

    async def owners(self, gateway_ids: list[str]) -> dict[str, str]:
        """The live node holding each of these gateways (display only).

        A gateway recorded on a node that is gone (see :mod:`.presence`) has none.
        """
        recorded = await self.storage.session_nodes(gateway_ids)
        owners = {g: node for g, node in recorded.items() if self.presence.alive(node)}
        for gateway_id in gateway_ids:  # this node's own sockets are known for sure
            if self.control_center.is_connected(gateway_id):
                owners[gateway_id] = self.node_id
        return owners

    def health(self) -> dict[str, Any]:
        """The node's cluster state for ``/healthz``."""
        return {
            "node": self.node_id,
            "nodes": self.presence.nodes(),
            "bus": {
                "connected": self.bus.connected,
                "error": self.bus.error,
                "reconnects": self.bus.reconnects,
            },
            "gatewaysOwned": len(self.ownership.epochs),
            "commandSubscriptions": self.ownership.subscriptions,
            "takeovers": self.ownership.taken_over,
            "otherNodesListening": self.relay.others_listening(),
            "framesSent": _frames_sent(self.relay.frames_sent()),
            "fleetResyncs": self.fleet_view.resyncs,
        }

    async def close(self) -> None:
        """Leave the bus."""
        await asyncio.gather(
            self.relay.close(),
            self.ownership.close(),
            self.presence.close(),
            self.fleet_view.close(),
        )
        await self.bus.close()


def _frames_sent(interest: FrameInterest) -> dict[str, Any]:
    """``framesSent`` of ``/healthz``: whose frames other nodes' streams want."""
    return {"allGateways": interest.every, "gateways": sorted(interest.gateways)}
