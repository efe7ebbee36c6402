"""The Ding.X Gateway endpoint (spec §6.2; Go API ``DingXGateway``), asyncio flavour."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ntxcp.endpoints._dispatch import Dispatcher
from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._session import FrameTap, Session
from ntxcp.endpoints.backoff import Backoff
from ntxcp.errors import (
    EndpointError,
    HandshakeRefusedError,
    NotConnectedError,
)
from ntxcp.rpc import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    Role,
    RpcConnection,
)
from ntxcp.transport import ClientOptions, connect, valid_gateway_id
from ntxcp.transport.options import DEFAULT_MAX_MESSAGE_SIZE
from ntxcp.v10 import core, firmware, remotetrigger, types
from ntxcp.v10._base import Confirmation, Profile, Request

__all__ = ["Gateway"]

_log = logging.getLogger("ntxcp.gateway")

StateHandler = Callable[[], object]


class Gateway:
    """A Ding.X Gateway: connects to a control center and talks ntxcp 1.0 (spec §6.2).

    ::

        gw = Gateway("GW-1")
        gw.set_core_handler(MyCoreHandler())
        await gw.start("ws://127.0.0.1:8887/ntxcp")
        boot = await gw.boot_notification("DX-100", dingx_gateway_vendor="Ding")
        await gw.stop()

    After an unexpected disconnect it reconnects with exponential backoff until
    :meth:`stop` (spec §6.2); :attr:`is_connected` is false meanwhile.

    Args:
        gateway_id: the gateway's id, appended to the URL (1..48 printable ASCII).
        password: secret for HTTP Basic auth (security profiles 1/2).
        ssl: client TLS context (custom CA, client certificate for profile 3), see
            :func:`ntxcp.transport.client_tls_context`.
        extra_headers: more HTTP headers for the upgrade request.
        connect_timeout: seconds for TCP + TLS + upgrade.
        strict: reject unknown payload fields (spec §4); ``False`` ignores them.
        call_timeout: default seconds before a G→C call fails (spec §2.3.2).
        queue_capacity: requests that may wait behind the one in flight (§2.3.1).
        bad_message_limit: bad messages per minute before closing (§2.2 rule 7).
        ping_interval: seconds of silence before a ping (``None``: no pings).
        ping_timeout: seconds to wait for the pong.
        max_message_size: largest message in bytes.
        reconnect: reconnect after unexpected disconnects (default on).
        backoff: reconnect delays (spec defaults).
        error_capacity: reports kept on the error stream for a reader.
    """

    def __init__(
        self,
        gateway_id: str,
        *,
        password: str | None = None,
        ssl: Any = None,
        extra_headers: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        strict: bool = True,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        bad_message_limit: int | None = DEFAULT_BAD_MESSAGE_LIMIT,
        ping_interval: float | None = 30.0,
        ping_timeout: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        error_capacity: int = 1000,
    ) -> None:
        if not valid_gateway_id(gateway_id):
            raise ValueError("gateway id must be 1..48 printable ASCII characters without '/'")
        self.gateway_id = gateway_id
        self._options = ClientOptions(
            credentials=(gateway_id, password) if password is not None else None,
            ssl=ssl,
            extra_headers=dict(extra_headers or {}),
            connect_timeout=connect_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_message_size=max_message_size,
        )
        self.strict = strict
        self.call_timeout = call_timeout
        self.queue_capacity = queue_capacity
        self.bad_message_limit = bad_message_limit
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self._dispatcher = Dispatcher(Role.GATEWAY)
        self._log = logging.LoggerAdapter(_log, {"gateway_id": gateway_id})
        self._errors = ErrorStream(_log, error_capacity)
        self._url: str | None = None
        self._session: Session | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected = asyncio.Event() if _has_loop() else None
        self._on_connected: StateHandler | None = None
        self._on_disconnected: StateHandler | None = None
        self._tap: FrameTap | None = None
        self.connect_count = 0

    # --- handlers (Go: Set*Handler) --------------------------------------------------

    def set_core_handler(self, handler: core.GatewayHandler | None) -> None:
        """Register the handler of core-profile CALLs from the control center (§5)."""
        self._dispatcher.set_handler(Profile.CORE, handler)

    def set_firmware_management_handler(self, handler: firmware.GatewayHandler | None) -> None:
        """Register the handler of firmware-profile CALLs from the control center (§5)."""
        self._dispatcher.set_handler(Profile.FIRMWARE, handler)

    def set_remote_trigger_handler(self, handler: remotetrigger.GatewayHandler | None) -> None:
        """Register the handler of TriggerMessage CALLs (spec §4.3)."""
        self._dispatcher.set_handler(Profile.REMOTE_TRIGGER, handler)

    def set_connected_handler(self, handler: StateHandler | None) -> None:
        """Set a hook called after every successful (re)connection."""
        self._on_connected = handler

    def set_disconnected_handler(self, handler: StateHandler | None) -> None:
        """Set a hook called after every lost connection."""
        self._on_disconnected = handler

    def set_frame_logger(self, tap: FrameTap | None) -> None:
        """Set ``tap(gateway_id, direction, frame)``, called for every frame in and out."""
        self._tap = tap

    # --- lifecycle -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether the gateway is connected now (false while reconnecting)."""
        return self._session is not None and self._session.is_open

    @property
    def url(self) -> str | None:
        """The full URL (``<control center URL>/<gatewayId>``) after :meth:`start`."""
        return self._url

    async def start(self, url: str, *, retry: bool = False) -> None:
        """Connect to ``<url>/<gatewayId>`` (spec §6.2).

        Args:
            url: the control center's base URL, e.g. ``ws://host:8887/ntxcp``.
            retry: keep trying with the reconnect backoff until connected (or
                ``backoff.max_attempts``); by default one attempt is made and its
                failure raised (Go ``Start``).

        Raises:
            HandshakeRefusedError: the server refused the upgrade.
            OSError, TimeoutError: the connection could not be opened.
        """
        if self._supervisor is not None:
            raise RuntimeError("gateway already started")
        self._url = url.rstrip("/") + "/" + quote(self.gateway_id, safe="")
        self._stopping = False
        if self._connected is None:
            self._connected = asyncio.Event()
        if retry:
            await self._connect_with_backoff()
        else:
            await self._connect_once()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        """Close with 1000, fail pending calls and stop reconnecting (spec §6.2)."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        session = self._session
        if session is not None:
            session.close(1000, "gateway stopping")
            try:
                await asyncio.wait_for(session.wait_closed(), 5.0)
            except TimeoutError:
                if session.link is not None:
                    session.link.abort()
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        self._errors.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the gateway is connected (e.g. after a reconnect)."""
        if self.is_connected:
            return
        assert self._connected is not None
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def errors(self) -> AsyncIterator[EndpointError]:
        """The error stream (Go ``Errors()``)."""
        return self._errors.__aiter__()

    @property
    def error_stream(self) -> ErrorStream:
        """The error stream object (counters and non-blocking access)."""
        return self._errors

    async def _connect_once(self) -> None:
        assert self._url is not None
        rpc = RpcConnection(
            Role.GATEWAY,
            profiles=self._dispatcher.profiles,
            strict=self.strict,
            call_timeout=self.call_timeout,
            queue_capacity=self.queue_capacity,
            bad_message_limit=self.bad_message_limit,
        )
        session = Session(
            rpc,
            self._dispatcher,
            (),
            self._errors.report,
            self._closed,
            self.gateway_id,
            _log,
            tap=self._tap,
        )
        await connect(self._url, self._options, session)
        if session.rpc.closed:  # closed during the handshake
            raise NotConnectedError("connection closed right after the handshake")
        self._session = session
        self.connect_count += 1
        assert self._connected is not None
        self._connected.set()
        self._log.info("[%s] connected to %s", self.gateway_id, self._url)
        self._call_hook(self._on_connected)

    async def _connect_with_backoff(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._connect_once()
                return
            except (OSError, TimeoutError, HandshakeRefusedError, NotConnectedError) as exc:
                attempt += 1
                if self.backoff.exhausted(attempt):
                    raise
                permanent = isinstance(exc, HandshakeRefusedError) and exc.permanent
                # A refusal that retrying cannot change waits the longest delay.
                delay = self.backoff.maximum if permanent else self.backoff.delay(attempt - 1)
                self._errors.report(
                    EndpointError(
                        "connection-error",
                        f"{exc}; retrying in {delay:.1f} s",
                        gateway_id=self.gateway_id,
                    )
                )
                await asyncio.sleep(delay)
        raise NotConnectedError("gateway stopped")

    async def _supervise(self) -> None:
        """Reconnect after unexpected disconnects until :meth:`stop` (spec §6.2)."""
        while not self._stopping:
            session = self._session
            if session is not None:
                await session.wait_closed()
            if self._stopping or not self.reconnect:
                return
            try:
                await self._connect_with_backoff()
            except Exception:  # noqa: BLE001 - exhausted attempts end the supervisor
                self._log.error("[%s] giving up reconnecting", self.gateway_id)
                return

    def _closed(self, session: Session, code: int, reason: str) -> None:
        if self._session is session:
            assert self._connected is not None
            self._connected.clear()
            self._log.info("[%s] disconnected (%d %s)", self.gateway_id, code, reason)
            self._call_hook(self._on_disconnected)

    def _call_hook(self, hook: StateHandler | None) -> None:
        if hook is None:
            return
        try:
            result = hook()
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)
        except Exception:  # noqa: BLE001 - an application hook never kills the gateway
            self._log.exception("[%s] state hook raised", self.gateway_id)

    # --- requests --------------------------------------------------------------------

    def _live_session(self) -> Session:
        session = self._session
        if session is None or not session.is_open:
            raise NotConnectedError(f"gateway {self.gateway_id!r} is not connected")
        return session

    async def send_request(self, request: Request, *, timeout: float | None = None) -> Confirmation:
        """Send any G→C request and wait for its confirmation (Go ``SendRequest``).

        Raises:
            NotConnectedError: not connected (immediately).
            CallError: the control center answered a CALLERROR, or its answer was invalid.
            CallTimeoutError: no answer within ``timeout`` (default ``call_timeout``).
            DisconnectedError: the connection closed first.
            QueueFullError: too many requests wait already.
            PayloadValidationError: the request itself is invalid.
        """
        return await self._live_session().send_call(request, timeout)

    def send_request_async(
        self,
        request: Request,
        callback: Callable[[Confirmation | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs exactly once later.

        Errors that prevent sending are raised here and the callback is never called
        (Go ``SendRequestAsync``).
        """
        future = self._live_session().send_call(request, timeout)

        def done(f: asyncio.Future[Confirmation]) -> None:
            if f.cancelled():
                callback(None, asyncio.CancelledError())
            elif f.exception() is not None:
                callback(None, f.exception())
            else:
                callback(f.result(), None)

        future.add_done_callback(done)

    async def _send(self, request: Request, timeout: float | None) -> Any:
        return await self._live_session().send_call(request, timeout)

    async def boot_notification(
        self,
        dingx_gateway_model: str,
        *,
        dingx_gateway_vendor: str | None = None,
        dingx_gateway_serial_number: str | None = None,
        firmware_version: str | None = None,
        iccid: str | None = None,
        imsi: str | None = None,
        meter_type: str | None = None,
        meter_serial_number: str | None = None,
        timeout: float | None = None,
    ) -> core.BootNotificationConfirmation:
        """Tell the control center the gateway booted (spec §4.1 BootNotification)."""
        request = core.BootNotificationRequest(
            dingx_gateway_model=dingx_gateway_model,
            dingx_gateway_vendor=dingx_gateway_vendor,
            dingx_gateway_serial_number=dingx_gateway_serial_number,
            firmware_version=firmware_version,
            iccid=iccid,
            imsi=imsi,
            meter_type=meter_type,
            meter_serial_number=meter_serial_number,
        )
        result: core.BootNotificationConfirmation = await self._send(request, timeout)
        return result

    async def heartbeat(self, *, timeout: float | None = None) -> core.HeartbeatConfirmation:
        """Tell the control center the gateway is alive (spec §4.1 Heartbeat)."""
        result: core.HeartbeatConfirmation = await self._send(core.HeartbeatRequest(), timeout)
        return result

    async def status_notification(
        self,
        service_id: str,
        error_code: core.DingxGatewayErrorCode | str,
        status: core.DingxGatewayStatus | str,
        *,
        info: str | None = None,
        timestamp: datetime | None = None,
        vendor_id: str | None = None,
        vendor_error_code: str | None = None,
        timeout: float | None = None,
    ) -> core.StatusNotificationConfirmation:
        """Report the status of a service (``"0"``: the whole gateway; spec §4.1)."""
        request = core.StatusNotificationRequest(
            service_id=service_id,
            error_code=core.DingxGatewayErrorCode(error_code),
            status=core.DingxGatewayStatus(status),
            info=info,
            timestamp=timestamp,
            vendor_id=vendor_id,
            vendor_error_code=vendor_error_code,
        )
        result: core.StatusNotificationConfirmation = await self._send(request, timeout)
        return result

    async def meter_values(
        self,
        service_id: int,
        meter_value: Sequence[types.MeterValue],
        *,
        timeout: float | None = None,
    ) -> core.MeterValuesConfirmation:
        """Send sampled meter values of a service (spec §4.1 MeterValues)."""
        request = core.MeterValuesRequest(service_id=service_id, meter_value=list(meter_value))
        result: core.MeterValuesConfirmation = await self._send(request, timeout)
        return result

    async def data_transfer(
        self,
        vendor_id: str,
        *,
        message_id: str | None = None,
        data: str | None = None,
        timeout: float | None = None,
    ) -> core.DataTransferConfirmation:
        """Send vendor-specific data to the control center (spec §4.1 DataTransfer)."""
        request = core.DataTransferRequest(vendor_id=vendor_id, message_id=message_id, data=data)
        result: core.DataTransferConfirmation = await self._send(request, timeout)
        return result

    async def diagnostics_status_notification(
        self, status: firmware.DiagnosticsStatus | str, *, timeout: float | None = None
    ) -> firmware.DiagnosticsStatusNotificationConfirmation:
        """Report the progress of a diagnostics upload (spec §4.2)."""
        request = firmware.DiagnosticsStatusNotificationRequest(
            status=firmware.DiagnosticsStatus(status)
        )
        result: firmware.DiagnosticsStatusNotificationConfirmation = await self._send(
            request, timeout
        )
        return result

    async def firmware_status_notification(
        self, status: firmware.FirmwareStatus | str, *, timeout: float | None = None
    ) -> firmware.FirmwareStatusNotificationConfirmation:
        """Report the progress of a firmware update (spec §4.2)."""
        request = firmware.FirmwareStatusNotificationRequest(
            status=firmware.FirmwareStatus(status)
        )
        result: firmware.FirmwareStatusNotificationConfirmation = await self._send(
            request, timeout
        )
        return result


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
