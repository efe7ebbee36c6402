"""Every C→G action answered by a SimulatedGateway, and what it does afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from simulator_helpers import CloseCodes, Recorder, sampled

from ntxcp import ControlCenter
from ntxcp.simulator import SimulatedGateway
from ntxcp.v10 import core, remotetrigger
from waiting import eventually

Make = Callable[..., SimulatedGateway]
GW = "GW-1"
Trigger = remotetrigger.MessageTrigger
Status = remotetrigger.TriggerMessageStatus

# --- ChangeConfiguration / GetConfiguration (spec §4.1) --------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("HeartbeatInterval", "120", "Accepted"),
        ("heartbeatinterval", "7", "Accepted"),  # keys are CiString (spec §3)
        ("Vendor.Note", "rack 4, left", "Accepted"),
        ("MeterValuesSampledData", "voltage, Temperature", "Accepted"),
        ("WebSocketPingInterval", "10", "RebootRequired"),
        ("NoSuchKey", "1", "NotSupported"),
        ("FirmwareVersion", "9.9.9", "Rejected"),  # read-only
        ("ServiceCount", "5", "Rejected"),
        ("HeartbeatInterval", "-1", "Rejected"),
        ("HeartbeatInterval", "1.5", "Rejected"),
        ("HeartbeatInterval", "ten", "Rejected"),
        ("MeterValuesSampledData", "Voltage,Bogus", "Rejected"),
        ("MeterValuesSampledData", "Power.Factor", "Rejected"),  # not simulated
        ("MeterValuesSampledData", " , ", "Rejected"),
    ],
)
async def test_change_configuration(
    cc: ControlCenter, sim: SimulatedGateway, key: str, value: str, expected: str
) -> None:
    before = sim.config.as_dict()
    conf = await cc.change_configuration(GW, key, value)
    assert conf.status.value == expected
    if expected in ("Accepted", "RebootRequired"):
        known, _ = sim.config.read([key])
        assert known[0].value is not None
        assert known[0].value.replace(" ", "").lower() == value.replace(" ", "").lower()
    else:
        assert sim.config.as_dict() == before


async def test_changed_heartbeat_interval_takes_effect_at_once(
    make_sim: Make, cc: ControlCenter, recorder: Recorder
) -> None:
    sim = make_sim(heartbeat_interval=300)
    await sim.start()
    await recorder.wait_for("StatusNotification", 3)
    assert (await cc.change_configuration(GW, "HeartbeatInterval", "1")).status.value == "Accepted"
    await recorder.wait_for("Heartbeat", timeout=2.5)


async def test_changed_meter_settings_take_effect(
    make_sim: Make, cc: ControlCenter, recorder: Recorder
) -> None:
    sim = make_sim(meter_interval=300, heartbeat_interval=0.2)
    await sim.start()
    await recorder.wait_for("StatusNotification", 3)
    await recorder.wait_for("MeterValues", 1)  # the power-on reading (default measurands)
    await cc.change_configuration(GW, "MeterValuesSampledData", "Temperature,Voltage")
    before = len(recorder.of("MeterValues"))
    await cc.change_configuration(GW, "MeterValueSampleInterval", "1")
    requests = await recorder.wait_for("MeterValues", before + 2, timeout=3)
    values = sampled(requests[before])
    assert list(values) == ["Temperature", "Voltage"]
    assert values["Temperature"].effective_unit.value == "Celsius"
    await cc.change_configuration(GW, "MeterValueSampleInterval", "0")  # 0: none
    count = len(recorder.of("MeterValues"))
    # No more samples: proven by a later Heartbeat on the same connection, sent more
    # than 1.5 old intervals after the change (a sample due meanwhile would come first).
    changed_at = asyncio.get_running_loop().time()
    await eventually(
        lambda: any(m.action == "Heartbeat" and m.at > changed_at + 1.5 for m in recorder.messages)
    )
    assert len(recorder.of("MeterValues")) == count
    assert sim.config.get("MeterValueSampleInterval") == "0"


async def test_get_configuration(cc: ControlCenter, sim: SimulatedGateway) -> None:
    everything = await cc.get_configuration(GW)
    assert everything.unknown_key is None
    table = {kv.key: kv for kv in everything.configuration_key or []}
    assert list(table) == [
        "HeartbeatInterval",
        "MeterValueSampleInterval",
        "MeterValuesSampledData",
        "WebSocketPingInterval",
        "Vendor.Note",
        "ServiceCount",
        "GatewayModel",
        "GatewayVendor",
        "SerialNumber",
        "FirmwareVersion",
    ]
    assert not table["HeartbeatInterval"].readonly and table["ServiceCount"].readonly
    assert table["ServiceCount"].value == "2"
    assert table["FirmwareVersion"].value == "1.0.0"
    some = await cc.get_configuration(GW, ["vendor.note", "Nope", "HeartbeatInterval", "X"])
    assert [kv.key for kv in some.configuration_key or []] == ["Vendor.Note", "HeartbeatInterval"]
    assert some.unknown_key == ["Nope", "X"]


# --- ClearCache, DataTransfer, Reset (spec §4.1) ----------------------------------------


async def test_clear_cache(cc: ControlCenter, sim: SimulatedGateway) -> None:
    sim.cache_entries = 12
    assert (await cc.clear_cache(GW)).status.value == "Accepted"
    assert sim.cache_entries == 0


async def test_data_transfer(cc: ControlCenter, sim: SimulatedGateway) -> None:
    echo = await cc.data_transfer(GW, "Ding.X", message_id="echo", data="hello")
    assert (echo.status.value, echo.data) == ("Accepted", "hello")
    upper = await cc.data_transfer(GW, "DING.X", message_id="ECHO")
    assert (upper.status.value, upper.data) == ("Accepted", None)
    state = await cc.data_transfer(GW, "Ding.X", message_id="state")
    assert state.status.value == "Accepted" and state.data is not None
    assert json.loads(state.data)["services"] == {"1": "Charging", "2": "Charging"}
    unknown_message = await cc.data_transfer(GW, "Ding.X", message_id="reboot-now")
    assert unknown_message.status.value == "UnknownMessageId"
    no_message = await cc.data_transfer(GW, "Ding.X")
    assert no_message.status.value == "UnknownMessageId"
    other = await cc.data_transfer(GW, "ACME", message_id="echo", data="x")
    assert other.status.value == "UnknownVendorId"


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
async def test_reset_reconnects_and_boots_again(
    cc: ControlCenter,
    sim: SimulatedGateway,
    recorder: Recorder,
    close_codes: CloseCodes,
    kind: str,
) -> None:
    await eventually(lambda: sim.uptime > 0.2)
    uptime = sim.uptime
    conf = await cc.reset(GW, kind)
    assert conf.status.value == "Accepted"
    await recorder.wait_for("BootNotification", 2)
    await recorder.wait_for("StatusNotification", 6)
    assert close_codes.codes[GW] == [1000]  # spec §6.2: the gateway closes with 1000
    assert sim.boots == 2 and sim.registered
    if kind == "Hard":
        assert sim.uptime < uptime
    else:
        assert sim.uptime > uptime


# --- CaptureProcess (spec §4.1) ---------------------------------------------------------


async def test_capture_process(cc: ControlCenter, sim: SimulatedGateway) -> None:
    conf = await cc.capture_process(GW, "1", ["temperature", "Pressure", "flow", "bogus"])
    assert conf.status.value == "Accepted"
    points = {p.datapoint_id: p for p in conf.datapoints or []}
    assert list(points) == ["temperature", "Pressure", "flow"]
    assert points["temperature"].unit == "Celsius"
    assert points["Pressure"].unit == "bar"
    assert all(p.timestamp is not None for p in points.values())
    assert 0 < float(points["temperature"].value) < 100
    assert conf.unknown_datapoint_ids == ["bogus"]

    more = await cc.capture_process(GW, "2", ["state", "energy", "power", "current", "voltage"])
    values = {p.datapoint_id: p.value for p in more.datapoints or []}
    assert values["state"] == "Charging"
    assert float(values["energy"]) > 0 and more.unknown_datapoint_ids is None

    gateway = await cc.capture_process(GW, "0", ["uptime", "firmwareVersion", "state"])
    values = {p.datapoint_id: p.value for p in gateway.datapoints or []}
    assert values == {"uptime": values["uptime"], "firmwareVersion": "1.0.0", "state": "Available"}

    none_known = await cc.capture_process(GW, "1", ["x", "y"])
    assert none_known.status.value == "Rejected"
    assert none_known.unknown_datapoint_ids == ["x", "y"] and none_known.datapoints is None

    unknown_service = await cc.capture_process(GW, "3", ["temperature"])
    assert unknown_service.status.value == "UnknownService"
    assert (await cc.capture_process(GW, "one", ["temperature"])).status.value == "UnknownService"
    assert (await cc.capture_process(GW, "01", ["temperature"])).status.value == "UnknownService"


# --- TriggerMessage (spec §4.3) ----------------------------------------------------------


async def _trigger(cc: ControlCenter, what: Trigger, service_id: str | None = None) -> str:
    conf = await cc.trigger_message(GW, what, service_id=service_id)
    return conf.status.value


async def test_trigger_boot_and_heartbeat(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder
) -> None:
    assert await _trigger(cc, Trigger.BOOT_NOTIFICATION) == "Accepted"
    boots = await recorder.wait_for("BootNotification", 2)
    assert boots[1].firmware_version == "1.0.0"
    assert await _trigger(cc, Trigger.HEARTBEAT) == "Accepted"
    await recorder.wait_for("Heartbeat")


async def test_trigger_status_notification(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder
) -> None:
    assert await _trigger(cc, Trigger.STATUS_NOTIFICATION, "2") == "Accepted"
    statuses = await recorder.wait_for("StatusNotification", 4)
    assert statuses[3].service_id == "2"
    assert await _trigger(cc, Trigger.STATUS_NOTIFICATION) == "Accepted"
    statuses = await recorder.wait_for("StatusNotification", 7)
    assert [s.service_id for s in statuses[4:]] == ["0", "1", "2"]
    assert await _trigger(cc, Trigger.STATUS_NOTIFICATION, "3") == "Rejected"
    assert await _trigger(cc, Trigger.STATUS_NOTIFICATION, "x") == "Rejected"


async def test_trigger_meter_values(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder
) -> None:
    assert await _trigger(cc, Trigger.METER_VALUES, "2") == "Accepted"
    first = (await recorder.wait_for("MeterValues"))[0]
    assert first.service_id == 2
    assert all(v.context.value == "Trigger" for v in first.meter_value[0].sampled_value)

    assert await _trigger(cc, Trigger.METER_VALUES, "0") == "Accepted"
    total = (await recorder.wait_for("MeterValues", 2))[1]
    assert total.service_id == 0
    energy = float(sampled(total)["Energy.Active.Import.Register"].value)
    assert energy == pytest.approx(sum(s.energy_wh for s in sim.plant.services), rel=1e-3)

    assert await _trigger(cc, Trigger.METER_VALUES) == "Accepted"
    every = await recorder.wait_for("MeterValues", 4)
    assert sorted(r.service_id for r in every[2:]) == [1, 2]
    assert await _trigger(cc, Trigger.METER_VALUES, "9") == "Rejected"


async def test_trigger_firmware_and_diagnostics_status_idle(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder
) -> None:
    assert await _trigger(cc, Trigger.FIRMWARE_STATUS_NOTIFICATION) == "Accepted"
    firmware_status = (await recorder.wait_for("FirmwareStatusNotification"))[0]
    assert firmware_status.status.value == "Idle"
    assert await _trigger(cc, Trigger.DIAGNOSTICS_STATUS_NOTIFICATION, "1") == "Accepted"
    diagnostics = (await recorder.wait_for("DiagnosticsStatusNotification"))[0]
    assert diagnostics.status.value == "Idle"


async def test_trigger_before_accepted_allows_only_boot(
    make_sim: Make, cc: ControlCenter, recorder: Recorder
) -> None:
    recorder.boot_answers = [core.RegistrationStatus.PENDING]
    recorder.interval = 60
    sim = make_sim()
    await sim.start()
    await recorder.wait_for("BootNotification")
    assert sim.registration_status is core.RegistrationStatus.PENDING
    assert await _trigger(cc, Trigger.HEARTBEAT) == "Rejected"  # spec §4.1
    assert await _trigger(cc, Trigger.STATUS_NOTIFICATION) == "Rejected"
    recorder.boot_answers = [core.RegistrationStatus.ACCEPTED]
    assert await _trigger(cc, Trigger.BOOT_NOTIFICATION) == "Accepted"
    await recorder.wait_for("BootNotification", 2)
    await eventually(lambda: sim.registered)
    assert sim.registration_status is core.RegistrationStatus.ACCEPTED
    assert await _trigger(cc, Trigger.HEARTBEAT) == "Accepted"
    await recorder.wait_for("Heartbeat")
