"""Per-message bounds the service enforces on what gateways send (issue: hostile peers).

A MeterValues carries at most ``MAX_SAMPLED_VALUES`` sampled values (protocol notes);
more is refused with ``OccurrenceConstraintViolation`` before anything is stored, and
the connection stays usable.
"""

from __future__ import annotations

import json
import platform
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import WAIT

from ntxcp.service import Service, ServiceConfig
from ntxcp.service.config import AuthMode, UnknownGatewayPolicy
from ntxcp.service.handlers import MAX_SERVICES_PER_GATEWAY
from ntxcp.service.memory import release_free_memory
from ntxcp.service.passwords import PasswordVerifier
from ntxcp.service.service import exposure_warning
from ntxcp.v10.types import MAX_SAMPLED_VALUES

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service accepting any gateway."""
    async with Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "l.sqlite"))) as svc:
        yield svc


def _meter_values(*samples_per_entry: int) -> dict[str, Any]:
    entries = [
        {"timestamp": "2026-12-01T10:00:00Z", "sampledValue": [{"value": "5"}] * count}
        for count in samples_per_entry
    ]
    return {"serviceId": 1, "meterValue": entries}


async def test_meter_values_beyond_the_bound_are_refused(service: Service) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{service.ws_url}/GW-big", protocols=("ntxcp1.0",)) as ws,
    ):

        async def call(unique_id: str, action: str, payload: Any) -> Any:
            await ws.send_str(json.dumps([2, unique_id, action, payload]))
            return json.loads(await ws.receive_str(timeout=WAIT))

        boot = {"dingxGatewayModel": "DX", "dingxGatewayVendor": "Ding"}
        assert (await call("b", "BootNotification", boot))[2]["status"] == "Accepted"
        half = MAX_SAMPLED_VALUES // 2
        refused = await call("m1", "MeterValues", _meter_values(half, half, 1))
        assert refused[:3] == [4, "m1", "OccurrenceConstraintViolation"]
        assert "at most 1000" in refused[3] and refused[4] == {}
        assert (await call("m2", "MeterValues", _meter_values(half, half)))[0] == 3
    # One message stored (its samples packed in one row), the refused one not at all.
    rows = await service.storage.read(
        lambda conn: conn.execute(
            "SELECT count(*) FROM meter_messages WHERE gateway_id = 'GW-big'"
        ).fetchone()[0]
    )
    assert rows == 1
    assert service.metrics.meter_samples.value() == MAX_SAMPLED_VALUES


async def test_refused_ids_are_counted_not_stored(tmp_path: Path) -> None:
    config = ServiceConfig(
        port=0,
        api_port=0,
        db=str(tmp_path / "r.sqlite"),
        unknown_gateways=UnknownGatewayPolicy.REJECT,
    )
    async with Service(config) as service, aiohttp.ClientSession() as http:
        service.handler.refused.capacity = 5
        boot = {"dingxGatewayModel": "DX", "dingxGatewayVendor": "Ding"}
        for n in range(8):
            async with http.ws_connect(
                f"{service.ws_url}/made-up-{n}", protocols=("ntxcp1.0",)
            ) as ws:
                await ws.send_str(json.dumps([2, "b", "BootNotification", boot]))
                answer = json.loads(await ws.receive_str(timeout=WAIT))
                assert answer[2]["status"] == "Rejected"
                await ws.send_str(json.dumps([2, "m", "MeterValues", _meter_values(1)]))
                refused = json.loads(await ws.receive_str(timeout=WAIT))
                assert refused[:3] == [4, "m", "SecurityError"]
        assert service.storage.gateways == {}
        refused_ids = [item["id"] for item in service.handler.refused.recent()]
        assert refused_ids == [f"made-up-{n}" for n in (7, 6, 5, 4, 3)]
        assert service.handler.refused.total == 8
        async with http.get(service.api_url + "api/gateways") as listed:
            assert (await listed.json())["count"] == 0
        tables = ("gateways", "meter_messages", "status_history")
        counts = await service.storage.read(
            lambda conn: [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        )
        assert counts == [0, 0, 0]


def test_an_open_unauthenticated_listener_is_warned_about() -> None:
    def config(**options: Any) -> ServiceConfig:
        return ServiceConfig(**options)

    for host in ("0.0.0.0", "::", ""):
        warning = exposure_warning(config(host=host))
        assert warning is not None and "--auth none" in warning, host
    assert exposure_warning(config(host="127.0.0.1")) is None
    assert exposure_warning(config(host="10.1.2.3")) is None
    assert exposure_warning(config(host="0.0.0.0", auth=AuthMode.BASIC)) is None
    assert exposure_warning(config(host="0.0.0.0", client_ca="ca.pem")) is None


def test_failed_password_outcomes_are_kept_apart_and_bounded() -> None:
    verifier = PasswordVerifier(capacity=10, failure_capacity=3)
    verifier.remember("GW-1", "right", "hash", True)
    for n in range(50):  # guesses are free to invent
        verifier.remember("GW-1", f"guess {n}", "hash", False)
    assert len(verifier) == 4
    assert verifier.cached("GW-1", "right", "hash") is True  # not pushed out
    assert verifier.cached("GW-1", "guess 49", "hash") is False
    assert verifier.cached("GW-1", "guess 0", "hash") is None
    verifier.forget()
    assert len(verifier) == 0


def test_free_memory_goes_back_to_the_system() -> None:
    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")


async def test_status_notifications_for_more_services_than_kept_are_refused(
    service: Service,
) -> None:
    """``serviceId`` of a StatusNotification is any CiString50 (spec §4.1): a gateway that
    invents new ones would grow the current-status table and the overview's memory
    without end. Past ``MAX_SERVICES_PER_GATEWAY`` services, a new one is refused with
    ``PropertyConstraintViolation``; the services it has keep being updated."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{service.ws_url}/GW-many", protocols=("ntxcp1.0",)) as ws,
    ):

        async def status(unique_id: str, service_id: str, state: str = "Available") -> Any:
            payload = {"serviceId": service_id, "errorCode": "NoError", "status": state}
            await ws.send_str(json.dumps([2, unique_id, "StatusNotification", payload]))
            return json.loads(await ws.receive_str(timeout=WAIT))

        boot = {"dingxGatewayModel": "DX", "dingxGatewayVendor": "Ding"}
        await ws.send_str(json.dumps([2, "b", "BootNotification", boot]))
        assert json.loads(await ws.receive_str(timeout=WAIT))[2]["status"] == "Accepted"
        for number in range(MAX_SERVICES_PER_GATEWAY):
            assert (await status(f"s{number}", f"svc-{number}"))[0] == 3
        refused = await status("new", "svc-new")
        assert refused[:3] == [4, "new", "PropertyConstraintViolation"]
        assert f"{MAX_SERVICES_PER_GATEWAY} services" in refused[3]
        assert (await status("old", "svc-7", "Charging"))[0] == 3  # a known one: updated
    rows = await service.storage.read(
        lambda conn: conn.execute(
            "SELECT count(*), sum(status = 'Charging') FROM status_current "
            "WHERE gateway_id = 'GW-many'"
        ).fetchone()
    )
    assert tuple(rows) == (MAX_SERVICES_PER_GATEWAY, 1)
