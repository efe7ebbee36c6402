"""Live events of the whole fleet on every node: each node relays its events to the others.

The dashboard's stream (``GET /api/events``) of any node shows every gateway, wherever
its socket is. A node publishes its events on ``ntxcp.events.<kind>`` and delivers the
other nodes' events to its own stream subscribers (never its own a second time: the
bus does not echo a node's messages back, and each message names its node).

Publishing costs CPU on the ingest path, so a node sends its events only while some
other node has stream subscribers: a node with subscribers says so on
``ntxcp.listeners`` at once when its first subscriber arrives and then every
:data:`ANNOUNCE_INTERVAL` seconds; the others send for :data:`LISTENING_TTL` seconds
after each announcement. The few kinds every node's fleet overview follows
(:data:`~.fleetview.FLEET_KINDS`: connections, boots, statuses, and ``seen`` at most
once a second per gateway) are sent always, and handed to :attr:`EventRelay.fleet`
on arrival.

``frame`` events (one per frame in and out, the most numerous) are sent only for the
gateways another node's streams watch: each announcement carries the node's
:class:`~ntxcp.service.events.FrameInterest` (the gateways of its streams that take
frames, or every gateway when such a stream has no gateway filter). The others keep
each node's latest interest for :data:`LISTENING_TTL` seconds, replaced by its next
announcement, and send a frame when a stream of their own or some node's interest
wants it; a frame nobody wants costs a set lookup and is never built. A node announces
at once when its interest changes (a stream on a gateway's message log opens or
closes while others stay open); when its last stream closes it stops announcing and
the others stop within :data:`LISTENING_TTL` seconds. An announcement without the
interest (of a node that predates it) wants no frames.

Events are at-most-once (NATS core): a node that was cut off
from the bus ends its streams with ``resync`` when the bus returns, and the dashboard
reloads what it shows from the database.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ntxcp.service.cluster.fleetview import FLEET_KINDS
from ntxcp.service.cluster.subjects import LISTENERS, event_subject
from ntxcp.service.cluster.wire import Listening, RemoteEvent, decode
from ntxcp.service.events import FrameInterest

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from ntxcp.service.cluster.bus import Bus
    from ntxcp.service.events import EventHub

__all__ = ["ANNOUNCE_INTERVAL", "LISTENING_TTL", "EventRelay"]

ANNOUNCE_INTERVAL = 1.0
"""Seconds between two announcements of a node with stream subscribers."""

LISTENING_TTL = 3.5
"""Seconds a node sends its events after another node's announcement."""

_CHECK_INTERVAL = 0.1  # s between two looks at the number of local subscribers
_LOCAL_ONLY = frozenset({"hello", "resync"})  # about one stream, never relayed
_EVENT = msgspec.json.Decoder(RemoteEvent)
_LISTENING = msgspec.json.Decoder(Listening)


class EventRelay:
    """Sends this node's events to the bus, and the other nodes' to local streams.

    Args:
        node_id: this node's name.
        bus: the node's bus.
        hub: the node's event hub (its publishers and stream subscribers).
    """

    def __init__(self, node_id: str, bus: Bus, hub: EventHub) -> None:
        self.node_id = node_id
        self.bus = bus
        self.hub = hub
        self.relayed = 0
        """Events of other nodes delivered to local streams."""
        self._listeners_until = 0.0
        self._frame_interests: dict[str, tuple[float, FrameInterest]] = {}
        """Each other node's latest frame interest, and until when it holds."""
        self._frames = FrameInterest()
        """What :attr:`_frame_interests` want together, until :attr:`_frames_until`."""
        self._frames_until = math.inf
        self._announcer: asyncio.Task[None] | None = None
        self.fleet: Callable[[RemoteEvent], object] | None = None
        """Given the other nodes' events of :data:`~.fleetview.FLEET_KINDS`."""
        hub.forward = self._forward
        hub.forwarding = self.others_listening
        hub.forwarding_frames = self.others_want_frames
        hub.always_forwarded = FLEET_KINDS

    def others_listening(self) -> bool:
        """Whether another node has stream subscribers now (and the bus is up)."""
        return self.bus.connected and time.monotonic() < self._listeners_until

    def others_want_frames(self, gateway_id: str) -> bool:
        """Whether another node's streams want this gateway's frames now (bus up).

        Asked for every frame in and out: while no node wants frames it returns at
        once, otherwise after one clock read and one set lookup.
        """
        if not self._frames:
            return False
        return self._current_frames().wants(gateway_id) and self.bus.connected

    def frames_sent(self) -> FrameInterest:
        """The gateways whose frames this node sends now (other nodes' streams want them)."""
        frames = self._current_frames()
        return frames if self.bus.connected else FrameInterest()

    def _current_frames(self) -> FrameInterest:
        """What the other nodes' interests want together, without those past their time."""
        now = time.monotonic()
        if now >= self._frames_until:
            self._merge_frame_interests(now)
        return self._frames

    def _merge_frame_interests(self, now: float) -> None:
        """Forget the interests past their time; what the others want together."""
        interests = self._frame_interests
        for node in [node for node, (until, _) in interests.items() if until <= now]:
            del interests[node]
        self._frames = FrameInterest.union(interest for _, interest in interests.values())
        self._frames_until = min((until for until, _ in interests.values()), default=math.inf)

    def _forward(self, kind: str, gateway_id: str | None, data: dict[str, Any]) -> None:
        if kind in _LOCAL_ONLY:
            return
        event = RemoteEvent(self.node_id, kind, gateway_id, data)
        self.bus.publish(event_subject(kind), msgspec.json.encode(event))

    async def on_event(self, message: Msg) -> None:
        """An event of another node: deliver it to the local streams."""
        event = decode(_EVENT, message.data, "event")
        if event is None or event.node == self.node_id or event.kind in _LOCAL_ONLY:
            return
        if self.fleet is not None and event.kind in FLEET_KINDS:
            self.fleet(event)
        self.relayed += 1
        self.hub.publish(event.kind, event.gateway_id, event.data, relay=False)

    async def on_listening(self, message: Msg) -> None:
        """Another node has stream subscribers: send it events (and frames) for a while."""
        listening = decode(_LISTENING, message.data, "listeners")
        if listening is None or listening.node == self.node_id:
            return
        now = time.monotonic()
        self._listeners_until = now + LISTENING_TTL
        interest = FrameInterest(listening.all_frames, frozenset(listening.frame_gateways))
        if interest:
            self._frame_interests[listening.node] = (now + LISTENING_TTL, interest)
        else:
            self._frame_interests.pop(listening.node, None)
        self._merge_frame_interests(now)

    def start(self) -> None:
        """Start announcing this node's stream subscribers."""
        self._announcer = asyncio.get_running_loop().create_task(
            self._announce(), name="ntxcp-cluster-announce"
        )

    async def _announce(self) -> None:
        announced = FrameInterest()
        message = self._listening(announced)
        last = 0.0
        had = False
        while True:
            now = time.monotonic()
            has = self.hub.subscribers > 0
            interest = self.hub.frame_interest
            changed = interest != announced
            if has and (not had or changed or now - last >= ANNOUNCE_INTERVAL):
                if changed:
                    announced, message = interest, self._listening(interest)
                self.bus.publish(LISTENERS, message)
                last = now
            had = has and self.bus.connected
            await asyncio.sleep(_CHECK_INTERVAL)

    def _listening(self, interest: FrameInterest) -> bytes:
        """The announcement of this node's stream subscribers wanting these frames."""
        gateways = tuple(sorted(interest.gateways))
        return msgspec.json.encode(Listening(self.node_id, gateways, interest.every))

    async def close(self) -> None:
        """Stop announcing."""
        if self._announcer is not None:
            self._announcer.cancel()
            await asyncio.gather(self._announcer, return_exceptions=True)
