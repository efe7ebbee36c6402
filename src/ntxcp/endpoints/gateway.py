"""The Ding.X Gateway endpoint (spec §6.2; Go API ``DingXGateway``), asyncio flavour."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ntxcp.endpoints._dispatch import Dispatcher
from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._hooks import call_hook
from ntxcp.endpoints._session import FrameTap, Session
from ntxcp.endpoints.backoff import Backoff
from ntxcp.endpoints.store import STORED_ACTIONS, MessageStore, StoredMessage, open_store
from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    EndpointError,
    HandshakeRefusedError,
    NotConnectedError,
    QueueFullError,
)
from ntxcp.rpc import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    CallReceived,
    Role,
    RpcConnection,
)
from ntxcp.transport import ClientOptions, connect, valid_gateway_id
from ntxcp.transport.options import DEFAULT_MAX_MESSAGE_SIZE
from ntxcp.v10 import core, firmware, remotetrigger, types
from ntxcp.v10._base import Confirmation, Profile, Request
from ntxcp.v10.codec import decode_payload, encode_payload
from ntxcp.v10.registry import ACTIONS

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

    **Store and forward** (spec §6.2): ``MeterValues``, ``StatusNotification``,
    ``DiagnosticsStatusNotification`` and ``FirmwareStatusNotification`` never fail
    because the link is down. They are written to the outbox (``store``) with the
    ``uniqueId`` they keep on every attempt and delivered in order, one at a time,
    when connected; a message leaves the outbox only once its CALLRESULT arrived. A
    CALLERROR or invalid result moves it to the dead letters and fails the caller.
    The typed methods wait for delivery up to ``timeout`` (a
    :class:`~ntxcp.errors.CallTimeoutError` with ``queued=True`` then says it is
    still queued); :meth:`queue_request` returns as soon as the message is stored.

    **Lifecycle** (optional, on when ``boot`` is given, spec §4.1): after every
    connection the gateway sends ``boot`` and holds back every other G→C message
    until ``Accepted`` (retrying after ``interval`` on Pending/Rejected), then sends
    Heartbeat at the interval the control center gave, and reconnects and boots
    again after answering a ``Reset`` with ``Accepted``.

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
        store: the store-and-forward outbox: ``None`` (in memory), a file path
            (SQLite, survives restarts; a restarted gateway resumes its queue) or a
            :class:`~ntxcp.endpoints.store.MessageStore`.
        boot: the BootNotification to send after every connection; enables the
            lifecycle described above. ``None``: the application boots itself.
        heartbeat: send Heartbeat at the accepted interval (lifecycle only).
        reboot_on_reset: reconnect and boot again after an accepted Reset
            (lifecycle only).
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
        store: MessageStore | str | os.PathLike[str] | None = None,
        boot: core.BootNotificationRequest | None = None,
        heartbeat: bool = True,
        reboot_on_reset: bool = True,
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
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()  # connected and (no lifecycle or boot Accepted)
        self._store = open_store(store)
        self._waiters: dict[int, list[asyncio.Future[Confirmation]]] = {}
        self._wake = asyncio.Event()
        self._forwarder: asyncio.Task[None] | None = None
        self._lifecycle: asyncio.Task[None] | None = None
        self._restart = False
        self.boot = boot
        self.heartbeat_enabled = heartbeat
        self.reboot_on_reset = reboot_on_reset
        self.registration_status: core.RegistrationStatus | None = None
        self.heartbeat_interval: int | None = None
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
        if retry:
            await self._connect_with_backoff()
        else:
            await self._connect_once()
        loop = asyncio.get_running_loop()
        self._supervisor = loop.create_task(self._supervise())
        self._forwarder = loop.create_task(self._forward())

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
        tasks = [t for t in (supervisor, self._forwarder, self._lifecycle) if t is not None]
        self._forwarder = self._lifecycle = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(NotConnectedError("gateway stopped; message stays queued"))
        self._waiters.clear()
        self._store.close()
        self._errors.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the gateway is connected (e.g. after a reconnect)."""
        if self.is_connected:
            return
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until connected and, with the lifecycle on, accepted by the control center."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def queued(self) -> int:
        """Messages waiting in the store-and-forward outbox."""
        return len(self._store)

    @property
    def store(self) -> MessageStore:
        """The store-and-forward outbox (dead letters included)."""
        return self._store

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the outbox is empty (every stored message delivered)."""

        async def drained() -> None:
            while len(self._store):
                message = self._store.peek()
                assert message is not None
                future: asyncio.Future[Confirmation] = asyncio.get_running_loop().create_future()
                self._waiters.setdefault(message.seq, []).append(future)
                await asyncio.gather(future, return_exceptions=True)

        await asyncio.wait_for(drained(), timeout)

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
            after_answer=self._after_answer,
        )
        await connect(self._url, self._options, session)
        if session.rpc.closed:  # closed during the handshake
            raise NotConnectedError("connection closed right after the handshake")
        self._session = session
        self.connect_count += 1
        self._connected.set()
        self._log.info("[%s] connected to %s", self.gateway_id, self._url)
        if self.boot is None:
            self._ready.set()
        else:
            self._lifecycle = asyncio.get_running_loop().create_task(self._run_lifecycle(session))
        self._call_hook(self._on_connected)

    async def _connect_with_backoff(self) -> None:
        attempt = 0
        if self._restart:  # after an accepted Reset: reconnect at once
            self._restart = False
            try:
                await self._connect_once()
                return
            except (OSError, TimeoutError, HandshakeRefusedError, NotConnectedError):
                pass
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
            except Exception:
                self._log.error("[%s] giving up reconnecting", self.gateway_id)
                return

    def _closed(self, session: Session, code: int, reason: str) -> None:
        if self._session is session:
            self._connected.clear()
            self._ready.clear()
            if self._lifecycle is not None:
                self._lifecycle.cancel()
                self._lifecycle = None
            self._log.info("[%s] disconnected (%d %s)", self.gateway_id, code, reason)
            self._call_hook(self._on_disconnected)

    def _call_hook(self, hook: StateHandler | None) -> None:
        call_hook(hook, log=_log, gateway_id=self.gateway_id)

    # --- lifecycle helpers (spec §4.1) --------------------------------------------------

    async def _run_lifecycle(self, session: Session) -> None:
        """Boot until Accepted, then heartbeat, for one connection."""
        assert self.boot is not None
        while session.is_open:
            try:
                conf = await session.send_call(self.boot, None)
            except (CallError, CallTimeoutError) as exc:
                self._errors.report(
                    EndpointError("boot-failed", str(exc), gateway_id=self.gateway_id)
                )
                await asyncio.sleep(self.backoff.delay(0))
                continue
            except NotConnectedError:
                return
            assert isinstance(conf, core.BootNotificationConfirmation)
            self.registration_status = conf.status
            if conf.status is core.RegistrationStatus.ACCEPTED:
                self.heartbeat_interval = conf.interval
                self._ready.set()
                self._log.info("[%s] boot accepted, heartbeat %d s", self.gateway_id, conf.interval)
                break
            # spec §4.1: retry after interval (default 60 s when 0)
            await asyncio.sleep(conf.interval or 60)
        else:
            return
        interval = self.heartbeat_interval
        while self.heartbeat_enabled and interval and session.is_open:
            await asyncio.sleep(interval)
            try:
                await session.send_call(core.HeartbeatRequest(), None)
            except NotConnectedError:
                return
            except (CallError, CallTimeoutError) as exc:
                self._errors.report(
                    EndpointError("heartbeat-failed", str(exc), gateway_id=self.gateway_id)
                )

    def _after_answer(self, call: CallReceived, confirmation: Confirmation) -> None:
        if (
            self.boot is not None
            and self.reboot_on_reset
            and isinstance(confirmation, core.ResetConfirmation)
            and confirmation.status is core.ResetStatus.ACCEPTED
        ):
            session = self._session
            if session is not None:
                self._restart = True
                # Let the CALLRESULT leave first, then "reboot" (spec §4.1 lifecycle).
                asyncio.get_running_loop().call_later(0.05, session.close, 1000, "reset")

    # --- store and forward (spec §6.2) ---------------------------------------------------

    async def _forward(self) -> None:
        """Deliver the outbox in order, one message at a time, while ready."""
        while True:
            message = self._store.peek()
            if message is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._ready.wait()
            session = self._session
            if session is None or not session.is_open:
                await asyncio.sleep(0.01)
                continue
            await self._deliver_one(session, message)

    async def _deliver_one(self, session: Session, message: StoredMessage) -> None:
        spec = ACTIONS[message.action]
        request = decode_payload(spec.request, message.payload)
        try:
            confirmation = await session.send_call(request, None, message.unique_id)
        except (NotConnectedError, QueueFullError):
            await asyncio.sleep(0.01)  # wait for the next connection; same uniqueId
            return
        except CallTimeoutError as exc:
            self._errors.report(
                EndpointError("delivery-retry", str(exc), gateway_id=self.gateway_id)
            )
            await asyncio.sleep(self.backoff.delay(0))
            return
        except CallError as exc:
            self._store.dead_letter(message.seq, exc.code.value, exc.description)
            self._errors.report(
                EndpointError(
                    "dead-letter",
                    f"{message.action} {message.unique_id}: {exc}",
                    gateway_id=self.gateway_id,
                    code=exc.code,
                )
            )
            self._settle(message.seq, error=exc)
            return
        self._store.remove(message.seq)
        self._settle(message.seq, confirmation=confirmation)

    def _settle(
        self,
        seq: int,
        *,
        confirmation: Confirmation | None = None,
        error: BaseException | None = None,
    ) -> None:
        for waiter in self._waiters.pop(seq, ()):
            if waiter.done():
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(confirmation)  # type: ignore[arg-type]

    def queue_request(self, request: Request) -> str:
        """Store a store-and-forward message durably and return its ``uniqueId``.

        Returns as soon as the message is in the outbox; it is delivered in order
        when connected (spec §6.2).

        Raises:
            ValueError: the action is not a store-and-forward action.
            PayloadValidationError: the request is invalid (nothing stored).
            QueueFullError: the outbox is full under the ``"reject"`` policy.
        """
        return self._enqueue(request)[1]

    def _enqueue(self, request: Request) -> tuple[int, str]:
        if request.ACTION not in STORED_ACTIONS:
            raise ValueError(f"{request.ACTION} is not a store-and-forward message")
        payload = encode_payload(request)
        unique_id = str(uuid.uuid4())
        seq = self._store.append(unique_id, request.ACTION, payload)
        self._wake.set()
        return seq, unique_id

    async def _stored_call(self, request: Request, timeout: float | None) -> Confirmation:
        seq, unique_id = self._enqueue(request)
        future: asyncio.Future[Confirmation] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(seq, []).append(future)
        limit = self.call_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            raise CallTimeoutError(request.ACTION, unique_id, limit, queued=True) from None

    # --- requests --------------------------------------------------------------------

    async def _ready_session(self, request: Request, timeout: float | None) -> Session:
        """The session to send on; with the lifecycle on, wait for boot Accepted."""
        session = self._live_session()
        if (
            self.boot is not None
            and not self._ready.is_set()
            and request.ACTION != "BootNotification"
        ):
            limit = self.call_timeout if timeout is None else timeout
            try:
                await asyncio.wait_for(self._ready.wait(), limit)
            except TimeoutError:
                raise CallTimeoutError(request.ACTION, "-", limit) from None
            session = self._live_session()
        return session

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
        confirmation: Confirmation = await self._send(request, timeout)
        return confirmation

    def send_request_async(
        self,
        request: Request,
        callback: Callable[[Confirmation | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs exactly once later.

        Errors that prevent sending are raised here and the callback is never called
        (Go ``SendRequestAsync``). A store-and-forward message is stored instead
        and the callback runs once it is delivered (or dead-lettered).
        """
        future: asyncio.Future[Confirmation]
        if request.ACTION in STORED_ACTIONS:
            seq, _ = self._enqueue(request)
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(seq, []).append(future)
        elif self.boot is not None and not self._ready.is_set():
            future = asyncio.ensure_future(self._send(request, timeout))
        else:
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
        if request.ACTION in STORED_ACTIONS:
            return await self._stored_call(request, timeout)
        session = await self._ready_session(request, timeout)
        return await session.send_call(request, timeout)

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
        request = firmware.FirmwareStatusNotificationRequest(status=firmware.FirmwareStatus(status))
        result: firmware.FirmwareStatusNotificationConfirmation = await self._send(request, timeout)
        return result
