"""Data from gateways, stored and read back through the HTTP API (a real service process)."""

from __future__ import annotations

import json

import aiohttp
from service_helpers import (
    Api,
    ServiceProcess,
    at,
    gateway,
    iso,
    raw_connect,
    sample,
    until,
)

from ntxcp.v10 import core, firmware
from ntxcp.v10 import types as t


async def test_boot_info_is_stored_and_listed(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "boot-1") as gw:
        conf = await gw.boot_notification(
            "DX-100",
            dingx_gateway_vendor="Ding",
            dingx_gateway_serial_number="SN-42",
            firmware_version="2.1.0",
            iccid="8949",
            imsi="2620",
            meter_type="ABB",
            meter_serial_number="M-1",
        )
        assert conf.status is core.RegistrationStatus.ACCEPTED
        assert conf.interval == 300  # spec §4.1: the heartbeat interval when Accepted
        heartbeat = await gw.heartbeat()
        assert abs((heartbeat.current_time - conf.current_time).total_seconds()) < 5

        status, listing = await api.get("/api/gateways")
        assert status == 200
        item = next(g for g in listing["items"] if g["id"] == "boot-1")
        assert item["connected"] is True
        assert item["registered"] is False  # seen, not registered
        assert item["registrationStatus"] == "Accepted"
        assert item["lastSeen"] is not None
        assert item["bootInfo"] == {
            "dingxGatewayModel": "DX-100",
            "dingxGatewayVendor": "Ding",
            "dingxGatewaySerialNumber": "SN-42",
            "firmwareVersion": "2.1.0",
            "iccid": "8949",
            "imsi": "2620",
            "meterType": "ABB",
            "meterSerialNumber": "M-1",
        }
        status, one = await api.get("/api/gateways/boot-1")
        assert status == 200
        assert one["bootInfo"]["dingxGatewayModel"] == "DX-100"
        assert one["remoteAddress"].startswith("127.0.0.1:")
        assert one["tls"] is False

    async def disconnected() -> bool:
        _, item = await api.get("/api/gateways/boot-1")
        return item["connected"] is False

    await until(disconnected)


async def test_status_notifications_current_and_history(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "status-1") as gw:
        await gw.boot_notification("DX-100")
        await gw.status_notification("1", "NoError", "Available", timestamp=at(0))
        await gw.status_notification("0", "NoError", "Available", timestamp=at(0))
        await gw.status_notification(
            "1",
            "OverVoltage",
            "Faulted",
            info="too high",
            timestamp=at(2),
            vendor_id="Ding",
            vendor_error_code="E17",
        )
        # A late notification (store and forward) never replaces a newer current status.
        await gw.status_notification("1", "NoError", "Charging", timestamp=at(1))

    status, report = await api.get("/api/gateways/status-1/status")
    assert status == 200
    current = {entry["serviceId"]: entry for entry in report["current"]}
    assert set(current) == {"0", "1"}
    assert current["0"]["status"] == "Available"
    assert current["1"] == {
        "serviceId": "1",
        "status": "Faulted",
        "errorCode": "OverVoltage",
        "info": "too high",
        "vendorId": "Ding",
        "vendorErrorCode": "E17",
        "timestamp": iso(at(2)),
        "receivedAt": current["1"]["receivedAt"],
    }
    assert [h["status"] for h in report["history"]] == [
        "Charging",
        "Faulted",
        "Available",
        "Available",
    ]
    status, short = await api.get("/api/gateways/status-1/status", history="1")
    assert len(short["history"]) == 1
    status, error = await api.get("/api/gateways/status-1/status", history="x")
    assert status == 400 and "history" in error["error"]


async def test_meter_values_with_every_filter(service: ServiceProcess, api: Api) -> None:
    power = t.Measurand.POWER_ACTIVE_IMPORT
    async with gateway(service.ws_url, "meter-1") as gw:
        await gw.boot_notification("DX-100")
        for minute in range(4):
            await gw.meter_values(
                1,
                [
                    t.MeterValue(
                        timestamp=at(minute),
                        sampled_value=[
                            sample(str(1000 + minute)),  # spec defaults: energy, Wh
                            sample(
                                str(7.5 + minute), power, unit=t.UnitOfMeasure.KW, phase=t.Phase.L1
                            ),
                        ],
                    )
                ],
            )
        await gw.meter_values(2, [t.MeterValue(timestamp=at(10), sampled_value=[sample("5")])])

    base = "/api/gateways/meter-1/meter-values"
    status, everything = await api.get(base)
    assert status == 200
    assert everything["count"] == 9
    newest = everything["items"][0]
    assert newest["timestamp"] == iso(at(10)) and newest["serviceId"] == 2
    energy = everything["items"][-1]
    assert energy["measurand"] == "Energy.Active.Import.Register"
    assert energy["unit"] == "Wh" and energy["context"] == "Sample.Periodic"
    assert energy["location"] == "Outlet" and energy["format"] == "Raw"
    assert energy["phase"] is None

    _, by_service = await api.get(base, service="2")
    assert [i["value"] for i in by_service["items"]] == ["5"]
    _, by_measurand = await api.get(base, measurand="Power.Active.Import")
    assert by_measurand["count"] == 4
    assert all(i["unit"] == "kW" and i["phase"] == "L1" for i in by_measurand["items"])
    _, window = await api.get(base, since=iso(at(1)), until=iso(at(2)), measurand=power.value)
    assert [i["value"] for i in window["items"]] == ["9.5", "8.5"]
    # Any offset is accepted. An unencoded "+" arrives as a space, which is not RFC 3339:
    # refused, and the message says how to write it.
    _, offset = await api.get(base, since="2026-11-23T20:03:00+02:00", service="1")
    assert {i["timestamp"] for i in offset["items"]} == {iso(at(3))}
    status, raw_plus = await api.request("GET", base + "?since=2026-11-23T20:03:00+02:00&service=1")
    assert status == 400 and "%2B" in raw_plus["error"] and raw_plus["parameter"] == "since"
    _, limited = await api.get(base, limit="3", order="asc")
    assert [i["timestamp"] for i in limited["items"]] == [iso(at(0)), iso(at(0)), iso(at(1))]

    for params, needle in (
        ({"service": "x"}, "service"),
        ({"service": "-1"}, "service"),
        ({"measurand": "Bogus"}, "measurand"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-23T18:00:00"}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"order": "up"}, "order"),
    ):
        status, body = await api.get(base, **params)
        assert status == 400, params
        assert needle in body["error"], (params, body)
    # since after until: a valid, empty range.
    status, body = await api.get(base, since=iso(at(5)), until=iso(at(1)))
    assert status == 200 and body["items"] == []
    status, body = await api.get("/api/gateways/nobody/meter-values")
    assert status == 404 and "unknown gateway" in body["error"]


async def test_frame_log(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "frames-1") as gw:
        await gw.boot_notification("DX-100")
        await gw.heartbeat()
        await gw.heartbeat()
        status, _ = await api.call("frames-1", "ClearCache", {})
        assert status == 200

    base = "/api/gateways/frames-1/messages"
    status, log = await api.get(base)
    assert status == 200
    kinds = [(m["direction"], m["messageType"], m["action"]) for m in log["items"]]
    assert ("in", "CALL", "BootNotification") in kinds
    assert ("out", "CALLRESULT", "BootNotification") in kinds
    assert ("out", "CALL", "ClearCache") in kinds
    assert ("in", "CALLRESULT", "ClearCache") in kinds
    boot = next(
        m for m in log["items"] if m["action"] == "BootNotification" and m["direction"] == "in"
    )
    frame = json.loads(boot["raw"])
    assert frame[0] == 2 and frame[1] == boot["uniqueId"] and frame[2] == "BootNotification"
    assert frame[3] == {"dingxGatewayModel": "DX-100"}

    _, beats = await api.get(base, action="Heartbeat")
    assert beats["count"] == 4 and {m["action"] for m in beats["items"]} == {"Heartbeat"}
    _, one = await api.get(base, action="Heartbeat", limit="1", direction="out")
    assert one["count"] == 1 and one["items"][0]["messageType"] == "CALLRESULT"
    _, recent = await api.get(base, since=log["items"][0]["time"])
    assert 1 <= recent["count"] <= log["count"]
    assert all(m["time"] >= log["items"][0]["time"] for m in recent["items"])
    _, none = await api.get(base, since="2999-01-01T00:00:00Z")
    assert none["count"] == 0
    for params in (
        {"action": "Nope"},
        {"limit": "abc"},
        {"direction": "up"},
        {"since": "not-a-time"},
    ):
        status, body = await api.get(base, **params)
        assert status == 400 and body["error"], params


async def test_firmware_diagnostics_and_data_transfer(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "fw-1") as gw:
        await gw.boot_notification("DX-100")
        for fw_status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await gw.firmware_status_notification(fw_status)
        await gw.diagnostics_status_notification(firmware.DiagnosticsStatus.UPLOADING)
        await gw.diagnostics_status_notification(firmware.DiagnosticsStatus.UPLOADED)
        answer = await gw.data_transfer("Ding", message_id="hello", data="42")
        assert answer.status is core.DataTransferStatus.ACCEPTED

    status, fw = await api.get("/api/gateways/fw-1/firmware-status")
    assert status == 200
    assert fw["current"]["status"] == "Installed"
    assert [h["status"] for h in fw["history"]] == [
        "Installed",
        "Installing",
        "Downloaded",
        "Downloading",
    ]
    _, diag = await api.get("/api/gateways/fw-1/diagnostics-status")
    assert diag["current"]["status"] == "Uploaded" and len(diag["history"]) == 2
    _, transfers = await api.get("/api/gateways/fw-1/data-transfers")
    assert transfers["items"][0]["vendorId"] == "Ding"
    assert transfers["items"][0]["messageId"] == "hello"
    assert transfers["items"][0]["data"] == "42"
    status, _ = await api.get("/api/gateways/unknown-x/firmware-status")
    assert status == 404
    status, _ = await api.get("/api/gateways/fw-1/diagnostics-status", limit="0")
    assert status == 400


async def test_resent_unique_id_is_stored_once(
    service: ServiceProcess, api: Api, http: aiohttp.ClientSession
) -> None:
    payload = {
        "serviceId": 3,
        "meterValue": [
            {
                "timestamp": "2026-11-23T18:00:00.000Z",
                "sampledValue": [{"value": "1"}, {"value": "2", "measurand": "Voltage"}],
            }
        ],
    }
    _, before = await api.get("/metrics")
    ws = await raw_connect(http, service.ws_url, "dup-1")
    try:
        for _ in range(2):  # store and forward re-sends with the same unique id (spec §6.2)
            await ws.send_str(json.dumps([2, "dup-id-1", "MeterValues", payload]))
            answer = json.loads(await ws.receive_str(timeout=5))
            assert answer == [3, "dup-id-1", {}]
        await ws.send_str(
            json.dumps(
                [
                    2,
                    "dup-id-2",
                    "StatusNotification",
                    {"serviceId": "3", "errorCode": "NoError", "status": "Available"},
                ]
            )
        )
        await ws.send_str(
            json.dumps(
                [
                    2,
                    "dup-id-2",
                    "StatusNotification",
                    {"serviceId": "3", "errorCode": "NoError", "status": "Available"},
                ]
            )
        )
        assert json.loads(await ws.receive_str(timeout=5)) == [3, "dup-id-2", {}]
        assert json.loads(await ws.receive_str(timeout=5)) == [3, "dup-id-2", {}]
    finally:
        await ws.close()
    _, samples = await api.get("/api/gateways/dup-1/meter-values")
    assert samples["count"] == 2
    _, report = await api.get("/api/gateways/dup-1/status")
    assert len(report["history"]) == 1
    _, after = await api.get("/metrics")
    assert _metric(after, 'ntxcp_duplicates_dropped_total{action="MeterValues"}') == (
        _metric(before, 'ntxcp_duplicates_dropped_total{action="MeterValues"}') + 1
    )
    assert _metric(after, 'ntxcp_duplicates_dropped_total{action="StatusNotification"}') >= 1
    assert _metric(after, "ntxcp_meter_samples_stored_total") >= (
        _metric(before, "ntxcp_meter_samples_stored_total") + 2
    )


def _metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
