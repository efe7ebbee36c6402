"""The live event hub (``ntxcp.service.events``) and what the service publishes to it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import ntxcp
from ntxcp.service import Service, ServiceConfig
from ntxcp.service.events import EventHub, Subscription
from ntxcp.v10 import types as t


def drain(subscription: Subscription) -> list[tuple[str, dict[str, object]]]:
    items = []
    while not subscription._queue.empty():
        event = subscription._queue.get_nowait()
        if event is None:  # the end of the stream
            assert subscription._queue.empty()
            break
        items.append((event.kind, event.data))
    return items


async def test_nothing_is_built_without_subscribers() -> None:
    hub = EventHub()
    assert not hub.active

    def build() -> dict[str, object]:
        raise AssertionError("built without a subscriber")

    assert hub.publish("status", "gw", build) is None
    with hub.subscribe("other", ["status"]):
        assert hub.active and not hub.wants("status", "gw")
        assert hub.publish("status", "gw", build) is None
    assert not hub.active


async def test_filters_by_gateway_and_kind() -> None:
    hub = EventHub()
    with (
        hub.subscribe() as everything,
        hub.subscribe("gw-1") as one,
        hub.subscribe(kinds=["status"]) as statuses,
    ):
        hub.publish("status", "gw-1", {"status": "Faulted"})
        hub.publish("meter", "gw-2", lambda: {"serviceId": 1})
        hub.publish("hello", None, {})  # about the service: passes a gateway filter
        assert [k for k, _ in drain(everything)] == ["status", "meter", "hello"]
        assert drain(one) == [("status", {"status": "Faulted", "gatewayId": "gw-1"}), ("hello", {})]
        assert [k for k, _ in drain(statuses)] == ["status"]
    with pytest.raises(ValueError, match="unknown event kind"), hub.subscribe(kinds=["nope"]):
        pass


async def test_encoded_as_server_sent_event() -> None:
    hub = EventHub()
    with hub.subscribe():
        event = hub.publish("frame", "gw", {"raw": '[2,"a","X",{"t":"line\\nbreak"}]'})
    assert event is not None
    lines = event.message.decode().split("\n")
    assert lines[0] == f"id: {event.id}" and lines[1] == "event: frame"
    assert lines[2].startswith("data: ") and lines[3:] == ["", ""]
    assert json.loads(lines[2][6:]) == {
        "raw": '[2,"a","X",{"t":"line\\nbreak"}]',
        "gatewayId": "gw",
    }
    assert hub.hello({"v": 1}).startswith(b"id: 1\nevent: hello\ndata: {")


async def test_a_slow_subscriber_gets_resync_and_is_dropped() -> None:
    hub = EventHub(queue_size=3)
    with hub.subscribe() as subscription:
        for index in range(5):
            hub.publish("seen", f"gw-{index}", {"time": "x"})
        assert subscription.overflowed and hub.subscribers == 0
        kinds = [k for k, _ in drain(subscription)]
    assert kinds == ["resync"]  # and then the end of the stream
    assert subscription.dropped == 4
    assert hub.dropped_subscribers == 1


async def test_seen_is_throttled_per_gateway() -> None:
    hub = EventHub()
    with hub.subscribe(kinds=["seen"]) as subscription:
        for _ in range(3):
            hub.seen("a", "t1")
        hub.seen("b", "t1")
        assert [d["gatewayId"] for _, d in drain(subscription)] == ["a", "b"]


async def test_close_ends_every_stream() -> None:
    hub = EventHub()
    with hub.subscribe() as subscription:
        hub.close()
        assert await asyncio.wait_for(subscription.get(), 1) is None
    assert hub.closed and not hub.active
    with hub.subscribe() as late:
        assert await asyncio.wait_for(late.get(), 1) is None


async def test_service_publishes_what_it_stores(tmp_path: Path) -> None:
    service = Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "cc.sqlite")))
    await service.start()
    try:
        with service.events.subscribe("gw-ev") as subscription:
            gateway = ntxcp.Gateway("gw-ev", reconnect=False, heartbeat=False)
            await gateway.start(service.ws_url)
            await gateway.boot_notification("DX-EV", firmware_version="9.9")
            await gateway.status_notification("1", "GroundFailure", "Faulted")
            sample = t.SampledValue(value="12.5", measurand=t.Measurand.POWER_ACTIVE_IMPORT)
            now = datetime.now(UTC)
            await gateway.meter_values(1, [t.MeterValue(timestamp=now, sampled_value=[sample])])
            await gateway.stop()
            events: list[tuple[str, dict[str, object]]] = []
            while not any(k == "connection" and not d["connected"] for k, d in events):
                event = await asyncio.wait_for(subscription.get(), 5)
                assert event is not None
                events.append((event.kind, event.data))
    finally:
        await service.stop()
    kinds = [k for k, _ in events]
    assert kinds[0] == "connection" and events[0][1]["connected"] is True
    first = {kind: data for kind, data in reversed(events)}
    assert first["boot"]["bootInfo"] == {"dingxGatewayModel": "DX-EV", "firmwareVersion": "9.9"}
    assert first["boot"]["registrationStatus"] == "Accepted"
    assert first["status"]["status"] == "Faulted"
    assert first["status"]["errorCode"] == "GroundFailure"
    meter = msgspec.convert(first["meter"]["meterValue"], list[dict[str, object]])
    assert meter[0]["sampledValue"] == [{"value": "12.5", "measurand": "Power.Active.Import"}]
    frames = [d for k, d in events if k == "frame"]
    assert {(f["direction"], f["messageType"], f["action"]) for f in frames} >= {
        ("in", "CALL", "BootNotification"),
        ("out", "CALLRESULT", "BootNotification"),
        ("in", "CALL", "MeterValues"),
    }
    assert "seen" in kinds


async def test_queued_events_are_taken_in_batches_up_to_the_end() -> None:
    hub = EventHub(queue_size=4)
    with hub.subscribe() as subscription:
        for index in range(3):
            hub.publish("seen", f"gw-{index}", {"time": "x"})
        events, ended = subscription.take_ready(2)
        assert [e.gateway_id for e in events] == ["gw-0", "gw-1"] and not ended
        for index in range(3, 8):  # overflows: resync, then the end
            hub.publish("seen", f"gw-{index}", {"time": "x"})
        events, ended = subscription.take_ready(10)
        assert [e.kind for e in events] == ["resync"] and ended
        assert subscription.take_ready(10) == ([], False)
