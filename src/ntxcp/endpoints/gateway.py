"""The Ding.X Gateway endpoint (spec §6.2; Go API ``DingXGateway``), asyncio flavour."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from ntxcp.endpoints._dispatch import Dispatcher
from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._hooks import call_hook, on_outcome
from ntxcp.endpoints._session import FrameTap, Session
from ntxcp.endpoints.backoff import Backoff
from ntxcp.endpoints.store import (
    STORED_ACTIONS,
    MessageStore,
    StoredMessage,
    StoreFullError,
    open_store,
)
from ntxcp.endpoints.typed_requests import GatewayRequests
from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    EndpointError,
    ErrorCode,
    ErrorKind,
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
from ntxcp.rpc.frames import new_unique_id
from ntxcp.transport import ClientOptions, connect, valid_gateway_id
from ntxcp.transport.options import DEFAULT_MAX_MESSAGE_SIZE
from ntxcp.v10 import AnyRequest, Confirmation, Profile, Request, core, firmware, remotetrigger
from ntxcp.v10.codec import decode_payload, encode_payload
from ntxcp.v10.registry import ACTIONS

__all__ = ["Gateway"]

C = TypeVar("C", bound=Confirmation)

_log = logging.getLogger("ntxcp.gateway")

StateHandler = Callable[[], object]

_DEFAULT_RETRY_INTERVAL = 60
"""Spec §4.1: a Pending/Rejected boot with ``interval`` 0 is retried after 60 s."""

_STOP_CLOSE_WAIT = 5.0
"""Seconds :meth:`Gateway.stop` waits for the closing handshake before dropping."""


def _permanent(exc: BaseException) -> bool:
    """Whether retrying a failed connection soon cannot help (spec §1 refusals).

    401/403 (credentials, connection check), 404 and 400 (path, gateway id,
    subprotocol) and a server that does not select ``ntxcp1.0`` stay refused until
    someone changes the configuration; so does a TLS certificate that fails to verify.
    """
    if isinstance(exc, HandshakeRefusedError):
        return exc.permanent
    return isinstance(exc, ssl.SSLCertVerificationError)


class Gateway(GatewayRequests):
    """A Ding.X Gateway: connects to a control center and talks ntxcp 1.0 (spec §6.2).

    ::

        gw = Gateway("GW-1", store="outbox.db",
                     boot=core.BootNotificationRequest(dingx_gateway_model="DX-100"))
        gw.set_core_handler(MyCoreHandler())
        await gw.start("ws://127.0.0.1:8887/ntxcp", retry=True)
        gw.queue_request(core.MeterValuesRequest(...))   # returns once stored
        await gw.status_notification("0", "NoError", "Available")  # waits for delivery
        await gw.stop()

    **Reconnect** (spec §6.2). After any unexpected close (network error, missed
    pong, close frame from the server, reset) the gateway reconnects until
    :meth:`stop`, waiting ``backoff.delay(n)`` before retry ``n``: 1 s, 2 s, 4 s ...
    up to 60 s, each ±25 % at random (:class:`~ntxcp.endpoints.Backoff`, all
    configurable, ``max_attempts`` to give up). The delays start again from the
    first only once a connection stayed up ``backoff.reset_after`` seconds.
    :attr:`is_connected` is false meanwhile; the connected, reconnected and
    disconnected hooks tell the application. A refusal that retrying cannot change
    (HTTP 400/401/403/404, subprotocol not selected, untrusted certificate) is
    reported as ``"handshake-refused"`` on the error stream, logged as an error and
    retried at the longest delay only. ``start(url, retry=True)`` waits for the
    first connection with the same rules; ``start(url)`` makes one attempt.

    **Store and forward** (spec §6.2). ``MeterValues``, ``StatusNotification``,
    ``DiagnosticsStatusNotification`` and ``FirmwareStatusNotification`` never fail
    because the link is down. Each is validated, written to the outbox (``store``)
    with a ``uniqueId`` it keeps on every attempt, and delivered in order, one at a
    time, by one forwarder task whenever the gateway is connected (and, with the
    lifecycle on, accepted). A message leaves the outbox only once its CALLRESULT
    arrived: a connection lost before the answer (even after the control center
    handled the CALL) makes it go again, same ``uniqueId``, after the reconnect, so
    a control center can drop duplicates by id (:func:`ntxcp.current_call`). A call
    that times out on a live connection is sent again after about
    ``backoff.initial``. A CALLERROR, an invalid CALLRESULT, or a stored payload
    that no longer validates moves the message to the dead letters
    (``store.dead_letters()``), reports ``"dead-letter"`` on the error stream and
    fails whoever waits for it; the next message follows.

    The caller chooses how long to wait: the typed methods (:meth:`meter_values`,
    ...) and :meth:`send_request` wait for the delivery up to ``timeout`` (default
    ``call_timeout``); a :class:`~ntxcp.errors.CallTimeoutError` with
    ``queued=True`` then says the message is still queued and will still be
    delivered (do not send it again). :meth:`queue_request` and
    :meth:`send_request_async` return as soon as the message is stored;
    :meth:`flush` waits for the outbox to drain. Cancelling a waiting caller does
    not take its message out of the outbox. The outbox is bounded; when full, its
    policy refuses the new message (:class:`~ntxcp.endpoints.store.StoreFullError`)
    or drops the oldest (see :mod:`ntxcp.endpoints.store`). With a file store a
    restarted gateway process resumes the queue where it was. :meth:`stop` leaves
    undelivered messages in the outbox and fails their waiters with
    :class:`~ntxcp.errors.NotConnectedError`. Other requests (``DataTransfer``,
    ``Heartbeat``, ``BootNotification``) are not stored: they fail with
    :class:`~ntxcp.errors.NotConnectedError` while disconnected and may overtake
    queued messages.

    **Lifecycle** (optional, on when ``boot`` is given, spec §4.1): after every
    connection the gateway sends ``boot`` and holds back every other G→C message
    (stored ones stay queued, others wait up to their timeout) until ``Accepted``,
    retrying after the ``interval`` of a Pending or Rejected answer (60 s when 0)
    and with the backoff after an error. Then it sends ``Heartbeat`` every
    :attr:`heartbeat_interval` seconds (the accepted ``interval``), and after
    answering a ``Reset`` with ``Accepted`` it closes with 1000, reconnects at once
    and boots again.

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
            :class:`~ntxcp.endpoints.store.MessageStore` (which the gateway then
            never closes).
        boot: the BootNotification to send after every connection; enables the
            lifecycle described above. ``None``: the application boots itself.
        heartbeat: send Heartbeat at the accepted interval (lifecycle only).
        reboot_on_reset: reconnect and boot again after an accepted Reset
            (lifecycle only).

    Raises:
        ValueError: invalid gateway id.
        PayloadValidationError: ``boot`` is not a valid BootNotification.
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
        if boot is not None:
            encode_payload(boot)  # fail now, not after every connection
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
        self._error_capacity = error_capacity
        self._errors = ErrorStream(_log, error_capacity)
        self._errors_closed = False
        self._url: str | None = None
        self._session: Session | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()  # connected and (no lifecycle or boot Accepted)
        self._store_option = store
        self._owns_store = store is None or isinstance(store, str | os.PathLike)
        self._store = open_store(store)
        self._waiters: dict[int, list[asyncio.Future[Any]]] = {}
        self._wake = asyncio.Event()
        self._delivering = False  # a stored message is on the wire (one at a time)
        self._forwarder: asyncio.Task[None] | None = None
        self._lifecycle: asyncio.Task[None] | None = None
        self._restart = False
        self._retry_index = 0  # index of the next backoff delay
        self._connected_at = 0.0
        self.boot = boot
        self.heartbeat_enabled = heartbeat
        self.reboot_on_reset = reboot_on_reset
        self.registration_status: core.RegistrationStatus | None = None
        self.heartbeat_interval: int | None = None
        self.last_error: BaseException | None = None
        self.last_close: tuple[int, str] | None = None
        self._on_connected: StateHandler | None = None
        self._on_reconnected: StateHandler | None = None
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
        """Set a hook called after every successful connection, the first included."""
        self._on_connected = handler

    def set_reconnected_handler(self, handler: StateHandler | None) -> None:
        """Set a hook called after every successful connection but the first (spec §6.2).

        It runs after the connected hook.
        """
        self._on_reconnected = handler

    def set_disconnected_handler(self, handler: StateHandler | None) -> None:
        """Set a hook called after every lost connection (also the one :meth:`stop` closes)."""
        self._on_disconnected = handler

    def set_frame_logger(self, tap: FrameTap | None) -> None:
        """Set ``tap(gateway_id, direction, frame, info)``, called for every frame in and out.

        ``info`` is a :class:`~ntxcp.rpc.FrameInfo` (message type, uniqueId, action,
        error code), as for :meth:`ControlCenter.set_frame_logger`.
        """
        self._tap = tap

    # --- lifecycle -------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether the gateway is connected now (false while reconnecting)."""
        return self._session is not None and self._session.is_open

    @property
    def is_ready(self) -> bool:
        """Whether connected and, with the lifecycle on, boot Accepted on this connection."""
        return self._ready.is_set() and self.is_connected

    @property
    def url(self) -> str | None:
        """The full URL (``<control center URL>/<gatewayId>``) after :meth:`start`."""
        return self._url

    async def start(self, url: str, *, retry: bool = False) -> None:
        """Connect to ``<url>/<gatewayId>`` (spec §6.2).

        Once connected, the gateway reconnects by itself until :meth:`stop`. A
        failed ``start`` leaves the gateway stopped; it may be called again.

        Args:
            url: the control center's base URL, e.g. ``ws://host:8887/ntxcp``.
            retry: keep trying with the reconnect backoff until connected (or
                ``backoff.max_attempts`` failures, or :meth:`stop`); by default one
                attempt is made and its failure raised (Go ``Start``).

        Raises:
            HandshakeRefusedError: the server refused the upgrade.
            OSError, TimeoutError: the connection could not be opened.
            NotConnectedError: :meth:`stop` was called meanwhile.
        """
        if self._supervisor is not None:
            raise RuntimeError("gateway already started")
        self._url = url.rstrip("/") + "/" + quote(self.gateway_id, safe="")
        self._stopping = False
        self._stop_event.clear()
        self._reopen()
        self._retry_index = 0
        if retry:
            await self._connect_with_backoff(wait_first=False)
        else:
            try:
                await self._connect_once()
            except Exception as exc:
                self.last_error = exc
                raise
        loop = asyncio.get_running_loop()
        self._supervisor = loop.create_task(self._supervise())
        if self._forwarder is None or self._forwarder.done():
            self._forwarder = loop.create_task(self._forward())

    def _reopen(self) -> None:
        """After a :meth:`stop`, open again the store and error stream it closed."""
        if self._owns_store and getattr(self._store, "closed", False):
            self._store = open_store(self._store_option)
        if self._errors_closed and not self._stopping:
            self._errors = ErrorStream(_log, self._error_capacity)
            self._errors_closed = False

    async def stop(self) -> None:
        """Close with 1000, fail pending calls and stop reconnecting (spec §6.2).

        Messages still in the outbox stay there (a file store keeps them for the
        next process); whoever waits for one gets a
        :class:`~ntxcp.errors.NotConnectedError`.
        """
        self._stopping = True
        self._stop_event.set()
        session = self._session
        if session is not None and not session.rpc.closed:
            session.close(1000, "gateway stopping")  # spec §6.2
            await self._wait_closed(session)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            # It wakes up from its backoff pause at once; a connection attempt in
            # progress ends within connect_timeout and is closed at once.
            done, _ = await asyncio.wait({supervisor}, timeout=self._options.connect_timeout + 1)
            if not done:
                supervisor.cancel()
        session = self._session
        if session is not None and not session.rpc.closed:
            session.close(1000, "gateway stopping")
            await self._wait_closed(session)
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
        if self._owns_store:
            self._store.close()
        self._errors.close()
        self._errors_closed = True

    @staticmethod
    async def _wait_closed(session: Session) -> None:
        try:
            async with asyncio.timeout(_STOP_CLOSE_WAIT):
                await session.wait_closed()
        except TimeoutError:
            if session.link is not None:
                session.link.abort()  # the peer does not read: drop it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await session.wait_closed()

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
        """Wait until the outbox is empty (every stored message delivered or dead-lettered).

        Raises:
            TimeoutError: messages are still queued after ``timeout`` seconds.
            NotConnectedError: the gateway stopped meanwhile.
        """

        async def drained() -> None:
            loop = asyncio.get_running_loop()
            while True:
                if self._stopping:
                    raise NotConnectedError("gateway stopped; messages stay queued")
                message = self._store.peek()
                if message is None:
                    return
                future: asyncio.Future[Confirmation] = loop.create_future()
                self._waiters.setdefault(message.seq, []).append(future)
                try:
                    await asyncio.wait([future])
                finally:
                    self._forget_waiter(message.seq, future)
                if not future.cancelled():
                    future.exception()  # dead-lettered or dropped: go on with the next

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

    # --- connecting (spec §6.2) --------------------------------------------------------

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
        if self._stopping:  # stop() ran while we were connecting
            session.close(1000, "gateway stopping")
            raise NotConnectedError("gateway stopped")
        if session.rpc.closed:  # closed during the handshake
            raise NotConnectedError("connection closed right after the handshake")
        loop = asyncio.get_running_loop()
        self._session = session
        self._connected_at = loop.time()
        self.connect_count += 1
        self.last_error = None
        self._connected.set()
        self._log.info("[%s] connected to %s", self.gateway_id, self._url)
        if self.boot is None:
            self._ready.set()
        else:
            self._lifecycle = loop.create_task(self._run_lifecycle(session))
        self._call_hook(self._on_connected)
        if self.connect_count > 1:
            self._call_hook(self._on_reconnected)

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; ``False`` when :meth:`stop` cut it short."""
        if self._stopping:
            return False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation of a task racing with its completion (stop() would hang).
            async with asyncio.timeout(delay):
                await self._stop_event.wait()
        except TimeoutError:
            return not self._stopping
        return False

    async def _connect_with_backoff(self, *, wait_first: bool) -> None:
        """Connect, retrying with the backoff until connected (spec §6.2).

        Args:
            wait_first: wait the next backoff delay before the first attempt (after a
                lost connection) instead of trying at once (``start(retry=True)``).

        Raises:
            NotConnectedError: :meth:`stop` was called.
            Exception: the last failure, once ``backoff.max_attempts`` are used up.
        """
        failures = 0
        delay = self.backoff.delay(self._retry_index) if wait_first else 0.0
        while True:
            if wait_first or failures:
                self._retry_index += 1
                if not await self._pause(delay):
                    raise NotConnectedError("gateway stopped")
            if self._stopping:
                raise NotConnectedError("gateway stopped")
            try:
                await self._connect_once()
                return
            except NotConnectedError:
                if self._stopping:
                    raise
                failure: Exception = NotConnectedError("connection closed right after upgrade")
            except Exception as exc:  # any failure is retried: only stop() ends this loop
                failure = exc
            failures += 1
            self.last_error = failure
            if self.backoff.exhausted(failures):
                self._errors.report(
                    EndpointError(
                        ErrorKind.CONNECTION_ERROR,
                        f"{failure}; giving up after {failures} attempts",
                        gateway_id=self.gateway_id,
                    )
                )
                raise failure
            if _permanent(failure):
                # A refusal that retrying cannot change: say so loudly, retry rarely.
                delay = self.backoff.at_maximum()
                message = (
                    f"{failure}; retrying will not help until the gateway id, credentials, "
                    f"URL or certificates change; next attempt in {delay:.1f} s "
                    "(longest backoff)"
                )
                self._log.error("[%s] %s", self.gateway_id, message)
                self._errors.report(
                    EndpointError(ErrorKind.HANDSHAKE_REFUSED, message, gateway_id=self.gateway_id)
                )
            else:
                delay = self.backoff.delay(self._retry_index)
                self._errors.report(
                    EndpointError(
                        ErrorKind.CONNECTION_ERROR,
                        f"{type(failure).__name__}: {failure}; retrying in {delay:.2f} s",
                        gateway_id=self.gateway_id,
                    )
                )

    async def _supervise(self) -> None:
        """Reconnect after unexpected disconnects until :meth:`stop` (spec §6.2)."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            session = self._session
            if session is not None:
                await session.wait_closed()
            if self._stopping or not self.reconnect:
                return
            if loop.time() - self._connected_at >= self.backoff.reset_after:
                self._retry_index = 0  # the connection was stable: start again at initial
            restart, self._restart = self._restart, False
            try:
                if restart:  # after an accepted Reset: reconnect at once (spec §4.1)
                    self._retry_index = 0
                await self._connect_with_backoff(wait_first=not restart)
            except Exception as exc:
                if self._stopping:
                    return
                self._log.error("[%s] giving up reconnecting: %s", self.gateway_id, exc)
                self._errors.report(
                    EndpointError(
                        ErrorKind.RECONNECT_ABANDONED,
                        f"giving up after backoff.max_attempts={self.backoff.max_attempts}: {exc}",
                        gateway_id=self.gateway_id,
                    )
                )
                return

    def _closed(self, session: Session, code: int, reason: str) -> None:
        if self._session is session:
            self._connected.clear()
            self._ready.clear()
            self.last_close = (code, reason)
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
        try:
            if await self._boot(session):
                await self._heartbeats(session)
        except NotConnectedError:
            return
        except Exception as exc:  # never let the task die silently
            self._errors.report(
                EndpointError(ErrorKind.LIFECYCLE_ERROR, repr(exc), gateway_id=self.gateway_id)
            )

    async def _boot(self, session: Session) -> bool:
        """Send ``boot`` until Accepted (spec §4.1); ``False`` if the connection went."""
        assert self.boot is not None
        failures = 0
        while session.is_open:
            try:
                conf = await session.send_call(self.boot, None)
            except (CallError, CallTimeoutError, QueueFullError) as exc:
                self._errors.report(
                    EndpointError(ErrorKind.BOOT_FAILED, str(exc), gateway_id=self.gateway_id)
                )
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
                continue
            assert isinstance(conf, core.BootNotificationConfirmation)
            self.registration_status = conf.status
            if conf.status is core.RegistrationStatus.ACCEPTED:
                self.heartbeat_interval = conf.interval
                self._ready.set()
                self._log.info("[%s] boot accepted, heartbeat %d s", self.gateway_id, conf.interval)
                return True
            # spec §4.1: hold back, retry after interval (default 60 s when 0)
            self._log.info(
                "[%s] boot %s, retrying in %d s",
                self.gateway_id,
                conf.status.value,
                conf.interval or _DEFAULT_RETRY_INTERVAL,
            )
            await asyncio.sleep(conf.interval or _DEFAULT_RETRY_INTERVAL)
        return False

    async def _heartbeats(self, session: Session) -> None:
        """Send Heartbeat every :attr:`heartbeat_interval` seconds (spec §4.1)."""
        while self.heartbeat_enabled and self.heartbeat_interval and session.is_open:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await session.send_call(core.HeartbeatRequest(), None)
            except (CallError, CallTimeoutError, QueueFullError) as exc:
                self._errors.report(
                    EndpointError(ErrorKind.HEARTBEAT_FAILED, str(exc), gateway_id=self.gateway_id)
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
                # The CALLRESULT is queued and goes out before this callback runs;
                # then "reboot": close, reconnect at once, boot again (spec §4.1).
                asyncio.get_running_loop().call_soon(session.close, 1000, "reset")

    # --- store and forward (spec §6.2) ---------------------------------------------------

    async def _forward(self) -> None:
        """Deliver the outbox in order, one message at a time, while ready."""
        while True:
            try:
                await self._ready.wait()
                message = self._store.peek()
                if message is None or self._delivering:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                session = self._session
                if session is None or not session.is_open:
                    # closing: on_close clears _ready soon
                    if session is not None:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):  # not wait_for: see _pause
                                await session.wait_closed()
                    else:
                        await asyncio.sleep(0.05)
                    continue
                self._delivering = True
                try:
                    await self._deliver_one(session, message)
                finally:
                    self._delivering = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken store must not end delivery for good
                self._errors.report(
                    EndpointError(ErrorKind.FORWARDER_ERROR, repr(exc), gateway_id=self.gateway_id)
                )
                await asyncio.sleep(max(self.backoff.initial, 0.1))

    async def _deliver_one(self, session: Session, message: StoredMessage) -> None:
        try:
            spec = ACTIONS.get(message.action)
            if spec is None:
                raise CallError(ErrorCode.NOT_IMPLEMENTED, f"unknown action {message.action!r}")
            request = decode_payload(spec.request, message.payload)
            future = session.send_call(request, None, message.unique_id)
        except (NotConnectedError, QueueFullError):
            await asyncio.sleep(0.05)  # the link is going, or the FIFO is busy: try again
            return
        except (CallError, ValueError) as exc:  # cannot be sent any more: never will be
            self._give_up(message, "invalid", f"stored message cannot be sent: {exc}", exc)
            return
        try:
            confirmation = await future
        except NotConnectedError:
            # Lost with the connection (maybe after the control center handled it):
            # it stays first in the outbox and goes again, same uniqueId (spec §6.2).
            return
        except CallTimeoutError as exc:
            self._errors.report(
                EndpointError(ErrorKind.DELIVERY_RETRY, str(exc), gateway_id=self.gateway_id)
            )
            await self._pause(self.backoff.delay(0))
            return
        except CallError as exc:  # CALLERROR or invalid CALLRESULT (spec §2.2 rule 6)
            self._give_up(message, exc.code.value, exc.description, exc)
            return
        self._store.remove(message.seq)
        self._settle(message.seq, confirmation=confirmation)

    def _send_directly(
        self, session: Session, seq: int, unique_id: str, request: AnyRequest, payload: bytes
    ) -> None:
        """Put the only queued message on the wire from the caller (spec §6.2).

        Its outcome is handled by a callback, like the forwarder would: removed on a
        CALLRESULT, dead-lettered on a CALLERROR, else left first in the outbox for the
        forwarder, which sends it again with the same ``uniqueId``.
        """
        try:
            call = session.send_call(request, None, unique_id, payload)
        except (NotConnectedError, QueueFullError):
            self._wake.set()  # the forwarder will try
            return
        self._delivering = True
        call.add_done_callback(functools.partial(self._direct_done, seq))

    def _direct_done(self, seq: int, call: asyncio.Future[Confirmation]) -> None:
        self._delivering = False
        exc = None if call.cancelled() else call.exception()
        if call.cancelled():
            pass
        elif exc is None:
            self._store.remove(seq)
            self._settle(seq, confirmation=call.result())
        elif isinstance(exc, CallError):  # CALLERROR or invalid CALLRESULT
            message = self._store.peek()
            if message is not None and message.seq == seq:
                self._give_up(message, exc.code.value, exc.description, exc)
        elif isinstance(exc, CallTimeoutError):
            self._errors.report(
                EndpointError(ErrorKind.DELIVERY_RETRY, str(exc), gateway_id=self.gateway_id)
            )
            # Let the control center breathe before the forwarder sends it again.
            asyncio.get_running_loop().call_later(self.backoff.delay(0), self._wake.set)
            return
        if len(self._store):
            self._wake.set()  # the forwarder takes over whatever is left

    def _give_up(self, message: StoredMessage, code: str, description: str, exc: Exception) -> None:
        """Move a message to the dead letters, report it, fail its waiters."""
        self._store.dead_letter(message.seq, code, description)
        self._errors.report(
            EndpointError(
                ErrorKind.DEAD_LETTER,
                f"{message.action} {message.unique_id}: {exc}",
                gateway_id=self.gateway_id,
                code=exc.code if isinstance(exc, CallError) else None,
            )
        )
        self._settle(message.seq, error=exc)

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
                waiter.set_result(confirmation)

    def _forget_waiter(self, seq: int, future: asyncio.Future[Any]) -> None:
        """A caller stopped waiting: drop its future (the message stays queued)."""
        waiters = self._waiters.get(seq)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[seq]
        if not future.done():
            future.cancel()

    def queue_request(self, request: AnyRequest) -> str:
        """Store a store-and-forward message durably and return its ``uniqueId``.

        Returns as soon as the message is in the outbox (committed to the file with
        a file store); it is delivered in order when connected (spec §6.2).

        Raises:
            ValueError: the action is not a store-and-forward action.
            PayloadValidationError: the request is invalid (nothing stored).
            QueueFullError: the outbox is full under the ``"reject"`` policy
                (a :class:`~ntxcp.endpoints.store.StoreFullError`).
        """
        unique_id = self._enqueue(request)[1]
        self._wake.set()
        return unique_id

    def _enqueue(self, request: AnyRequest) -> tuple[int, str, bytes]:
        if request.ACTION not in STORED_ACTIONS:
            raise ValueError(f"{request.ACTION} is not a store-and-forward message")
        payload = encode_payload(request)
        unique_id = new_unique_id()
        if self._stopping:
            self._reopen()  # queued after stop(): kept for the next start (or process)
        seq = self._store.append(unique_id, request.ACTION, payload)
        for dropped in self._store.take_dropped():
            error = StoreFullError(None, None, "message dropped to make room (drop-oldest)")
            self._errors.report(
                EndpointError(
                    ErrorKind.DEAD_LETTER,
                    f"{dropped.action} {dropped.unique_id}: dropped, store full",
                    gateway_id=self.gateway_id,
                )
            )
            self._settle(dropped.seq, error=error)
        return seq, unique_id, payload

    async def _stored_call(self, request: Request[C], timeout: float | None) -> C:
        seq, unique_id, payload = self._enqueue(request)
        future: asyncio.Future[C] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(seq, []).append(future)
        limit = self.call_timeout if timeout is None else timeout
        session = self._session
        if (
            not self._delivering
            and self._ready.is_set()
            and session is not None
            and session.is_open
            and len(self._store) == 1
        ):
            # Nothing queued ahead and nothing on the wire: send it from here, sparing
            # the hand-over to the forwarder task.
            self._send_directly(session, seq, unique_id, request, payload)
        else:
            self._wake.set()
        # The future is this caller's alone: a timer fails it at the deadline while the
        # message itself stays queued (cheaper than wait_for + shield per message).
        timer = asyncio.get_running_loop().call_later(
            limit, _fail_waiter, future, request.ACTION, unique_id, limit
        )
        try:
            return await future
        finally:
            timer.cancel()
            self._forget_waiter(seq, future)

    # --- requests --------------------------------------------------------------------

    async def _ready_session(
        self, request: AnyRequest, timeout: float | None
    ) -> tuple[Session, float | None]:
        """The session to send on and the time left of ``timeout``.

        With the lifecycle on, waits for boot Accepted first (spec §4.1); the wait
        counts against the call's timeout, so no call outlives its timeout.
        """
        session = self._live_session()
        if (
            self.boot is not None
            and not self._ready.is_set()
            and request.ACTION != "BootNotification"
        ):
            limit = self.call_timeout if timeout is None else timeout
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await asyncio.wait_for(self._ready.wait(), limit)
            except TimeoutError:
                raise CallTimeoutError(request.ACTION, "-", limit) from None
            session = self._live_session()
            timeout = max(limit - (loop.time() - started), 0.001)
        return session, timeout

    def _live_session(self) -> Session:
        session = self._session
        if session is None or not session.is_open:
            raise NotConnectedError(f"gateway {self.gateway_id!r} is not connected")
        return session

    async def send_request(self, request: Request[C], *, timeout: float | None = None) -> C:
        """Send any G→C request and wait for its confirmation (Go ``SendRequest``).

        A store-and-forward action is stored first and waited for up to
        ``timeout`` (see the class docs); any other request needs a connection.

        Args:
            request: the request; its class says the confirmation's.
            timeout: seconds to wait for the answer (default ``call_timeout``).

        Returns:
            The confirmation, of the class the request names.

        Raises:
            NotConnectedError: not connected (immediately; never for a stored action).
            CallError: the control center answered a CALLERROR, or its answer was invalid.
            CallTimeoutError: no answer within ``timeout`` (default ``call_timeout``);
                ``queued=True``: a stored message that will still be delivered.
            DisconnectedError: the connection closed first (not for a stored action).
            QueueFullError: too many requests wait already, or the outbox is full.
            PayloadValidationError: the request itself is invalid.
        """
        if request.ACTION in STORED_ACTIONS:
            return await self._stored_call(request, timeout)
        session, left = await self._ready_session(request, timeout)
        confirmation = await session.send_call(request, left)
        if isinstance(confirmation, core.BootNotificationConfirmation):
            # A boot the application sent itself counts like the lifecycle's own
            # (spec §4.1): Accepted releases the messages held back.
            self.registration_status = confirmation.status
            if confirmation.status is core.RegistrationStatus.ACCEPTED and session.is_open:
                self.heartbeat_interval = confirmation.interval
                self._ready.set()
        return confirmation

    def send_request_async(
        self,
        request: Request[C],
        callback: Callable[[C | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs exactly once later.

        Errors that prevent sending are raised here and the callback is never called
        (Go ``SendRequestAsync``). A store-and-forward message is stored instead
        and the callback runs once it is delivered (or dead-lettered).

        Args:
            request: the request.
            callback: called with the confirmation (of the class the request names)
                and ``None``, or ``None`` and the error.
            timeout: seconds to wait for the answer (default ``call_timeout``).
        """
        future: asyncio.Future[C]
        if request.ACTION in STORED_ACTIONS:
            # Stored first (spec §6.2); the callback runs on delivery or dead letter.
            seq, _, _ = self._enqueue(request)
            self._wake.set()
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(seq, []).append(future)
        elif self.boot is not None and not self._ready.is_set():
            future = asyncio.ensure_future(self.send_request(request, timeout=timeout))
        else:
            future = self._live_session().send_call(request, timeout)
        on_outcome(future, callback)


def _fail_waiter(future: asyncio.Future[Any], action: str, unique_id: str, timeout: float) -> None:
    """A caller's wait for a stored message ends; the message stays queued (spec §6.2)."""
    if not future.done():
        future.set_exception(CallTimeoutError(action, unique_id, timeout, queued=True))
