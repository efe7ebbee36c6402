"""SimulatedGateway against a real control center: boot, heartbeat, statuses, meters."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from simulator_helpers import FAST_BACKOFF, Recorder, sampled

from ntxcp import ControlCenter, client_tls_context, server_tls_context
from ntxcp.simulator import SimulatedGateway
from ntxcp.v10 import core
from waiting import eventually

Make = Callable[..., SimulatedGateway]


async def test_boot_then_status_of_gateway_and_every_service(
    make_sim: Make, recorder: Recorder
) -> None:
    sim = make_sim(services=3, model="DX-T1", vendor="Ding.X", firmware_version="4.2.0")
    await sim.start()
    boot = (await recorder.wait_for("BootNotification"))[0]
    assert boot.dingx_gateway_model == "DX-T1"
    assert boot.dingx_gateway_vendor == "Ding.X"
    assert boot.firmware_version == "4.2.0"
    assert boot.dingx_gateway_serial_number == sim.serial_number
    statuses = await recorder.wait_for("StatusNotification", 4)
    assert [s.service_id for s in statuses] == ["0", "1", "2", "3"]
    assert all(s.error_code is core.DingxGatewayErrorCode.NO_ERROR for s in statuses)
    assert statuses[0].status is core.DingxGatewayStatus.AVAILABLE
    assert all(s.timestamp is not None for s in statuses)
    # spec §4.1: the boot came first, nothing before it.
    assert recorder.messages[0].action == "BootNotification"
    assert sim.connected and sim.registered and sim.boots == 1
    assert sim.sent["BootNotification"] == 1 and sim.sent["StatusNotification"] == 4


async def test_heartbeat_interval_comes_from_the_boot_answer(
    make_sim: Make, recorder: Recorder
) -> None:
    recorder.interval = 1
    sim = make_sim(heartbeat_interval=None)
    await sim.start()
    await recorder.wait_for("BootNotification")
    await recorder.wait_for("Heartbeat", timeout=3)
    assert sim.config.get("HeartbeatInterval") == "1"


async def test_heartbeat_override_sends_at_that_interval(
    make_sim: Make, recorder: Recorder
) -> None:
    sim = make_sim(heartbeat_interval=0.1)
    await sim.start()
    await recorder.wait_for("Heartbeat", 4)
    times = [m.at for m in recorder.messages if m.action == "Heartbeat"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.08 for gap in gaps), gaps
    assert sim.config.get("HeartbeatInterval") == "0.1"


async def test_pending_boot_is_retried_after_interval_and_holds_other_messages(
    make_sim: Make, recorder: Recorder
) -> None:
    recorder.boot_answers = [core.RegistrationStatus.PENDING, core.RegistrationStatus.ACCEPTED]
    recorder.interval = 1
    sim = make_sim(meter_interval=0.1)
    await sim.start()
    await recorder.wait_for("BootNotification", 2, timeout=4)
    await recorder.wait_for("StatusNotification", 3)
    boots = [m for m in recorder.messages if m.action == "BootNotification"]
    assert boots[1].at - boots[0].at >= 0.9  # spec §4.1: retry after `interval`
    # spec §4.1: nothing but BootNotification until Accepted.
    first_accepted = recorder.messages.index(boots[1])
    assert all(m.action == "BootNotification" for m in recorder.messages[:first_accepted])
    assert sim.registration_status is core.RegistrationStatus.ACCEPTED


async def test_meter_values_are_plausible_and_energy_increases(
    make_sim: Make, recorder: Recorder
) -> None:
    sim = make_sim(services=2, meter_interval=0.1)
    await sim.start()
    await recorder.wait_for("MeterValues", 8)
    by_service: dict[int, list[core.MeterValuesRequest]] = {1: [], 2: []}
    for request in recorder.of("MeterValues"):
        by_service[request.service_id].append(request)
    for service_id, requests in by_service.items():
        assert len(requests) >= 3, service_id
        energies = []
        for request in requests:
            values = sampled(request)
            assert set(values) == {
                "Energy.Active.Import.Register",
                "Power.Active.Import",
                "Current.Import",
                "Voltage",
            }
            units = {name: v.effective_unit.value for name, v in values.items()}
            assert units == {
                "Energy.Active.Import.Register": "Wh",
                "Power.Active.Import": "W",
                "Current.Import": "A",
                "Voltage": "V",
            }
            assert all(v.effective_context.value == "Sample.Periodic" for v in values.values())
            power = float(values["Power.Active.Import"].value)
            voltage = float(values["Voltage"].value)
            current = float(values["Current.Import"].value)
            service = sim.plant.services[service_id - 1]
            assert 0 < power <= service.rated_power_w
            assert 220 <= voltage <= 240
            assert current == pytest.approx(power / voltage / service.phases, abs=0.02)
            energies.append(float(values["Energy.Active.Import.Register"].value))
        assert energies == sorted(energies) and energies[-1] > energies[0]


async def test_a_status_change_is_reported(make_sim: Make, recorder: Recorder) -> None:
    sim = make_sim()
    await sim.start()
    await recorder.wait_for("StatusNotification", 3)
    sim.set_service_status(2, "Faulted", "GroundFailure", info="leak current")
    faulted = await recorder.wait_for(
        "StatusNotification", where=lambda r: r.status is core.DingxGatewayStatus.FAULTED
    )
    assert faulted[0].service_id == "2"
    assert faulted[0].error_code is core.DingxGatewayErrorCode.GROUND_FAILURE
    assert faulted[0].info == "leak current"
    assert sim.plant.services[1].power_w == 0
    with pytest.raises(ValueError, match="no service 3"):
        sim.set_service_status(3, "Faulted")


async def test_data_survives_a_control_center_outage_and_store_file(
    make_sim: Make, recorder: Recorder, tmp_path: Path
) -> None:
    store = tmp_path / "queue.sqlite"
    first = ControlCenter()
    first.set_core_handler(recorder)
    await first.start(0)
    port = first.port
    sim = make_sim(url=first.url, meter_interval=0.05, store=str(store))
    await sim.start()
    await recorder.wait_for("MeterValues", 2)
    await first.stop()
    assert store.exists()
    before = len(recorder.messages)
    outage_start = datetime.now(UTC)
    await eventually(lambda: not sim.connected)
    # spec §6.2: the samples taken while the control center is down are stored. What is
    # queued now may have been sampled before the outage began: count 4 more than that.
    queued_at_cut = sim.queued
    await eventually(lambda: sim.queued >= queued_at_cut + 4)
    outage_end = datetime.now(UTC)
    second = ControlCenter()
    second.set_core_handler(recorder)
    await second.start(port)
    try:
        await recorder.wait_for("BootNotification", 2)
        # spec §4.1/§6.2: after reconnecting the boot goes first, then the backlog:
        # samples taken during the outage arrive after it.
        assert recorder.messages[before].action == "BootNotification"
        await recorder.wait_for(
            "MeterValues",
            4,
            where=lambda r: outage_start <= r.meter_value[0].timestamp <= outage_end,
        )
    finally:
        await sim.stop()
        await second.stop()


async def test_runs_over_tls(pki: object, recorder: Recorder) -> None:
    cert, key, ca = pki.server_cert, pki.server_key, pki.ca_cert  # type: ignore[attr-defined]
    center = ControlCenter(ssl=server_tls_context(str(cert), str(key)))
    center.set_core_handler(recorder)
    await center.start(0)
    sim = SimulatedGateway(
        "GW-TLS",
        center.url,
        ssl=client_tls_context(str(ca)),
        meter_interval=0,
        backoff=FAST_BACKOFF,
    )
    try:
        assert center.url.startswith("wss://")
        await sim.start()
        await recorder.wait_for("StatusNotification", 3)
        assert sim.registered
    finally:
        await sim.stop()
        await center.stop()


async def test_run_for_a_duration_then_close_with_1000(
    make_sim: Make, recorder: Recorder, close_codes: object
) -> None:
    sim = make_sim()
    await asyncio.wait_for(sim.run(0.3), 5)
    await eventually(lambda: "GW-1" in close_codes.codes)  # type: ignore[attr-defined]
    assert close_codes.codes["GW-1"] == [1000]  # type: ignore[attr-defined]
    assert not sim.connected
    await sim.stop()  # a second stop does nothing


async def test_invalid_arguments_are_refused(cc: ControlCenter) -> None:
    with pytest.raises(ValueError, match="BootNotification"):
        SimulatedGateway("GW-1", cc.url, model="M" * 21)  # CiString20 (spec §4.1)
    with pytest.raises(ValueError, match="at least one service"):
        SimulatedGateway("GW-1", cc.url, services=0)
    with pytest.raises(ValueError, match="negative"):
        SimulatedGateway("GW-1", cc.url, meter_interval=-1)
