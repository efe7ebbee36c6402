"""The gateways a node holds: session epochs, command subscriptions, takeovers.

When a gateway is admitted (after authentication, spec §1) the node that accepted
its socket becomes its owner:

1. the session gets an **epoch**, the pair (wall-clock nanoseconds, node id): later
   admissions get larger epochs as long as the nodes' clocks agree to better than
   a gateway's reconnect time (keep them synchronised, e.g. with NTP); the node id
   breaks ties;
2. the session is recorded in ``cluster_sessions`` (display only, see
   :mod:`ntxcp.service.pg_cluster`);
3. the node subscribes to ``ntxcp.gw.<token>.call`` and serves the commands that
   arrive there in the connection's own queue (one CALL at a time, spec §2.3.1);
4. it publishes a :class:`~.wire.Takeover`: a node that still holds a socket of the
   same gateway with an older epoch (a half-open TCP session, or a gateway that moved
   behind a load balancer) closes it with 1008 "replaced", as one node does when a
   gateway connects twice, and unsubscribes. Exactly one session remains.

When the socket closes, the subscription ends (unless a newer socket of the same
gateway arrived on this node meanwhile).

A takeover published while a node was cut off from the bus is not seen by it: its
old socket then lasts until the WebSocket keep-alive closes it (``--ping-interval``
plus ``--ping-timeout``), and commands go to whichever node answers first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ntxcp.service.cluster.routing import reply_for
from ntxcp.service.cluster.subjects import TAKEOVER, call_subject
from ntxcp.service.cluster.wire import CallReply, CallRequest, Takeover, decode
from ntxcp.service.pg_cluster import SESSION_UPSERT
from ntxcp.service.storage import now_text
from ntxcp.v10 import ACTIONS
from ntxcp.v10.codec import decode_payload

if TYPE_CHECKING:
    import asyncpg
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from ntxcp.endpoints import ControlCenter
    from ntxcp.service.cluster.bus import Bus
    from ntxcp.service.pg_storage import PostgresStorage

__all__ = ["Epoch", "Ownership"]

Epoch = tuple[int, str]
"""A session epoch: (wall-clock nanoseconds at admission, node id)."""

_log = logging.getLogger("ntxcp.service.cluster")
_REQUEST = msgspec.json.Decoder(CallRequest)
_TAKEOVER = msgspec.json.Decoder(Takeover)


class Ownership:
    """The sessions this node holds, and what follows from holding them.

    Args:
        node_id: this node's name.
        bus: the node's bus.
        control_center: the endpoint the gateways are connected to.
        storage: the shared database.
    """

    def __init__(
        self, node_id: str, bus: Bus, control_center: ControlCenter, storage: PostgresStorage
    ) -> None:
        self.node_id = node_id
        self.bus = bus
        self.control_center = control_center
        self.storage = storage
        self.epochs: dict[str, Epoch] = {}
        """The epoch of each gateway held here."""
        self.taken_over = 0
        """Sockets closed here because another node admitted the gateway later."""
        self.served = 0
        """Commands received from other nodes."""
        self._subscriptions: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sessions ----------------------------------------------------------------------

    def admitted(self, gateway_id: str) -> Epoch:
        """A gateway's socket was accepted here: record, subscribe, take over."""
        epoch = (time.time_ns(), self.node_id)
        self.epochs[gateway_id] = epoch
        since = now_text()

        async def record(conn: asyncpg.Connection) -> None:
            await conn.execute(SESSION_UPSERT, gateway_id, self.node_id, epoch[0], since)

        # Posted before the service marks the gateway connected, so that an old
        # owner's "disconnected" can never land after it (see pg_cluster).
        self.storage.post(record)
        self._spawn(self._subscribe(gateway_id))
        self.bus.publish(TAKEOVER, msgspec.json.encode(Takeover(self.node_id, gateway_id, epoch)))
        return epoch

    def released(self, gateway_id: str) -> None:
        """A gateway's socket closed here (a newer one of this node may have replaced it)."""
        if self.control_center.is_connected(gateway_id):
            return
        self.epochs.pop(gateway_id, None)
        self._unsubscribe(gateway_id)

    def _unsubscribe(self, gateway_id: str) -> None:
        subscription = self._subscriptions.pop(gateway_id, None)
        if subscription is not None:
            self._spawn(self.bus.unsubscribe(subscription))

    async def on_takeover(self, message: Msg) -> None:
        """Another node admitted a gateway: close the older socket held here."""
        takeover = decode(_TAKEOVER, message.data, "takeover")
        if takeover is None:
            return
        mine = self.epochs.get(takeover.gateway_id)
        if takeover.node == self.node_id or mine is None or mine >= tuple(takeover.epoch):
            return
        if not self.control_center.disconnect(takeover.gateway_id, "replaced"):  # as on one node
            return  # closing already
        _log.info(
            "[%s] taken over by node %s: older socket closed",
            takeover.gateway_id,
            takeover.node,
            extra={"gateway_id": takeover.gateway_id},
        )
        self.taken_over += 1
        # No more commands from now on; the epoch goes when the socket has closed.
        self._unsubscribe(takeover.gateway_id)

    # --- command subscriptions ---------------------------------------------------------

    async def _subscribe(self, gateway_id: str) -> None:
        if gateway_id in self._subscriptions or not self.control_center.is_connected(gateway_id):
            return
        subscription = await self.bus.subscribe(call_subject(gateway_id), self._server(gateway_id))
        if subscription is None:  # the bus is not up yet: resubscribe() does it later
            return
        if gateway_id in self._subscriptions or not self.control_center.is_connected(gateway_id):
            await self.bus.unsubscribe(subscription)  # released (or subscribed) meanwhile
            return
        self._subscriptions[gateway_id] = subscription

    async def resubscribe(self) -> None:
        """Subscribe for every gateway held here that has no subscription yet."""
        for gateway_id in list(self.epochs):
            await self._subscribe(gateway_id)

    @property
    def subscriptions(self) -> int:
        """Command subscriptions open now."""
        return len(self._subscriptions)

    def _server(self, gateway_id: str) -> Any:
        async def serve(message: Msg) -> None:
            # Each command in a task of its own: the connection's queue orders them.
            self._spawn(self._serve(gateway_id, message))

        return serve

    async def _serve(self, gateway_id: str, message: Msg) -> None:
        """Send a command from another node to the gateway; answer with its outcome."""
        self.served += 1
        try:
            call = _REQUEST.decode(message.data)
            spec = ACTIONS[call.action]
            request = decode_payload(spec.request, bytes(call.payload))
        except (msgspec.DecodeError, KeyError) as exc:  # the asking node validated it
            reply = CallReply("not-connected", description=f"unreadable command: {exc}")
        else:
            try:
                confirmation = await self.control_center.send_request(
                    gateway_id, request, timeout=call.timeout
                )
            except Exception as exc:
                reply = reply_for(exc)
            else:
                reply = reply_for(confirmation)
        try:
            await message.respond(msgspec.json.encode(reply))
        except Exception as exc:  # the bus went away: the asking node times out
            _log.debug("[%s] could not answer a command: %r", gateway_id, exc)

    async def close(self) -> None:
        """Stop the tasks of this node's sessions."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
