"""Helpers of the control center service tests: the real process, an API client, gateways.

:class:`ServiceProcess` runs ``python -m ntxcp control-center`` as a subprocess on free
ports with a SQLite file in a temporary directory and reads the ready line. Gateways
are the library's own :class:`ntxcp.Gateway`, answering every C→G action; the raw
peer is a bare aiohttp WebSocket client for frames the library never sends twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

import ntxcp
from ntxcp.errors import CallError, ErrorCode
from ntxcp.v10 import core, firmware, remotetrigger
from ntxcp.v10 import types as t
from service_process import READY as READY  # re-exported
from service_process import ServiceProcess as ServiceProcess
from service_process import run_cli as run_cli
from waiting import eventually

TOKEN = "test-token-1234"
T0 = datetime(2026, 11, 23, 18, 0, 0, tzinfo=UTC)
WAIT = 5.0  # upper bound of a wait for something that should happen at once


class Api:
    """A small JSON client of the service's HTTP API.

    Args:
        session: the aiohttp session.
        base: the API's base URL (ending in ``/``).
        token: the bearer token to send (``None``: none).
    """

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.token = token

    def _headers(self, token: str | bool | None) -> dict[str, str]:
        use = self.token if token is True else token
        return {"Authorization": f"Bearer {use}"} if isinstance(use, str) else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        params: dict[str, str] | None = None,
        token: str | bool | None = True,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request; returns (status, decoded JSON body or text or None).

        A ``data`` body is sent as ``content_type`` (JSON unless told otherwise).
        """
        sent = {**self._headers(token), **(headers or {})}
        if data is not None:
            sent["Content-Type"] = content_type
        async with self.session.request(
            method,
            self.base + path,
            json=json,
            data=data,
            params=params,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=15),
        ) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, text or None

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        """GET with query parameters."""
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        """POST a JSON body."""
        return await self.request("POST", path, json=body)

    async def call(self, gateway_id: str, action: str, payload: Any) -> tuple[int, Any]:
        """POST /api/gateways/{id}/calls/{action}."""
        return await self.post(f"/api/gateways/{gateway_id}/calls/{action}", payload)


class AnsweringCore(core.GatewayHandler):
    """Answers every core C→G action; ``ChangeConfiguration`` of key ``fail`` errs."""

    def on_change_configuration(
        self, request: core.ChangeConfigurationRequest
    ) -> core.ChangeConfigurationConfirmation:
        if request.key == "fail":
            raise CallError(ErrorCode.GENERIC_ERROR, "refused by the test", {"key": request.key})
        return core.ChangeConfigurationConfirmation(status=core.ConfigurationStatus.ACCEPTED)

    def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ClearCacheConfirmation:
        return core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)

    def on_data_transfer(self, request: core.DataTransferRequest) -> core.DataTransferConfirmation:
        return core.DataTransferConfirmation(
            status=core.DataTransferStatus.ACCEPTED, data=f"echo:{request.data}"
        )

    def on_get_configuration(
        self, request: core.GetConfigurationRequest
    ) -> core.GetConfigurationConfirmation:
        unknown = [k for k in request.key or [] if k != "HeartbeatInterval"]
        return core.GetConfigurationConfirmation(
            configuration_key=[t.KeyValue(key="HeartbeatInterval", readonly=False, value="300")],
            unknown_key=unknown or None,
        )

    async def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
        if request.type is core.ResetType.HARD:
            await asyncio.sleep(2.0)  # longer than the service's --call-timeout 1
        return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)

    def on_capture_process(
        self, request: core.CaptureProcessRequest
    ) -> core.CaptureProcessConfirmation:
        return core.CaptureProcessConfirmation(
            status=core.CaptureProcessStatus.ACCEPTED,
            datapoints=[
                t.CapturedDatapoint(datapoint_id=d, value="1.5", unit="bar")
                for d in request.datapoint_ids
            ],
        )


class AnsweringFirmware(firmware.GatewayHandler):
    """Answers GetDiagnostics and UpdateFirmware."""

    def on_get_diagnostics(
        self, request: firmware.GetDiagnosticsRequest
    ) -> firmware.GetDiagnosticsConfirmation:
        return firmware.GetDiagnosticsConfirmation(file_name="diagnostics.zip")

    def on_update_firmware(
        self, request: firmware.UpdateFirmwareRequest
    ) -> firmware.UpdateFirmwareConfirmation:
        return firmware.UpdateFirmwareConfirmation()


class AnsweringTrigger(remotetrigger.GatewayHandler):
    """Answers TriggerMessage."""

    def on_trigger_message(
        self, request: remotetrigger.TriggerMessageRequest
    ) -> remotetrigger.TriggerMessageConfirmation:
        return remotetrigger.TriggerMessageConfirmation(
            status=remotetrigger.TriggerMessageStatus.ACCEPTED
        )


@asynccontextmanager
async def gateway(
    ws_url: str, gateway_id: str, *, password: str | None = None, ssl: Any = None
) -> AsyncIterator[ntxcp.Gateway]:
    """A connected library gateway answering every C→G action; stopped at exit."""
    gw = ntxcp.Gateway(
        gateway_id, password=password, ssl=ssl, reconnect=False, connect_timeout=WAIT
    )
    gw.set_core_handler(AnsweringCore())
    gw.set_firmware_management_handler(AnsweringFirmware())
    gw.set_remote_trigger_handler(AnsweringTrigger())
    await gw.start(ws_url)
    try:
        yield gw
    finally:
        await gw.stop()


def sample(
    value: str,
    measurand: t.Measurand | None = None,
    *,
    unit: t.UnitOfMeasure | None = None,
    phase: t.Phase | None = None,
) -> t.SampledValue:
    """One SampledValue."""
    return t.SampledValue(value=value, measurand=measurand, unit=unit, phase=phase)


def at(minutes: int) -> datetime:
    """``T0`` plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def iso(when: datetime) -> str:
    """Spec §3 text of a date-time (UTC, ms, Z)."""
    return t.encode_datetime(when)


until = eventually  # the service tests' name of the shared condition wait


def raw_url(ws_url: str, gateway_id: str) -> str:
    """The URL a raw client connects to."""
    return f"{ws_url}/{gateway_id}"


async def raw_connect(
    session: aiohttp.ClientSession, ws_url: str, gateway_id: str
) -> aiohttp.ClientWebSocketResponse:
    """A bare WebSocket client offering ``ntxcp1.0`` (frames are the test's own)."""
    return await session.ws_connect(
        raw_url(ws_url, gateway_id), protocols=("ntxcp1.0",), autoping=True, heartbeat=None
    )
