"""Revoking a gateway closes its connection (spec §1; issue: hostile peers, finding 10).

Removing a gateway (``DELETE /api/gateways/{id}``) or changing its secret closes its
live connection with 1008; nothing it sends afterwards is stored, and the removed
record is not re-created.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import WAIT, Api, gateway, until

import ntxcp
from ntxcp import CallError, ErrorCode
from ntxcp.service import Service, ServiceConfig
from ntxcp.service.config import AuthMode, UnknownGatewayPolicy
from ntxcp.service.passwords import hash_password
from ntxcp.v10 import core
from ntxcp.v10 import types as t

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service with Basic auth."""
    config = ServiceConfig(port=0, api_port=0, db=str(tmp_path / "r.sqlite"), auth=AuthMode.BASIC)
    async with Service(config) as service:
        yield service


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession() as session:
        yield session


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _connect(
    http: aiohttp.ClientSession, service: Service, user: str, password: str
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(
        f"{service.ws_url}/{user}", protocols=("ntxcp1.0",), headers=_auth(user, password)
    )


async def _call(ws: aiohttp.ClientWebSocketResponse, unique_id: str, action: str, body: Any) -> Any:
    await ws.send_str(json.dumps([2, unique_id, action, body]))
    return json.loads(await ws.receive_str(timeout=WAIT))


_METER = {
    "serviceId": 1,
    "meterValue": [{"timestamp": "2026-12-01T10:00:00Z", "sampledValue": [{"value": "7"}]}],
}


def _rows(db: str, table: str, gateway_id: str) -> int:
    column = "id" if table == "gateways" else "gateway_id"
    with sqlite3.connect(db) as conn:
        found = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (gateway_id,))
        return int(found.fetchone()[0])


async def test_removing_a_gateway_closes_its_connection(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, None)
    status, _ = await api.post("/api/gateways", {"id": "GW-3", "password": "pw"})
    assert status == 201
    ws = await _connect(http, service, "GW-3", "pw")
    boot = await _call(
        ws, "b1", "BootNotification", {"dingxGatewayModel": "DX", "dingxGatewayVendor": "Ding"}
    )
    assert boot[2]["status"] == "Accepted"
    answer = await _call(ws, "m1", "MeterValues", _METER)
    assert answer[0] == 3, answer
    assert await api.request("DELETE", "/api/gateways/GW-3") == (204, None)
    closing = await ws.receive(timeout=WAIT)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert (closing.data, closing.extra) == (1008, "gateway removed")
    assert not service.control_center.is_connected("GW-3")
    # The record stays gone (also after the close was recorded); reconnects are refused.
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _connect(http, service, "GW-3", "pw")
    assert refused.value.status == 401
    assert (await api.get("/api/gateways/GW-3"))[0] == 404
    service.storage.flush()
    await until(lambda: _settled(service, "GW-3"))
    assert _rows(service.config.db, "gateways", "GW-3") == 0
    assert _rows(service.config.db, "meter_messages", "GW-3") == 0


async def _settled(service: Service, gateway_id: str) -> bool:
    await service.storage.read(lambda conn: None)  # everything posted before is written
    return "GW-3" not in service.storage.gateways


async def test_a_new_password_closes_the_connection(service: Service) -> None:
    old, new = await asyncio.gather(*(asyncio.to_thread(hash_password, p) for p in "ab"))
    await service.set_gateway_password("GW-1", old)
    async with gateway(service.ws_url, "GW-1", password="a") as gw:
        await gw.heartbeat()
        await service.set_gateway_password("GW-1", new)
        await until(_not_connected(gw))
        assert gw.last_close == (1008, "gateway credentials changed")
    with pytest.raises(Exception) as refused:
        async with gateway(service.ws_url, "GW-1", password="a"):
            pass
    assert getattr(refused.value, "status", None) == 401
    async with gateway(service.ws_url, "GW-1", password="b") as gw:
        assert (await gw.heartbeat()).current_time is not None
    assert service.control_center.disconnect("GW-absent") is False


def _not_connected(gw: Any) -> Any:
    async def check() -> bool:
        return not gw.is_connected

    return check


async def test_calls_waiting_on_a_revoked_connection_store_nothing(service: Service) -> None:
    """A CALL received just before the revocation, handled after it, is refused."""
    request = core.MeterValuesRequest(
        service_id=1,
        meter_value=[
            t.MeterValue(
                timestamp=datetime(2026, 12, 1, tzinfo=UTC),
                sampled_value=[t.SampledValue(value="1")],
            )
        ],
    )
    handler = service.handler
    service.storage.ensure_gateway("GW-gone")
    for call in (
        handler.on_meter_values("GW-gone", request),
        handler.on_boot_notification(
            "GW-gone",
            core.BootNotificationRequest(dingx_gateway_model="DX", dingx_gateway_vendor="Ding"),
        ),
    ):
        with pytest.raises(CallError) as refused:
            await call
        assert refused.value.code is ErrorCode.SECURITY_ERROR
    with pytest.raises(CallError):
        handler.on_heartbeat("GW-gone", core.HeartbeatRequest())
    assert service.storage.gateways["GW-gone"].registration_status is None


# --- removing under --auth none: what keeps a removed gateway out (docs/service.md) ----


def _running_gateway(gateway_id: str) -> ntxcp.Gateway:
    """A gateway that keeps running after its connection is closed: it reconnects."""
    backoff = ntxcp.Backoff(initial=0.2, maximum=0.2)
    return ntxcp.Gateway(gateway_id, heartbeat=False, backoff=backoff, connect_timeout=WAIT)


async def test_open_admission_records_a_removed_gateway_that_is_still_running_anew(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """``--auth none`` admits any id: DELETE closes the connection, nothing keeps it out."""
    config = ServiceConfig(port=0, api_port=0, db=str(tmp_path / "open.sqlite"))
    async with Service(config) as service:
        api = Api(http, service.api_url, None)
        assert (await api.get("/api/whoami"))[1]["gatewayAdmission"] == "open"
        gw = _running_gateway("GW-OPEN")
        await gw.start(service.ws_url)
        try:
            await gw.boot_notification("DX")
            sampled = [t.SampledValue(value="7")]
            await gw.meter_values(
                1, [t.MeterValue(timestamp=datetime.now(UTC), sampled_value=sampled)]
            )
            assert (await api.get("/api/gateways/GW-OPEN/meter-values"))[1]["count"] == 1
            assert await api.request("DELETE", "/api/gateways/GW-OPEN") == (204, None)
            await until(lambda: gw.last_close == (1008, "gateway removed"))
            # Still running, it connects again and is recorded anew, without its history.
            await until(lambda: _connected(api, "GW-OPEN"))
            assert (await api.get("/api/gateways/GW-OPEN/meter-values"))[1]["count"] == 0
        finally:
            await gw.stop()


async def test_under_unknown_gateways_reject_a_removed_gateway_stays_out(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """``--auth none --unknown-gateways reject``: a removed gateway is refused when back."""
    config = ServiceConfig(
        port=0,
        api_port=0,
        db=str(tmp_path / "reject.sqlite"),
        unknown_gateways=UnknownGatewayPolicy.REJECT,
    )
    async with Service(config) as service:
        api = Api(http, service.api_url, None)
        assert (await api.get("/api/whoami"))[1]["gatewayAdmission"] == "registered"
        assert (await api.post("/api/gateways", {"id": "GW-KEPT"}))[0] == 201
        gw = _running_gateway("GW-KEPT")
        await gw.start(service.ws_url)
        try:
            boot = await gw.boot_notification("DX")
            assert boot.status is core.RegistrationStatus.ACCEPTED
            assert await api.request("DELETE", "/api/gateways/GW-KEPT") == (204, None)
            await until(lambda: gw.last_close == (1008, "gateway removed"))
            await until(lambda: _refused(api, "GW-KEPT"))  # it came back and was refused
            assert (await api.get("/api/gateways/GW-KEPT"))[0] == 404
        finally:
            await gw.stop()


async def _connected(api: Api, gateway_id: str) -> bool:
    status, body = await api.get(f"/api/gateways/{gateway_id}")
    return status == 200 and body["connected"] is True


async def _refused(api: Api, gateway_id: str) -> bool:
    _, body = await api.get("/api/refused-gateways")
    return any(item["id"] == gateway_id for item in body["items"])
