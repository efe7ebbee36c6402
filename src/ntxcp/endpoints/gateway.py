"""The Ding.X Gateway endpoint (spec §6.2; Go API ``DingXGateway``), asyncio flavour.

:class:`Gateway` is a façade over parts with one job each:

* :class:`~ntxcp.endpoints.state.StateMachine`: the connection state
  (:class:`~ntxcp.endpoints.state.GatewayState`) and its transitions;
* the connecting and reconnecting, here (:meth:`Gateway._supervise`);
* :class:`~ntxcp.endpoints.lifecycle.Lifecycle`: boot, heartbeat, reboot (spec §4.1);
* :class:`~ntxcp.endpoints.outbox.Outbox`: store and forward (spec §6.2);
* :class:`~ntxcp.endpoints.typed_requests.GatewayRequests`: the typed request methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from ntxcp.endpoints._dispatch import Dispatcher
from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._hooks import call_hook, on_outcome
from ntxcp.endpoints._session import FrameTap, Session
from ntxcp.endpoints.backoff import Backoff
from ntxcp.endpoints.failover import UrlRing, gateway_urls
from ntxcp.endpoints.lifecycle import Lifecycle
from ntxcp.endpoints.outbox import Outbox
from ntxcp.endpoints.state import GatewayState, StateMachine
from ntxcp.endpoints.store import STORED_ACTIONS, MessageStore
from ntxcp.endpoints.typed_requests import GatewayRequests
from ntxcp.errors import (
    CallTimeoutError,
    EndpointError,
    ErrorKind,
    HandshakeRefusedError,
    NotConnectedError,
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
from ntxcp.v10 import AnyRequest, Confirmation, Profile, Request, core, firmware, remotetrigger
from ntxcp.v10.codec import encode_payload

__all__ = ["Gateway"]

C = TypeVar("C", bound=Confirmation)

_log = logging.getLogger("ntxcp.gateway")

StateHandler = Callable[[], object]

TriggerHandler = Callable[[remotetrigger.TriggerMessageRequest], object]
"""``handler(request)`` -> the request(s) to send after an accepted TriggerMessage."""

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

    **Failover** (without a load balancer): ``start([url1, url2, ...])`` gives
    several control-center URLs. The first connection tries them in order and takes
    the first that answers; every reconnect begins with the URL after the one last
    connected, round-robin. One attempt of the backoff is one round over all URLs
    (the next URL is tried at once after a failure; the delay is waited between
    rounds), so ``max_attempts`` counts rounds; the round waits the longest delay
    only when every URL refused permanently. The outbox and its ``uniqueId`` values
    do not depend on the URL: what one node did not acknowledge goes to the next
    (:mod:`ntxcp.endpoints.failover`).

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
        self._ring: UrlRing | None = None
        self._session: Session | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._states = StateMachine()
        self._restart = False  # an accepted Reset: reconnect at once (spec §4.1)
        self._retry_index = 0  # index of the next backoff delay
        self._connected_at = 0.0
        self._lifecycle = Lifecycle(
            gateway_id,
            boot,
            report=self._report,
            retry_delay=lambda failures: self.backoff.delay(failures),
            on_accepted=self._boot_accepted,
            heartbeat=heartbeat,
            reboot_on_reset=reboot_on_reset,
        )
        self._outbox = Outbox(
            store,
            gateway_id=gateway_id,
            report=self._report,
            retry_delay=lambda: self.backoff.delay(0),
            ready=self._states.ready,
            session=lambda: self._session,
        )
        self.last_error: BaseException | None = None
        self.last_close: tuple[int, str] | None = None
        self._on_connected: StateHandler | None = None
        self._on_reconnected: StateHandler | None = None
        self._on_disconnected: StateHandler | None = None
        self._tap: FrameTap | None = None
        self._trigger_handler: TriggerHandler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.connect_count = 0

    def _report(self, error: EndpointError) -> None:
        self._errors.report(error)

    # --- the lifecycle's settings and state (spec §4.1) ---------------------------------

    @property
    def boot(self) -> core.BootNotificationRequest | None:
        """The BootNotification sent after every connection (``None``: no lifecycle)."""
        return self._lifecycle.boot

    @boot.setter
    def boot(self, request: core.BootNotificationRequest | None) -> None:
        self._lifecycle.boot = request

    @property
    def heartbeat_enabled(self) -> bool:
        """Whether the lifecycle sends Heartbeat at :attr:`heartbeat_interval`."""
        return self._lifecycle.heartbeat_enabled

    @heartbeat_enabled.setter
    def heartbeat_enabled(self, value: bool) -> None:
        self._lifecycle.heartbeat_enabled = value

    @property
    def reboot_on_reset(self) -> bool:
        """Whether an accepted Reset makes the gateway reconnect and boot again."""
        return self._lifecycle.reboot_on_reset

    @reboot_on_reset.setter
    def reboot_on_reset(self, value: bool) -> None:
        self._lifecycle.reboot_on_reset = value

    @property
    def registration_status(self) -> core.RegistrationStatus | None:
        """The status of the last BootNotification answer."""
        return self._lifecycle.registration_status

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds between heartbeats (from the accepted BootNotification, or set)."""
        return self._lifecycle.heartbeat_interval

    def set_heartbeat_interval(self, seconds: float | None) -> None:
        """Change the heartbeat interval at run time (lifecycle only; spec §4.1).

        The next Heartbeat goes ``seconds`` from now; the next accepted
        BootNotification sets the interval again.

        Args:
            seconds: the new interval; ``None`` or 0 pauses the heartbeats.

        Raises:
            ValueError: a negative interval.
        """
        self._lifecycle.set_heartbeat_interval(seconds)

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

    # --- state -------------------------------------------------------------------------

    @property
    def state(self) -> GatewayState:
        """Where the gateway stands: idle, connecting, connected, ready, ... stopped."""
        return self._states.state

    @property
    def is_connected(self) -> bool:
        """Whether the gateway is connected now (false while reconnecting)."""
        return self._session is not None and self._session.is_open

    @property
    def is_ready(self) -> bool:
        """Whether connected and, with the lifecycle on, boot Accepted on this connection."""
        return self._states.ready.is_set() and self.is_connected

    @property
    def url(self) -> str | None:
        """The full URL (``<control center URL>/<gatewayId>``) of the latest attempt.

        While connected, the URL of the connection; ``None`` before :meth:`start`.
        """
        return self._ring.current if self._ring is not None else None

    @property
    def urls(self) -> tuple[str, ...]:
        """Every full URL given to :meth:`start`, in order (the failover list)."""
        return self._ring.urls if self._ring is not None else ()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the gateway is connected (e.g. after a reconnect)."""
        if self.is_connected:
            return
        await asyncio.wait_for(self._states.connected.wait(), timeout)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until connected and, with the lifecycle on, accepted by the control center."""
        await asyncio.wait_for(self._states.ready.wait(), timeout)

    # --- start and stop ------------------------------------------------------------------

    async def start(self, url: str | Sequence[str], *, retry: bool = False) -> None:
        """Connect to ``<url>/<gatewayId>`` (spec §6.2).

        Once connected, the gateway reconnects by itself until :meth:`stop`. A
        failed ``start`` leaves the gateway idle; it may be called again.

        Args:
            url: the control center's base URL, e.g. ``ws://host:8887/ntxcp``, or
                several (a failover list, see the class docs).
            retry: keep trying with the reconnect backoff until connected (or
                ``backoff.max_attempts`` failed rounds, or :meth:`stop`); by default
                one round is made (each URL once) and its last failure raised (Go
                ``Start``).

        Raises:
            ValueError: no URL given.
            HandshakeRefusedError: the server refused the upgrade.
            OSError, TimeoutError: the connection could not be opened.
            NotConnectedError: :meth:`stop` was called meanwhile.
        """
        if self._supervisor is not None:
            raise RuntimeError("gateway already started")
        self._ring = UrlRing(gateway_urls(url, self.gateway_id))
        self._reopen()
        self._states.enter(GatewayState.CONNECTING)
        self._retry_index = 0
        try:
            if retry:
                await self._connect_with_backoff(wait_first=False)
            else:
                failure = await self._connect_round()
                if failure is not None:
                    self.last_error = failure[0]
                    raise failure[0]
        except BaseException:
            if self._states.state is GatewayState.CONNECTING:
                self._states.enter(GatewayState.IDLE)
            raise
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        self._outbox.start()

    def _reopen(self) -> None:
        """After a :meth:`stop`, open again the store and error stream it closed."""
        self._outbox.reopen()
        if self._errors_closed:
            self._errors = ErrorStream(_log, self._error_capacity)
            self._errors_closed = False

    async def stop(self) -> None:
        """Close with 1000, fail pending calls and stop reconnecting (spec §6.2).

        Messages still in the outbox stay there (a file store keeps them for the
        next process); whoever waits for one gets a
        :class:`~ntxcp.errors.NotConnectedError`.
        """
        self._states.enter(GatewayState.STOPPING)
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
        tasks = [
            t for t in (supervisor, self._lifecycle.stop(), *self._background) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._outbox.close()
        self._errors.close()
        self._errors_closed = True
        self._states.enter(GatewayState.STOPPED)

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

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- the outbox (spec §6.2) ------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Messages waiting in the store-and-forward outbox."""
        return len(self._outbox)

    @property
    def store(self) -> MessageStore:
        """The store-and-forward outbox (dead letters included)."""
        return self._outbox.store

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the outbox is empty (every stored message delivered or dead-lettered).

        Raises:
            TimeoutError: messages are still queued after ``timeout`` seconds.
            NotConnectedError: the gateway stopped meanwhile.
        """
        await asyncio.wait_for(self._outbox.flush(lambda: self._states.is_stopping), timeout)

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
        unique_id = self._append(request)[1]
        self._outbox.wake()
        return unique_id

    def _append(self, request: AnyRequest) -> tuple[int, str, bytes]:
        if self._states.is_stopping:
            self._outbox.reopen()  # queued after stop(): kept for the next start (or process)
        return self._outbox.append(request)

    # --- errors ----------------------------------------------------------------------

    def errors(self) -> AsyncIterator[EndpointError]:
        """The error stream (Go ``Errors()``)."""
        return self._errors.__aiter__()

    @property
    def error_stream(self) -> ErrorStream:
        """The error stream object (counters and non-blocking access)."""
        return self._errors

    # --- connecting (spec §6.2) --------------------------------------------------------

    async def _connect_round(self) -> tuple[Exception, bool] | None:
        """Try each URL once, in ring order, until one connects (one backoff attempt).

        A failure on one URL is reported and the next URL tried at once; the last
        failure of the round is for the caller to report.

        Returns:
            ``None`` once connected; else the last failure, and whether every URL
            refused permanently (retrying soon cannot help).

        Raises:
            NotConnectedError: :meth:`stop` was called.
        """
        assert self._ring is not None
        permanent = True
        for left in range(len(self._ring) - 1, -1, -1):
            if self._states.is_stopping:
                raise NotConnectedError("gateway stopped")
            url = self._ring.take()
            try:
                await self._connect_once(url)
                return None
            except NotConnectedError:
                if self._states.is_stopping:
                    raise
                failure: Exception = NotConnectedError("connection closed right after upgrade")
            except Exception as exc:  # any failure is retried: only stop() ends the loop
                failure = exc
            permanent = permanent and _permanent(failure)
            if left:
                self.last_error = failure
                self._report_url_failure(url, failure)
        return failure, permanent

    def _report_url_failure(self, url: str, failure: Exception) -> None:
        """Report a failed URL of a round that goes on with the next URL."""
        if _permanent(failure):
            message = (
                f"{url}: {failure}; retrying will not help until the gateway id, "
                "credentials, URL or certificates change; trying the next URL"
            )
            self._log.error("[%s] %s", self.gateway_id, message)
            kind = ErrorKind.HANDSHAKE_REFUSED
        else:
            message = f"{url}: {type(failure).__name__}: {failure}; trying the next URL"
            kind = ErrorKind.CONNECTION_ERROR
        self._report(EndpointError(kind, message, gateway_id=self.gateway_id))

    async def _connect_once(self, url: str) -> None:
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
        await connect(url, self._options, session)
        if self._states.is_stopping:  # stop() ran while we were connecting
            session.close(1000, "gateway stopping")
            raise NotConnectedError("gateway stopped")
        if session.rpc.closed:  # closed during the handshake
            raise NotConnectedError("connection closed right after the handshake")
        self._session = session
        self._connected_at = asyncio.get_running_loop().time()
        self.connect_count += 1
        self.last_error = None
        self._log.info("[%s] connected to %s", self.gateway_id, url)
        if self._lifecycle.enabled:
            self._states.enter(GatewayState.CONNECTED)
            self._lifecycle.start(session)
        else:
            self._states.enter(GatewayState.READY)
        self._call_hook(self._on_connected)
        if self.connect_count > 1:
            self._call_hook(self._on_reconnected)

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; ``False`` when :meth:`stop` cut it short."""
        if self._states.is_stopping:
            return False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation of a task racing with its completion (stop() would hang).
            async with asyncio.timeout(delay):
                await self._states.stopping.wait()
        except TimeoutError:
            return not self._states.is_stopping
        return False

    async def _connect_with_backoff(self, *, wait_first: bool) -> None:
        """Connect, retrying with the backoff until connected (spec §6.2).

        Each attempt is one round over the URLs (:meth:`_connect_round`).

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
            if self._states.is_stopping:
                raise NotConnectedError("gateway stopped")
            outcome = await self._connect_round()
            if outcome is None:
                return
            failure, permanent = outcome
            failures += 1
            self.last_error = failure
            if self.backoff.exhausted(failures):
                self._report(
                    EndpointError(
                        ErrorKind.CONNECTION_ERROR,
                        f"{failure}; giving up after {failures} attempts",
                        gateway_id=self.gateway_id,
                    )
                )
                raise failure
            if permanent:
                # A refusal that retrying cannot change: say so loudly, retry rarely.
                delay = self.backoff.at_maximum()
                message = (
                    f"{failure}; retrying will not help until the gateway id, credentials, "
                    f"URL or certificates change; next attempt in {delay:.1f} s "
                    "(longest backoff)"
                )
                self._log.error("[%s] %s", self.gateway_id, message)
                self._report(
                    EndpointError(ErrorKind.HANDSHAKE_REFUSED, message, gateway_id=self.gateway_id)
                )
            else:
                delay = self.backoff.delay(self._retry_index)
                self._report(
                    EndpointError(
                        ErrorKind.CONNECTION_ERROR,
                        f"{type(failure).__name__}: {failure}; retrying in {delay:.2f} s",
                        gateway_id=self.gateway_id,
                    )
                )

    async def _supervise(self) -> None:
        """Reconnect after unexpected disconnects until :meth:`stop` (spec §6.2)."""
        loop = asyncio.get_running_loop()
        while not self._states.is_stopping:
            session = self._session
            if session is not None:
                await session.wait_closed()
            if self._states.is_stopping or not self.reconnect:
                return
            if loop.time() - self._connected_at >= self.backoff.reset_after:
                self._retry_index = 0  # the connection was stable: start again at initial
            restart, self._restart = self._restart, False
            self._states.enter(GatewayState.CONNECTING)
            try:
                if restart:  # after an accepted Reset: reconnect at once (spec §4.1)
                    self._retry_index = 0
                await self._connect_with_backoff(wait_first=not restart)
            except Exception as exc:
                if self._states.is_stopping:
                    return
                self._states.enter(GatewayState.DISCONNECTED)
                self._log.error("[%s] giving up reconnecting: %s", self.gateway_id, exc)
                self._report(
                    EndpointError(
                        ErrorKind.RECONNECT_ABANDONED,
                        f"giving up after backoff.max_attempts={self.backoff.max_attempts}: {exc}",
                        gateway_id=self.gateway_id,
                    )
                )
                return

    def _closed(self, session: Session, code: int, reason: str) -> None:
        if self._session is session:
            if self._states.state in (GatewayState.CONNECTED, GatewayState.READY):
                self._states.enter(GatewayState.DISCONNECTED)
            self.last_close = (code, reason)
            self._lifecycle.stop()
            self._log.info("[%s] disconnected (%d %s)", self.gateway_id, code, reason)
            self._call_hook(self._on_disconnected)

    def _call_hook(self, hook: StateHandler | None) -> None:
        call_hook(hook, log=_log, gateway_id=self.gateway_id)

    # --- the lifecycle's connection to the gateway (spec §4.1) ----------------------------

    def _boot_accepted(self) -> None:
        """A BootNotification was accepted on the current connection: release messages."""
        session = self._session
        if session is not None and session.is_open and not self._states.is_stopping:
            self._states.enter(GatewayState.READY)
            self._log.info(
                "[%s] boot accepted, heartbeat %s s",
                self.gateway_id,
                self._lifecycle.heartbeat_interval,
            )

    def _after_answer(self, call: CallReceived, confirmation: Confirmation) -> None:
        if (
            isinstance(confirmation, remotetrigger.TriggerMessageConfirmation)
            and confirmation.status is remotetrigger.TriggerMessageStatus.ACCEPTED
            and isinstance(call.request, remotetrigger.TriggerMessageRequest)
        ):
            # spec §4.3: the requested message follows the Accepted answer, which is
            # queued already and goes out before this task runs.
            task = asyncio.get_running_loop().create_task(self._send_triggered(call.request))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if self._lifecycle.reboots_after(confirmation):
            session = self._session
            if session is not None:
                self._restart = True
                # The CALLRESULT is queued and goes out before this callback runs;
                # then "reboot": close, reconnect at once, boot again (spec §4.1).
                asyncio.get_running_loop().call_soon(session.close, 1000, "reset")

    def set_trigger_message_handler(self, handler: TriggerHandler | None) -> None:
        """Set the after-answer hook of TriggerMessage (spec §4.3).

        After the remote-trigger handler answered ``Accepted``, the gateway sends the
        requested message. It builds ``Heartbeat`` itself, and ``BootNotification``
        from ``boot`` when it has one; the other messages carry the application's
        data, so ``handler(request)`` is called (after the answer went out) and
        returns the request(s) to send: one, a list (``[]``: the application sent
        them itself), or ``None`` for the gateway's own choice (nothing for a message
        it cannot build). It may be ``async def``. Stored actions go through the
        outbox; a failure is reported as ``trigger-failed`` on the error stream.
        """
        self._trigger_handler = handler

    async def _send_triggered(self, request: remotetrigger.TriggerMessageRequest) -> None:
        """Send the message a TriggerMessage asked for (spec §4.3)."""
        try:
            chosen: object = None
            if self._trigger_handler is not None:
                chosen = self._trigger_handler(request)
                if inspect.isawaitable(chosen):
                    chosen = await chosen
            if chosen is None:
                chosen = self._own_triggered(request.requested_message)
            requests = list(chosen) if isinstance(chosen, list | tuple) else [chosen]
            for triggered in requests:
                if triggered is None:
                    continue
                if not isinstance(triggered, Request):
                    raise TypeError(f"trigger handler returned {type(triggered).__name__}")
                if triggered.ACTION in STORED_ACTIONS:
                    self.queue_request(triggered)
                else:
                    await self.send_request(triggered)
        except Exception as exc:  # reported, never raised into the event loop
            self._report(
                EndpointError(
                    ErrorKind.TRIGGER_FAILED,
                    f"{request.requested_message}: {type(exc).__name__}: {exc}",
                    gateway_id=self.gateway_id,
                )
            )

    def _own_triggered(self, requested: remotetrigger.MessageTrigger) -> AnyRequest | None:
        """The triggered messages the gateway builds by itself."""
        if requested is remotetrigger.MessageTrigger.HEARTBEAT:
            return core.HeartbeatRequest()
        if requested is remotetrigger.MessageTrigger.BOOT_NOTIFICATION:
            return self._lifecycle.boot
        return None

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
            self._lifecycle.enabled
            and not self._states.ready.is_set()
            and request.ACTION != "BootNotification"
        ):
            limit = self.call_timeout if timeout is None else timeout
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await asyncio.wait_for(self._states.ready.wait(), limit)
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
            limit = self.call_timeout if timeout is None else timeout
            return await self._outbox.deliver(request, limit)
        session, left = await self._ready_session(request, timeout)
        confirmation = await session.send_call(request, left)
        # A boot the application sent itself counts like the lifecycle's own (spec
        # §4.1): Accepted releases the messages held back.
        if isinstance(
            confirmation, core.BootNotificationConfirmation
        ) and self._lifecycle.record_boot(confirmation):
            self._boot_accepted()
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
            seq, _, _ = self._append(request)
            self._outbox.wake()
            future = self._outbox.watch(seq)
        elif self._lifecycle.enabled and not self._states.ready.is_set():
            future = asyncio.ensure_future(self.send_request(request, timeout=timeout))
        else:
            future = self._live_session().send_call(request, timeout)
        on_outcome(future, callback)
