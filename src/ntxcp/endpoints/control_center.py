"""The Ding.X Control Center endpoint (spec §6.1; Go API ``DingXControlCenter``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ntxcp.endpoints._dispatch import Dispatcher
from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._hooks import call_hook, on_outcome
from ntxcp.endpoints._session import FrameTap, Session
from ntxcp.endpoints.typed_requests import ControlCenterRequests
from ntxcp.errors import EndpointError, ErrorKind, NotConnectedError
from ntxcp.rpc import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    Role,
    RpcConnection,
)
from ntxcp.transport import (
    AdmissionCounts,
    HandshakeInfo,
    Refusal,
    ServerOptions,
    WebSocketServer,
    listen,
)
from ntxcp.transport.options import (
    DEFAULT_ACCEPT_RATE,
    DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_MESSAGE_SIZE,
)
from ntxcp.v10 import Confirmation, Profile, Request, core, firmware, remotetrigger

__all__ = ["ControlCenter", "GatewayConnection"]

C = TypeVar("C", bound=Confirmation)

_log = logging.getLogger("ntxcp.control_center")

_REPLACED_CLOSE_WAIT = 1.0
"""Seconds a replaced connection gets to finish its closing handshake before it is dropped."""


def _drop(session: Session) -> None:
    """Abort a connection that did not close by itself."""
    if not session.rpc.closed and session.link is not None:
        session.link.abort()


@dataclass(frozen=True, slots=True)
class GatewayConnection:
    """One gateway connection as the application sees it (Go ``DingXGatewayConnection``).

    Attributes:
        id: the gateway id.
        remote_address: the peer's (host, port).
        tls: whether the connection uses TLS (profiles 2/3).
        peer_certificate: the client certificate under mutual TLS (profile 3).
        connected_since: when the upgrade completed (UTC).
        subprotocol: the negotiated subprotocol (``None`` when accepted leniently).
        close_code: in the disconnected hook, the WebSocket close code (1006 when
            the connection dropped without a close frame); ``None`` while connected.
        close_reason: in the disconnected hook, the close reason text.
        answering: ``False`` while the gateway is unresponsive: it missed a pong and
            its connection is still open (see :mod:`ntxcp.transport.keepalive`).
    """

    id: str
    remote_address: tuple[str, int] | None
    tls: bool
    peer_certificate: dict[str, Any] | None = field(repr=False)
    connected_since: datetime
    subprotocol: str | None
    close_code: int | None = None
    close_reason: str = ""
    answering: bool = True


ConnectionHandler = Callable[[GatewayConnection], object]
ValidationHandler = Callable[[str, HandshakeInfo], bool]
BasicAuthHandler = Callable[[str, str], bool]
AsyncBasicAuthHandler = Callable[[str, str, HandshakeInfo], Awaitable[bool]]


class ControlCenter(ControlCenterRequests):
    """A Ding.X Control Center serving many gateways on one port (spec §6.1).

    Register one handler object per profile, start it, then send C→G requests by
    gateway id::

        cc = ControlCenter()
        cc.set_core_handler(MyCoreHandler())
        await cc.start(8887, "/ntxcp")
        conf = await cc.reset("GW-1", core.ResetType.SOFT)

    Args:
        host: address to listen on.
        ssl: server TLS context (profiles 2/3), see
            :func:`ntxcp.transport.server_tls_context`.
        strict: reject unknown payload fields (spec §4); ``False`` ignores them.
        call_timeout: default seconds before a C→G call fails (spec §2.3.2).
        queue_capacity: requests that may wait per gateway (spec §2.3.1).
        bad_message_limit: bad messages per minute per connection before it is closed
            with 1008 (spec §2.2 rule 7); ``None`` disables.
        accept_missing_subprotocol: accept clients that offer no subprotocol.
        reject_duplicate: refuse a second connection of a connected id with HTTP 409
            instead of replacing the old one (spec §1).
        ping_interval: seconds of silence from a gateway before a ping (``None``: no
            pings).
        ping_timeout: seconds to wait for the pong; one missed makes the gateway
            unresponsive, two in a row close its connection.
        handshake_timeout: seconds a client has to complete the upgrade.
        max_message_size: largest message in bytes (spec §1, closes with 1009).
        max_handshakes: connections whose upgrade is not decided yet at most; more
            wait in the listen backlog (0: no limit; see :attr:`admission`).
        accept_rate: connections accepted per second at most; more wait in the
            listen backlog (0: no limit).
        error_capacity: reports kept on the error stream for a reader.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ssl: Any = None,
        strict: bool = True,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        bad_message_limit: int | None = DEFAULT_BAD_MESSAGE_LIMIT,
        accept_missing_subprotocol: bool = False,
        reject_duplicate: bool = False,
        ping_interval: float | None = 30.0,
        ping_timeout: float = 30.0,
        handshake_timeout: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        error_capacity: int = 1000,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        accept_rate: float = DEFAULT_ACCEPT_RATE,
    ) -> None:
        self._options = ServerOptions(
            host=host,
            ssl=ssl,
            accept_missing_subprotocol=accept_missing_subprotocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            handshake_timeout=handshake_timeout,
            max_message_size=max_message_size,
            max_handshakes=max_handshakes,
            accept_rate=accept_rate,
        )
        self.strict = strict
        self.call_timeout = call_timeout
        self.queue_capacity = queue_capacity
        self.bad_message_limit = bad_message_limit
        self.reject_duplicate = reject_duplicate
        self._dispatcher = Dispatcher(Role.CONTROL_CENTER)
        self._errors = ErrorStream(_log, error_capacity)
        self._sessions: dict[str, Session] = {}
        self._connections: dict[Session, GatewayConnection] = {}
        self._all_sessions: set[Session] = set()
        self._server: WebSocketServer | None = None
        self._bound_port: int | None = None
        self._validate: ValidationHandler | None = None
        self._basic_auth: BasicAuthHandler | None = None
        self._async_basic_auth: AsyncBasicAuthHandler | None = None
        self._on_connected: ConnectionHandler | None = None
        self._on_disconnected: ConnectionHandler | None = None
        self._on_responsive: ConnectionHandler | None = None
        self._tap: FrameTap | None = None
        self._stopping = False
        self._stopped: asyncio.Event | None = None

    # --- handlers (Go: Set*Handler) --------------------------------------------------

    def set_core_handler(self, handler: core.ControlCenterHandler | None) -> None:
        """Register the handler of core-profile CALLs from gateways (spec §5)."""
        self._dispatcher.set_handler(Profile.CORE, handler)

    def set_firmware_management_handler(
        self, handler: firmware.ControlCenterHandler | None
    ) -> None:
        """Register the handler of firmware-profile CALLs from gateways (spec §5)."""
        self._dispatcher.set_handler(Profile.FIRMWARE, handler)

    def set_remote_trigger_handler(
        self, handler: remotetrigger.ControlCenterHandler | None
    ) -> None:
        """Register the remote-trigger handler (no G→C actions exist; kept for parity)."""
        self._dispatcher.set_handler(Profile.REMOTE_TRIGGER, handler)

    def set_new_gateway_validation_handler(self, handler: ValidationHandler | None) -> None:
        """Set the check run before every upgrade (spec §1 "connection check").

        ``handler(gateway_id, handshake)`` returning ``False`` refuses with HTTP 401.
        It runs inside the server's accept path, so it must be quick and must not
        block (look up a cache, not a remote database).
        """
        self._validate = handler

    def set_basic_auth_handler(self, handler: BasicAuthHandler | None) -> None:
        """Require HTTP Basic auth (security profiles 1/2, spec §1).

        ``handler(gateway_id, password)`` returns whether the secret is right; the
        username must equal the gateway id. Missing or wrong credentials → HTTP 401.
        It runs in the accept path, so it must be quick; a slow check (a password
        KDF) belongs in :meth:`set_async_basic_auth_handler`. Replaces an
        asynchronous handler.
        """
        self._basic_auth = handler
        if self._async_basic_auth is not None:
            self.set_async_basic_auth_handler(None)

    def set_async_basic_auth_handler(self, handler: AsyncBasicAuthHandler | None) -> None:
        """Require HTTP Basic auth, checked by a coroutine (security profiles 1/2, spec §1).

        ``await handler(gateway_id, password, handshake)`` returns whether the secret is
        right; the username must equal the gateway id. The upgrade answer waits for it
        while other connections carry on, so it may run a slow check in a thread. It
        may raise :class:`~ntxcp.transport.Refusal` to answer another status (e.g. 429
        for too many failed attempts). Missing or wrong credentials → HTTP 401. The
        handshake timeout covers the check. Replaces a synchronous handler.
        """
        self._async_basic_auth = handler
        self._basic_auth = None
        if self._server is not None:
            self._server.authenticate = self._authenticate if handler is not None else None

    def set_new_gateway_handler(self, handler: ConnectionHandler | None) -> None:
        """Set the hook called once per new gateway connection (spec §6.1)."""
        self._on_connected = handler

    def set_gateway_disconnected_handler(self, handler: ConnectionHandler | None) -> None:
        """Set the hook called once per closed gateway connection (spec §6.1)."""
        self._on_disconnected = handler

    def set_gateway_responsive_handler(self, handler: ConnectionHandler | None) -> None:
        """Set the hook called when a gateway misses a pong or answers again.

        The connection's :attr:`GatewayConnection.answering` says which. A gateway that
        misses one pong (``ping_timeout`` after a ping) is unresponsive while its
        connection stays open; any frame from it makes it answering again; a second
        missed pong in a row closes it (see :mod:`ntxcp.transport.keepalive`).
        """
        self._on_responsive = handler

    def set_frame_logger(self, tap: FrameTap | None) -> None:
        """Set ``tap(gateway_id, direction, frame, info)``, called for every frame in and out.

        ``direction`` is ``"in"`` or ``"out"``; ``frame`` the raw bytes; ``info`` a
        :class:`~ntxcp.rpc.FrameInfo`: what the RPC layer read of the frame (message
        type, uniqueId, action, error code; an answer carries the action of the CALL
        it answers), so a tap needs no parsing of its own. Applies to connections
        opened afterwards. It runs on the hot path: keep it cheap.
        """
        self._tap = tap

    # --- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`; still readable during and after stop)."""
        if self._bound_port is None:
            raise RuntimeError("control center not started")
        return self._bound_port

    @property
    def admission(self) -> AdmissionCounts:
        """Connections accepted, handshakes decided, in progress and waiting so far.

        Zero before :meth:`start`. A storm of reconnecting gateways is admitted at
        most ``max_handshakes`` at a time and ``accept_rate`` a second; the rest wait
        in the kernel's listen backlog (``waiting``), none is refused for it.
        """
        if self._server is None:
            return AdmissionCounts()
        return self._server.admission()

    @property
    def path(self) -> str:
        """The base path gateways connect under."""
        return self._options.path

    @property
    def url(self) -> str:
        """The base URL gateways connect to (append ``/<gatewayId>``)."""
        scheme = "wss" if self._options.ssl is not None else "ws"
        host = self._options.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}{self._options.path.rstrip('/')}"

    async def start(
        self, port: int | None = None, path: str | None = None, *, host: str | None = None
    ) -> None:
        """Start listening; returns once the port is bound (Go ``Start``).

        Args:
            port: TCP port (default 0: any free port, see :attr:`port`).
            path: base path (default ``/ntxcp``).
            host: address to bind (default: the constructor's ``host``).
        """
        if self._server is not None:
            raise RuntimeError("control center already started")
        if port is not None:
            self._options.port = port
        if path is not None:
            self._options.path = "/" + path.strip("/") if path.strip("/") else "/"
        if host is not None:
            self._options.host = host
        self._stopping = False
        self._stopped = asyncio.Event()
        authenticate = self._authenticate if self._async_basic_auth is not None else None
        self._server = await listen(
            self._options, self._accept, self._refused, authenticate=authenticate
        )
        self._bound_port = self._server.port
        _log.info("listening on %s", self.url)

    async def serve_forever(self) -> None:
        """Wait until :meth:`stop` is called."""
        if self._stopped is None:
            raise RuntimeError("control center not started")
        await self._stopped.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop gracefully: stop accepting, let in-flight calls finish, close with 1001.

        1. The listening socket closes; upgrades still in progress are refused (503).
        2. No connection takes new CALLs from its gateway any more (one that arrives
           now is not answered: the gateway gets the close below and sends it again
           after reconnecting, a stored message with the same ``uniqueId``), and new
           C→G requests fail with :class:`~ntxcp.errors.NotConnectedError`. CALLs
           being handled and C→G requests in flight get until ``grace`` seconds to
           finish.
        3. Every connection is closed with 1001 (spec §6.1); whatever is still
           pending fails (spec §2.3.3). Connections not closed by the end of the grace
           period (at least 1 s after the close frames) are dropped.

        Args:
            grace: seconds for the whole stop before connections are dropped.
        """
        server = self._server
        if server is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._stopping = True
        server.close()
        sessions = list(self._all_sessions)
        for session in sessions:
            session.drain()
        while loop.time() < deadline and any(
            session.busy and not session.rpc.closed for session in sessions
        ):
            await asyncio.sleep(0.01)
        sessions = list(self._all_sessions)
        for session in sessions:
            session.close(1001, "control center stopping")  # spec §6.1
        if sessions:
            waiters = [asyncio.ensure_future(s.wait_closed()) for s in sessions]
            _, pending = await asyncio.wait(waiters, timeout=max(deadline - loop.time(), 1.0))
            for session in sessions:
                if not session.rpc.closed and session.link is not None:
                    session.link.abort()
            for waiter in pending:
                waiter.cancel()
        await server.wait_closed()
        self._server = None
        self._errors.close()
        assert self._stopped is not None
        self._stopped.set()

    async def __aenter__(self) -> ControlCenter:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- connections -----------------------------------------------------------------

    def gateways(self) -> list[str]:
        """Ids of the gateways connected now."""
        return list(self._sessions)

    def is_connected(self, gateway_id: str) -> bool:
        """Whether ``gateway_id`` is connected now."""
        return gateway_id in self._sessions

    def connection(self, gateway_id: str) -> GatewayConnection | None:
        """Details of a connected gateway's connection."""
        session = self._sessions.get(gateway_id)
        return None if session is None else self._connections.get(session)

    def disconnect(self, gateway_id: str, reason: str = "disconnected") -> bool:
        """Close a gateway's connection now, e.g. after its registration was revoked.

        The connection takes no further CALLs (one arriving now is not answered), is
        closed with 1008 and ``reason``, and is dropped if its closing handshake has not
        finished within a second; its pending C→G requests fail. From this call on
        :meth:`is_connected` is false for it; a new connection of the same id goes
        through the handshake checks again.

        Returns:
            Whether the gateway was connected.
        """
        session = self._sessions.pop(gateway_id, None)
        if session is None:
            return False
        _log.info("[%s] disconnecting: %s", gateway_id, reason)
        session.drain()
        session.close(1008, reason)  # spec §1: the policy no longer admits this gateway
        asyncio.get_running_loop().call_later(_REPLACED_CLOSE_WAIT, _drop, session)
        return True

    def errors(self) -> AsyncIterator[EndpointError]:
        """The error stream (Go ``Errors()``): bad messages, late responses, ..."""
        return self._errors.__aiter__()

    @property
    def error_stream(self) -> ErrorStream:
        """The error stream object (counters and non-blocking access)."""
        return self._errors

    async def _authenticate(self, info: HandshakeInfo) -> None:
        """Check Basic-auth credentials before the upgrade is answered (spec §1)."""
        handler = self._async_basic_auth
        if handler is None:  # removed after start: nothing to check
            return
        if self._stopping:
            raise Refusal(503, "control center stopping")
        credentials = info.credentials
        if credentials is None:
            raise Refusal(401, "basic authentication required")
        user, password = credentials
        if user != info.gateway_id or not await handler(info.gateway_id, password, info):
            raise Refusal(401, "invalid credentials")

    def _accept(self, info: HandshakeInfo) -> Session:
        """Decide an upgrade that passed the transport rules (spec §1)."""
        gateway_id = info.gateway_id
        if self._stopping:
            raise Refusal(503, "control center stopping")
        if self._basic_auth is not None:
            credentials = info.credentials
            if credentials is None:
                raise Refusal(401, "basic authentication required")
            user, password = credentials
            if user != gateway_id or not self._basic_auth(gateway_id, password):
                raise Refusal(401, "invalid credentials")
        if self._validate is not None:
            try:
                allowed = self._validate(gateway_id, info)
            except Exception as exc:
                _log.exception(
                    "[%s] validation handler raised", gateway_id, extra={"gateway_id": gateway_id}
                )
                raise Refusal(500, f"validation failed: {type(exc).__name__}") from None
            if not allowed:
                raise Refusal(401, "gateway refused")
        if self.reject_duplicate and gateway_id in self._sessions:
            raise Refusal(409, "gateway id already connected")
        rpc = RpcConnection(
            Role.CONTROL_CENTER,
            profiles=self._dispatcher.profiles,
            strict=self.strict,
            call_timeout=self.call_timeout,
            queue_capacity=self.queue_capacity,
            bad_message_limit=self.bad_message_limit,
        )
        session = Session(
            rpc,
            self._dispatcher,
            (gateway_id,),
            self._errors.report,
            self._closed,
            gateway_id,
            _log,
            on_opened=self._opened,
            tap=self._tap,
            on_responsive=self._responsive,
        )
        self._connections[session] = GatewayConnection(
            id=gateway_id,
            remote_address=info.remote_address,
            tls=info.tls,
            peer_certificate=info.peer_certificate,
            connected_since=datetime.now(UTC),
            subprotocol=info.subprotocol,
        )
        return session

    def _refused(self, info: HandshakeInfo | None, refusal: Refusal) -> None:
        self._errors.report(
            EndpointError(
                ErrorKind.HANDSHAKE_REFUSED,
                f"HTTP {refusal.status} {refusal.reason}",
                gateway_id=info.gateway_id if info else None,
            )
        )

    def _opened(self, session: Session) -> None:
        old = self._sessions.get(session.gateway_id)
        self._sessions[session.gateway_id] = session
        self._all_sessions.add(session)
        if old is not None:
            _log.info(
                "[%s] new connection replaces the old one",
                session.gateway_id,
                extra={"gateway_id": session.gateway_id},
            )
            old.close(1008, "replaced")  # spec §1: keep the new, close the old
            # A half-open old connection may never finish closing (its peer is gone and
            # unsent data keeps the socket): drop it, so its pending requests fail now.
            asyncio.get_running_loop().call_later(_REPLACED_CLOSE_WAIT, _drop, old)
        if self._stopping:  # upgraded while stop() runs: it goes too
            session.close(1001, "control center stopping")
        _log.info("[%s] connected", session.gateway_id, extra={"gateway_id": session.gateway_id})
        self._call_hook(self._on_connected, session)

    def _responsive(self, session: Session, answering: bool) -> None:
        connection = self._connections.get(session)
        if connection is None or session not in self._all_sessions:
            return
        self._connections[session] = dataclasses.replace(connection, answering=answering)
        self._call_hook(self._on_responsive, session)

    def _closed(self, session: Session, code: int, reason: str) -> None:
        if self._sessions.get(session.gateway_id) is session:
            del self._sessions[session.gateway_id]
        if session in self._all_sessions:
            self._all_sessions.discard(session)
            _log.info(
                "[%s] disconnected (%d %s)",
                session.gateway_id,
                code,
                reason,
                extra={"gateway_id": session.gateway_id},
            )
            connection = self._connections.get(session)
            if connection is not None:
                self._connections[session] = dataclasses.replace(
                    connection, close_code=code, close_reason=reason
                )
            self._call_hook(self._on_disconnected, session)
        self._connections.pop(session, None)

    def _call_hook(self, hook: ConnectionHandler | None, session: Session) -> None:
        connection = self._connections.get(session)
        if connection is not None:
            call_hook(hook, connection, log=_log, gateway_id=session.gateway_id)

    # --- requests --------------------------------------------------------------------

    def _session(self, gateway_id: str) -> Session:
        if self._stopping:
            raise NotConnectedError("control center stopping")
        session = self._sessions.get(gateway_id)
        if session is None or not session.is_open:
            raise NotConnectedError(f"gateway {gateway_id!r} is not connected")
        return session

    async def send_request(
        self, gateway_id: str, request: Request[C], *, timeout: float | None = None
    ) -> C:
        """Send any C→G request and wait for its confirmation (Go ``SendRequest``).

        Args:
            gateway_id: the gateway to send to.
            request: the request; its class says the confirmation's.
            timeout: seconds to wait for the answer (default ``call_timeout``).

        Returns:
            The confirmation, of the class the request names.

        Raises:
            NotConnectedError: the gateway is not connected (immediately).
            CallError: the gateway answered a CALLERROR, or its answer was invalid.
            CallTimeoutError: no answer within ``timeout`` (default ``call_timeout``).
            DisconnectedError: the connection closed first.
            QueueFullError: too many requests already wait for this gateway.
            PayloadValidationError: the request itself is invalid.
        """
        return await self._session(gateway_id).send_call(request, timeout)

    def send_request_async(
        self,
        gateway_id: str,
        request: Request[C],
        callback: Callable[[C | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs exactly once later.

        Errors that prevent sending (not connected, queue full, invalid request) are
        raised here and the callback is never called (Go ``SendRequestAsync``).

        Args:
            gateway_id: the gateway to send to.
            request: the request.
            callback: called with the confirmation (of the class the request names)
                and ``None``, or ``None`` and the error.
            timeout: seconds to wait for the answer (default ``call_timeout``).
        """
        future = self._session(gateway_id).send_call(request, timeout)
        on_outcome(future, callback)
