"""Live events of the control center service: an in-process publish/subscribe hub.

The service publishes what happens (a gateway connects, boots, reports a status or
meter values, a frame passes, a gateway is registered ...) to one :class:`EventHub`;
``GET /api/events`` (see :mod:`.dashboard`) streams the events a client subscribed to
as server-sent events. Publishing costs next to nothing while nobody listens: every
publisher checks :attr:`EventHub.active` first, and the payload of an event is built
(by a function given to :meth:`EventHub.publish`) only when a subscriber wants it.
``frame`` events, two per exchange, are built only for the gateways a stream watches
(:class:`FrameInterest`, one set lookup per frame).

Event kinds (the ``event:`` field of the stream; ``data:`` is a JSON object that
always carries ``gatewayId`` when the event is about a gateway):

================  ==============================================================
kind              when, and what ``data`` holds besides ``gatewayId``
================  ==============================================================
``hello``         first event of every stream: ``time``, ``version``
``gateway``       registered or removed through the API: ``change``, ``gateway``;
                  a bulk import is one event without ``gatewayId``: ``change``
                  ``imported``, ``count``, ``gatewayIds``
``connection``    a gateway connected or left: ``connected``, ``at``,
                  ``remoteAddress``, ``tls``
``boot``          a BootNotification was stored: ``registrationStatus``,
                  ``bootInfo`` (the request, wire JSON), ``lastBootAt``
``status``        a StatusNotification was stored: its wire payload, ``receivedAt``
``meter``         MeterValues were stored: its wire payload, ``receivedAt``
``firmware``      a FirmwareStatusNotification was stored: ``status``, ``receivedAt``
``diagnostics``   a DiagnosticsStatusNotification was stored: ``status``,
                  ``receivedAt``
``data-transfer`` a DataTransfer from a gateway was stored: its wire payload,
                  ``receivedAt``
``frame``         a frame passed: ``direction``, ``time``, ``messageType``,
                  ``action``, ``uniqueId``, ``raw`` (``null`` past 16 KiB)
``seen``          a frame came in (at most one per gateway per second): ``time``
``resync``        the subscriber fell behind (or, in a cluster, this node missed
                  other nodes' events): its stream ends after this event;
                  reconnect and reload
================  ==============================================================

A subscriber that does not keep up never slows the service down: its queue is
bounded (``queue_size`` events), and when it is full the subscriber is dropped: its
queued events are replaced by one ``resync`` event and the end of the stream (an
``EventSource`` reconnects by itself and starts again from a ``hello``). The stream
handler gives each write ``write_timeout`` seconds; a client that reads nothing at all
is disconnected then. At most ``max_subscribers`` streams are open at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "DEFAULT_MAX_SUBSCRIBERS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_WRITE_TIMEOUT",
    "KINDS",
    "MAX_RAW_FRAME",
    "Event",
    "EventHub",
    "FrameInterest",
    "Subscription",
    "TooManySubscribersError",
]

KINDS = frozenset(
    {
        "hello",
        "gateway",
        "connection",
        "boot",
        "status",
        "meter",
        "firmware",
        "diagnostics",
        "data-transfer",
        "frame",
        "seen",
        "resync",
    }
)
"""Every event kind a stream can carry."""

MAX_RAW_FRAME = 16 * 1024
"""Frames longer than this many characters are sent in ``frame`` events without ``raw``."""

_SEEN_INTERVAL = 1.0  # s between two "seen" events of one gateway

DEFAULT_QUEUE_SIZE = 500
"""Events a subscriber may have waiting before it is dropped."""

DEFAULT_MAX_SUBSCRIBERS = 64
"""Event streams open at once; more are refused."""

DEFAULT_WRITE_TIMEOUT = 10.0
"""Seconds one write to an event stream may take before the client is disconnected."""

Payload = dict[str, Any] | Callable[[], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Event:
    """One published event.

    Attributes:
        id: its number, growing by one per event of the hub.
        kind: one of :data:`KINDS`.
        gateway_id: the gateway it is about (``None``: the service).
        data: the JSON-ready payload.
        message: the encoded server-sent event (``id``, ``event`` and ``data`` lines).
    """

    id: int
    kind: str
    gateway_id: str | None
    data: dict[str, Any]
    message: bytes


def _encode(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    # msgspec writes JSON on one line (newlines inside strings are escaped), as the
    # "data:" field of a server-sent event needs.
    body = msgspec.json.encode(data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, kind.encode("ascii"), body)


@dataclass(frozen=True, slots=True)
class FrameInterest:
    """The gateways whose ``frame`` events some streams want.

    Frames are the most numerous events (two per exchange), so they are built only for
    the gateways someone watches: looking a gateway up here is the whole cost of a
    frame nobody wants.

    Attributes:
        every: the frames of every gateway are wanted (a stream of frames without a
            gateway filter).
        gateways: the gateways whose frames are wanted (besides, when ``every``).
    """

    every: bool = False
    gateways: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.every or bool(self.gateways)

    def wants(self, gateway_id: str) -> bool:
        """Whether the frames of this gateway are wanted."""
        return self.every or gateway_id in self.gateways

    @classmethod
    def union(cls, interests: Iterable[FrameInterest]) -> FrameInterest:
        """The frames any of these want."""
        every = False
        gateways: set[str] = set()
        for interest in interests:
            every = every or interest.every
            gateways |= interest.gateways
        return cls(every, frozenset(gateways))


_NO_FRAMES = FrameInterest()


class TooManySubscribersError(Exception):
    """Raised by :meth:`EventHub.subscribe` when ``max_subscribers`` streams are open."""


class Subscription:
    """The events one client asked for, queued until it reads them.

    Created by :meth:`EventHub.subscribe`; read with :meth:`get`.

    Args:
        gateway_id: only events about this gateway (``None``: every gateway).
        kinds: only these kinds (``None``: every kind).
        maxsize: events that may wait before the subscriber is dropped.
    """

    def __init__(
        self,
        gateway_id: str | None,
        kinds: frozenset[str] | None,
        maxsize: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.gateway_id = gateway_id
        self.kinds = kinds
        self.dropped = 0
        """Events dropped because the subscriber fell behind."""
        self.overflowed = False
        """Whether the subscriber fell behind and was dropped (its stream ends)."""
        self.on_drop: Callable[[], object] | None = None
        """Called once when the subscriber is dropped (e.g. to end a stalled stream now)."""
        # Two more places than events: the final ``resync`` and end of stream.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 2)
        self._maxsize = maxsize

    def wants(self, kind: str, gateway_id: str | None) -> bool:
        """Whether an event of this kind about this gateway belongs to the subscription."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.gateway_id is None or gateway_id is None or gateway_id == self.gateway_id

    @property
    def frame_interest(self) -> FrameInterest:
        """The ``frame`` events this subscription wants (see :meth:`wants`)."""
        if self.kinds is not None and "frame" not in self.kinds:
            return _NO_FRAMES
        if self.gateway_id is None:
            return FrameInterest(every=True)
        return FrameInterest(gateways=frozenset({self.gateway_id}))

    def put(self, event: Event) -> bool:
        """Queue an event; a full queue is replaced by ``resync`` and the stream's end.

        Returns:
            ``False`` when the subscriber fell behind and is dropped (see
            :attr:`overflowed`): it gets nothing more.
        """
        if self.overflowed:
            return False
        queue = self._queue
        if queue.qsize() < self._maxsize:
            queue.put_nowait(event)
            return True
        self.dropped += 1
        self.end_with_resync(event.id)
        return False

    def end_with_resync(self, event_id: int) -> None:
        """Replace what is queued by ``resync`` and the end of the stream."""
        if self.overflowed:
            return
        self.overflowed = True
        queue = self._queue
        self.dropped += queue.qsize()
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(Event(event_id, "resync", None, {}, _encode(event_id, "resync", {})))
        queue.put_nowait(None)

    def close(self) -> None:
        """Wake the reader: :meth:`get` returns ``None`` once the queue is read."""
        if self.overflowed:  # the end is queued already
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self) -> Event | None:
        """The next event, waiting for one; ``None`` once the hub is closed."""
        return await self._queue.get()

    def take_ready(self, limit: int) -> tuple[list[Event], bool]:
        """The events already queued (at most ``limit``), without waiting.

        Returns:
            The events, and whether the end of the stream came after them.
        """
        events: list[Event] = []
        queue = self._queue
        while len(events) < limit and not queue.empty():
            event = queue.get_nowait()
            if event is None:
                return events, True
            events.append(event)
        return events, False


class EventHub:
    """Delivers published events to the subscriptions that want them.

    Args:
        max_subscribers: streams open at once (more raise
            :class:`TooManySubscribersError`).
        queue_size: events one subscriber may have waiting before it is dropped.
        write_timeout: seconds one write to a stream may take (used by the stream
            handler) before the client is disconnected.
    """

    def __init__(
        self,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ) -> None:
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self.write_timeout = write_timeout
        self.dropped_subscribers = 0
        """Subscribers dropped so far because they fell behind."""
        self._subscriptions: set[Subscription] = set()
        self._last_id = 0
        self._seen: dict[str, float] = {}
        self._closed = False
        self.forward: Callable[[str, str | None, dict[str, Any]], object] | None = None
        """Also given every event published here (a cluster node relays them)."""
        self.forwarding: Callable[[], bool] = lambda: False
        """Whether :attr:`forward` wants events now (another node listens)."""
        self.always_forwarded: frozenset[str] = frozenset()
        """Kinds :attr:`forward` is given even while nobody listens (a cluster node's
        fleet overview follows them, see :mod:`ntxcp.service.cluster.fleetview`)."""
        self.forwarding_frames: Callable[[str], bool] = lambda gateway_id: False
        """Whether :attr:`forward` wants the ``frame`` events of a gateway now (another
        node's streams watch it); other kinds follow :attr:`forwarding`."""
        self._frame_interest = _NO_FRAMES

    @property
    def active(self) -> bool:
        """Whether anybody listens (publishers may skip their work when not)."""
        return bool(self._subscriptions) or self.forwarding()

    def active_for(self, kind: str) -> bool:
        """Whether anybody listens to events of this kind (see :attr:`active`)."""
        return bool(self._subscriptions) or kind in self.always_forwarded or self.forwarding()

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def frame_interest(self) -> FrameInterest:
        """The ``frame`` events the subscriptions of this hub want."""
        return self._frame_interest

    def wants(self, kind: str, gateway_id: str | None) -> bool:
        """Whether some subscription wants an event of this kind about this gateway."""
        return any(sub.wants(kind, gateway_id) for sub in self._subscriptions)

    def wants_frame(self, gateway_id: str) -> bool:
        """Whether a subscription here, or :attr:`forward`, wants this gateway's frames.

        Two set lookups: the frame path asks it for every frame in and out.
        """
        return self._frame_interest.wants(gateway_id) or self.forwarding_frames(gateway_id)

    def _subscriptions_changed(self) -> None:
        self._frame_interest = FrameInterest.union(
            sub.frame_interest for sub in self._subscriptions
        )

    def _forwards(self, kind: str, gateway_id: str | None) -> bool:
        """Whether :attr:`forward` is given an event of this kind about this gateway."""
        if kind in self.always_forwarded:
            return True
        if kind == "frame":
            return gateway_id is not None and self.forwarding_frames(gateway_id)
        return self.forwarding()

    def publish(
        self, kind: str, gateway_id: str | None, data: Payload, *, relay: bool = True
    ) -> Event | None:
        """Deliver an event to every subscription that wants it.

        Args:
            kind: one of :data:`KINDS`.
            gateway_id: the gateway the event is about (``None``: the service).
            data: the payload, or a function returning it (called only when some
                subscription wants the event). ``gatewayId`` is added.
            relay: also hand it to :attr:`forward` (``False`` for events that came
                from another node).

        Returns:
            The event, or ``None`` when nobody wanted it.
        """
        forward = self.forward if relay and self._forwards(kind, gateway_id) else None
        if not self._subscriptions and forward is None:
            return None
        targets = [sub for sub in self._subscriptions if sub.wants(kind, gateway_id)]
        if not targets and forward is None:
            return None
        payload = data() if callable(data) else dict(data)
        if gateway_id is not None:
            payload["gatewayId"] = gateway_id
        self._last_id += 1
        event = Event(
            self._last_id, kind, gateway_id, payload, _encode(self._last_id, kind, payload)
        )
        for sub in targets:
            if not sub.put(event):
                self._drop(sub)
        if forward is not None:
            forward(kind, gateway_id, payload)
        return event

    def _drop(self, subscription: Subscription) -> None:
        """Stop delivering to a subscriber that fell behind (its stream ends)."""
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._subscriptions_changed()
            self.dropped_subscribers += 1
            if subscription.on_drop is not None:
                subscription.on_drop()

    def seen(self, gateway_id: str, at: str) -> None:
        """Publish ``seen`` for a gateway heard from, at most once a second per gateway.

        Args:
            gateway_id: the gateway.
            at: when (spec §3 date-time text).
        """
        if not self.active_for("seen"):
            return
        now = time.monotonic()
        if now - self._seen.get(gateway_id, -_SEEN_INTERVAL) < _SEEN_INTERVAL:
            return
        if len(self._seen) > 100_000:  # forget gateways long gone
            self._seen.clear()
        self._seen[gateway_id] = now
        self.publish("seen", gateway_id, {"time": at})

    def hello(self, data: dict[str, Any]) -> bytes:
        """The first message of a stream (kind ``hello``), written to that stream only.

        Args:
            data: the payload.

        Returns:
            The encoded event; its id is the latest id of the hub.
        """
        return _encode(self._last_id, "hello", data)

    @contextmanager
    def subscribe(
        self, gateway_id: str | None = None, kinds: Iterable[str] | None = None
    ) -> Iterator[Subscription]:
        """Subscribe for the duration of a ``with`` block.

        Args:
            gateway_id: only events about this gateway (``None``: every gateway;
                events about the service itself always pass).
            kinds: only these kinds (``None``: every kind).

        Yields:
            The subscription; it is closed when the block ends.

        Raises:
            ValueError: an unknown kind.
            TooManySubscribersError: ``max_subscribers`` streams are open already.
        """
        wanted = None if kinds is None else frozenset(kinds)
        if wanted is not None and not wanted <= KINDS:
            unknown = ", ".join(sorted(wanted - KINDS))
            raise ValueError(f"unknown event kind(s): {unknown}")
        if wanted is not None:
            wanted = wanted | {"resync"}
        if len(self._subscriptions) >= self.max_subscribers:
            raise TooManySubscribersError(
                f"too many event streams open (at most {self.max_subscribers})"
            )
        subscription = Subscription(gateway_id, wanted, self.queue_size)
        if self._closed:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
            self._subscriptions_changed()
        try:
            yield subscription
        finally:
            if subscription in self._subscriptions:
                self._subscriptions.discard(subscription)
                self._subscriptions_changed()
            if not self._subscriptions:
                self._seen.clear()

    def resync(self) -> None:
        """End every stream with ``resync``: events were missed (e.g. of another node)."""
        subscriptions, self._subscriptions = self._subscriptions, set()
        self._subscriptions_changed()
        for subscription in subscriptions:
            subscription.end_with_resync(self._last_id)

    def close(self) -> None:
        """End every stream (the service stops); later subscriptions end at once."""
        self._closed = True
        subscriptions, self._subscriptions = self._subscriptions, set()
        self._subscriptions_changed()
        for subscription in subscriptions:
            subscription.close()
