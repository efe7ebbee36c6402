"""Which frames a node sends to the others (cluster mode), without servers.

The relay of a node is given the other nodes' announcements as they come off the bus
(``ntxcp.listeners``, encoded as on the wire); what it publishes goes to a recording
bus. Two real nodes: ``test_cluster_frames.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, cast

import msgspec
import pytest
from nats.aio.msg import Msg

from ntxcp.service.cluster import relay as relay_module
from ntxcp.service.cluster.bus import Bus
from ntxcp.service.cluster.relay import ANNOUNCE_INTERVAL, LISTENING_TTL, EventRelay
from ntxcp.service.cluster.subjects import LISTENERS, event_subject
from ntxcp.service.cluster.wire import Listening
from ntxcp.service.events import EventHub, FrameInterest
from waiting import eventually


class RecordingBus:
    """A bus that is up and keeps what is published on it, with the time."""

    def __init__(self) -> None:
        self.connected = True
        self.published: list[tuple[float, str, Any]] = []

    def publish(self, subject: str, data: bytes) -> None:
        self.published.append((time.monotonic(), subject, msgspec.json.decode(data)))

    def on(self, subject: str) -> list[Any]:
        return [message for _, published, message in self.published if published == subject]


class Clock:
    """Stands for :func:`time.monotonic` in the relay: moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _Message:
    def __init__(self, data: bytes) -> None:
        self.data = data


def message(data: bytes | Listening) -> Msg:
    """A message of ``ntxcp.listeners`` as the relay is given it."""
    raw = data if isinstance(data, bytes) else msgspec.json.encode(data)
    return cast(Msg, _Message(raw))


def relay_of_a() -> tuple[EventRelay, EventHub, RecordingBus]:
    bus = RecordingBus()
    hub = EventHub()
    return EventRelay("a", cast(Bus, bus), hub), hub, bus


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(relay_module, "time", fake)
    return fake


def frame(hub: EventHub, gateway_id: str) -> None:
    """What the frame path does with one frame."""
    if hub.wants_frame(gateway_id):
        hub.publish("frame", gateway_id, {"direction": "in", "raw": "[2]"})


async def test_an_announcement_without_frame_interest_wants_no_frames(clock: Clock) -> None:
    relay, hub, bus = relay_of_a()
    await relay.on_listening(message(b'{"node":"b"}'))  # as a node that predates it
    assert relay.others_listening()
    frame(hub, "gw-1")
    hub.publish("meter", "gw-1", {"serviceId": "1"})
    assert bus.on(event_subject("frame")) == []
    assert [m["gateway_id"] for m in bus.on(event_subject("meter"))] == ["gw-1"]
    # And a newer node's announcement is read by one that predates the fields.
    newer = msgspec.json.encode(Listening("a", ("gw-1",), all_frames=True))
    assert msgspec.json.decode(newer, type=_OldListening) == _OldListening("a")


class _OldListening(msgspec.Struct, frozen=True):
    node: str


async def test_each_node_wants_what_it_last_announced_for_the_ttl(clock: Clock) -> None:
    relay, hub, bus = relay_of_a()
    await relay.on_listening(message(Listening("b", ("gw-1",))))
    await relay.on_listening(message(Listening("c", ("gw-2",))))
    assert [relay.others_want_frames(g) for g in ("gw-1", "gw-2", "gw-3")] == [True, True, False]
    frame(hub, "gw-1")
    frame(hub, "gw-3")
    assert [m["gateway_id"] for m in bus.on(event_subject("frame"))] == ["gw-1"]
    # c's next announcement replaces its interest; b's stays.
    await relay.on_listening(message(Listening("c", all_frames=True)))
    assert relay.others_want_frames("gw-3")
    await relay.on_listening(message(Listening("c")))
    assert relay.frames_sent() == FrameInterest(gateways=frozenset({"gw-1"}))
    # b not heard from for the TTL: its interest is gone, c's renewed one stays.
    clock.now += LISTENING_TTL - 0.5
    await relay.on_listening(message(Listening("c", ("gw-2",))))
    clock.now += 0.5
    assert not relay.others_want_frames("gw-1")
    assert relay.others_want_frames("gw-2")
    clock.now += LISTENING_TTL
    assert relay.frames_sent() == FrameInterest()
    # Its own announcements (where the server echoes them) never count.
    await relay.on_listening(message(Listening("a", all_frames=True)))
    assert not relay.others_want_frames("gw-1")


async def test_no_frames_go_to_the_bus_while_it_is_down(clock: Clock) -> None:
    relay, hub, bus = relay_of_a()
    await relay.on_listening(message(Listening("b", all_frames=True)))
    bus.connected = False
    assert not hub.wants_frame("gw-1")
    assert relay.frames_sent() == FrameInterest()


def test_the_frames_a_stream_wants_follow_its_gateway_and_kinds() -> None:
    hub = EventHub()
    with (
        hub.subscribe("gw-1", ["frame", "status"]),
        hub.subscribe("gw-2", ["status"]),
        hub.subscribe(None, ["meter"]),
    ):
        assert hub.frame_interest == FrameInterest(gateways=frozenset({"gw-1"}))
        with hub.subscribe("gw-3"):  # every kind
            assert hub.frame_interest.gateways == {"gw-1", "gw-3"}
            with hub.subscribe(None, ["frame"]):
                assert hub.frame_interest.every
        assert hub.frame_interest == FrameInterest(gateways=frozenset({"gw-1"}))
    assert hub.frame_interest == FrameInterest()
    assert not hub.wants_frame("gw-1")


@pytest.fixture
async def announcing() -> AsyncIterator[tuple[EventRelay, EventHub, RecordingBus]]:
    relay, hub, bus = relay_of_a()
    relay.start()
    try:
        yield relay, hub, bus
    finally:
        await relay.close()


async def test_a_change_of_frame_interest_is_announced_at_once(
    announcing: tuple[EventRelay, EventHub, RecordingBus],
) -> None:
    _, hub, bus = announcing

    def announced() -> list[tuple[float, Any]]:
        return [(at, m) for at, subject, m in bus.published if subject == LISTENERS]

    with hub.subscribe(None, ["status"]):  # the overview: no frames
        await eventually(lambda: len(announced()) == 1, what="the first announcement")
        assert announced()[0][1] == {"node": "a"}
        with hub.subscribe("gw-1", ["frame"]):  # a gateway's message log opens
            await eventually(lambda: len(announced()) == 2, what="the new interest")
            (before, _), (at, latest) = announced()
            assert latest == {"node": "a", "frame_gateways": ["gw-1"]}
            assert at - before < ANNOUNCE_INTERVAL / 2  # not the next periodic one
        await eventually(lambda: len(announced()) == 3, what="the interest withdrawn")
        (_, _), (before, _), (at, latest) = announced()
        assert latest == {"node": "a"}
        assert at - before < ANNOUNCE_INTERVAL / 2
