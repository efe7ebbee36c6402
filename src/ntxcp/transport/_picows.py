"""WebSocket server and client on picows, the only module that imports it (spec §1).

picows parses frames in C and hands them to a listener callback without a task per
message, which is what lets one core serve tens of thousands of calls per second.
It is frame-level, so this module joins fragmented messages, enforces the message size
limit, negotiates the subprotocol and turns refusals into HTTP answers before the
upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from ntxcp.errors import HandshakeRefusedError
from ntxcp.transport._base import (
    SUBPROTOCOL,
    HandshakeInfo,
    LinkHandler,
    Refusal,
    detached,
    gateway_id_from_path,
    parse_basic_auth,
    valid_gateway_id,
)
from ntxcp.transport._gate import Authenticate, AuthGate, Verdict
from ntxcp.transport._pacing import (
    AdmissionCounts,
    AdmissionPacer,
    HandshakeSlot,
    PacedListener,
    listening_sockets,
)
from ntxcp.transport.keepalive import KeepAlive
from ntxcp.transport.options import ClientOptions, ServerOptions

__all__ = ["PicowsLink", "WebSocketServer", "connect", "listen"]

_log = logging.getLogger("ntxcp.transport")
_PICOWS_LOGGER = logging.getLogger("ntxcp.transport.picows")
# picows logs a line per connection at INFO; keep that out of application logs unless
# asked for. An adapter (not a Logger) also stops picows from creating one child
# logger per connection, which would cost about 1 KB each (spec §6.1: thousands).
if _PICOWS_LOGGER.level == logging.NOTSET:
    _PICOWS_LOGGER.setLevel(logging.WARNING)
_PICOWS_LOG = logging.LoggerAdapter(_PICOWS_LOGGER, {})

STALLED_WRITE_TIMEOUT = 30.0
"""Seconds a peer may leave our send buffer above its high-water mark before it is dropped."""

CLOSE_GRACE = 1.0
"""Seconds a peer closed for missing pongs gets for the closing handshake before the drop."""

AcceptHook = Callable[[HandshakeInfo], LinkHandler]
RefusalHook = Callable[[HandshakeInfo | None, Refusal], None]


class _Fragments:
    """A message arriving in fragments, kept in an anonymous memory map.

    Not on the heap: a peer may send up to ``max_message_size`` in fragments and
    vanish (spec §1 allows that much per message). Hundreds of such peers left the
    heap at its peak after they were gone (the allocator keeps freed chunks); the
    pages of a map go back to the system when it is closed, and only pages written
    count at all.
    """

    __slots__ = ("memory", "size")

    def __init__(self, capacity: int) -> None:
        self.memory = mmap.mmap(-1, max(capacity, 1))
        self.size = 0

    def add(self, frame: WSFrame) -> None:
        end = self.size + frame.payload_size
        self.memory[self.size : end] = frame.get_payload_as_memoryview()
        self.size = end

    def take(self) -> bytes:
        data = self.memory[: self.size]
        self.memory.close()
        return data

    def release(self) -> None:
        self.memory.close()


class PicowsLink(WSListener):
    """A :class:`~ntxcp.transport.Link` over one picows connection."""

    def __init__(
        self,
        handler: LinkHandler | None,
        max_message_size: int,
        send_buffer: int | None = None,
        keepalive: tuple[float, float] | None = None,
    ) -> None:
        self.handler = handler
        self._max_message_size = max_message_size
        self._send_buffer = send_buffer
        # Server side: (interval, timeout) of our own pings (see .keepalive).
        self._keepalive_times = keepalive
        self._keepalive: KeepAlive | None = None
        self._transport: WSTransport | None = None
        self._fragments: _Fragments | None = None
        self._closing = False
        self._close_code: int | None = None
        # Client side: what arrived before the handler was attached (see attach()).
        self._early: list[bytes] = []
        self._early_close: tuple[int, str] | None = None
        # Client side: connect() gave up (cancelled or timed out) before attach().
        self._abandoned = False
        self._stalled: asyncio.TimerHandle | None = None  # see pause_writing()

    # --- Link ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether frames can still be sent."""
        return self._transport is not None and not self._closing

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port)."""
        if self._transport is None:
            return None
        peer = self._transport.underlying_transport.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if peer else None

    def send(self, data: bytes) -> None:
        """Send one text message."""
        if self._transport is not None and not self._closing:
            self._transport.send(WSMsgType.TEXT, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame with ``code`` and disconnect."""
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        self._close_code = code
        try:
            transport.send_close(WSCloseCode(code), reason.encode()[:120])
        except ValueError:
            transport.send_close(WSCloseCode.POLICY_VIOLATION, reason.encode()[:120])
        transport.disconnect(graceful=True)

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        if self._transport is not None:
            self._closing = True
            self._transport.underlying_transport.abort()

    def attach(self, handler: LinkHandler) -> None:
        """Attach the handler of a client link and deliver what arrived before it."""
        self.handler = handler
        handler.on_open(self)
        early, self._early = self._early, []
        for data in early:
            handler.on_message(data)
        if self._early_close is not None:
            self.handler = None
            handler.on_close(*self._early_close)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is gone."""
        if self._transport is not None:
            await self._transport.wait_disconnected()

    # --- picows callbacks ------------------------------------------------------------

    def abandon(self) -> None:
        """Client side: :func:`connect` gave up; drop the connection now or once it opens."""
        self._abandoned = True
        self.abort()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        if self._send_buffer is not None:
            _limit_send_buffer(transport.underlying_transport, self._send_buffer)
        if self._abandoned:  # the upgrade completed after connect() was cancelled
            self.abort()
            return
        if self._keepalive_times is not None:
            interval, timeout = self._keepalive_times
            self._keepalive = KeepAlive(
                interval, timeout, transport.send_ping, self._missed_pongs, self._responsive
            )
            self._keepalive.start()
        if self.handler is not None:
            self.handler.on_open(self)

    def _responsive(self, answering: bool) -> None:
        if self.handler is not None:
            self.handler.on_responsive(answering)

    def _missed_pongs(self) -> None:
        """Two pongs missed in a row: close (1001), and drop the TCP connection soon after."""
        timeout = self._keepalive_times[1] if self._keepalive_times else 0.0
        self.close(1001, f"no pong within {timeout:g} s, twice")
        asyncio.get_running_loop().call_later(CLOSE_GRACE, self.abort)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._keepalive is not None:
            self._keepalive.heard()  # any frame, a pong too, shows the peer is alive
        msg_type = frame.msg_type
        if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
            if self._fragments is not None:  # RFC 6455 §5.4: fragments must not interleave
                self.close(1002, "new message before the previous one ended")
            elif frame.fin:
                self._deliver(frame.get_payload_as_bytes())
            else:
                self._start_fragments(frame)
        elif msg_type is WSMsgType.CONTINUATION:
            self._continue_fragments(frame)
        elif msg_type is WSMsgType.CLOSE:
            self._close_code = frame.get_close_code().value if frame.payload_size >= 2 else 1005
            if not self._closing:
                self._closing = True
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def _start_fragments(self, frame: WSFrame) -> None:
        self._fragments = _Fragments(self._max_message_size)
        self._continue_fragments(frame)

    def _continue_fragments(self, frame: WSFrame) -> None:
        fragments = self._fragments
        if fragments is None:
            self.close(1002, "continuation without a first fragment")
            return
        if fragments.size + frame.payload_size > self._max_message_size:
            self._drop_fragments()
            self.close(1009, "message too big")  # spec §1 max frame size
            return
        fragments.add(frame)
        if frame.fin:
            self._fragments = None
            self._deliver(fragments.take())

    def _drop_fragments(self) -> None:
        fragments, self._fragments = self._fragments, None
        if fragments is not None:
            fragments.release()

    def _deliver(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.on_message(data)
        else:
            self._early.append(data)

    def pause_writing(self) -> None:
        """Our send buffer passed its high-water mark: the peer reads slower than we write.

        Stop reading from it until it catches up, so a peer that sends CALLs and never
        reads the answers fills its own socket buffers instead of our memory (one such
        client grew a server by 800 MB in 8 s). A peer still stalled after
        ``STALLED_WRITE_TIMEOUT`` seconds is dropped: a closing handshake could not
        reach it anyway.
        """
        transport = self._transport
        if transport is None or self._stalled is not None:
            return
        transport.underlying_transport.pause_reading()
        loop = asyncio.get_running_loop()
        self._stalled = loop.call_later(STALLED_WRITE_TIMEOUT, self.abort)

    def resume_writing(self) -> None:
        """The send buffer drained below its low-water mark: read from the peer again."""
        stalled, self._stalled = self._stalled, None
        if stalled is not None:
            stalled.cancel()
        transport = self._transport
        if transport is not None and not transport.underlying_transport.is_closing():
            transport.underlying_transport.resume_reading()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closing = True
        self._drop_fragments()
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        handshake = transport.close_handshake
        code = 1006
        reason = ""
        if handshake is not None and handshake.recv is not None:
            code = handshake.recv.code.value
            reason = handshake.recv.reason
        elif handshake is not None and handshake.sent is not None:
            code = handshake.sent.code.value
            reason = handshake.sent.reason
        elif self._close_code is not None:
            code = self._close_code
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.on_close(code, reason)
        else:
            self._early_close = (code, reason)


def _limit_send_buffer(tcp: Any, size: int) -> None:
    """Keep what a peer that does not read can make us hold small (see pause_writing).

    Both the socket's buffer (the kernel would otherwise grow it to megabytes) and
    the transport's own buffer are limited to ``size`` bytes, so flow control engages
    after a few thousand unread answers.
    """
    sock = tcp.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    with contextlib.suppress(AttributeError, NotImplementedError):
        tcp.set_write_buffer_limits(high=size)


class _Upgrade:
    """Decides one upgrade request; knows its TCP transport (for address and TLS)."""

    __slots__ = (
        "__weakref__",
        "accept",
        "decided",
        "gated",
        "on_refused",
        "options",
        "protocol",
        "slot",
        "verdict",
    )

    def __init__(
        self,
        options: ServerOptions,
        accept: AcceptHook,
        on_refused: RefusalHook,
        slot: HandshakeSlot,
        *,
        gated: bool = False,
    ) -> None:
        self.options = options
        self.accept = accept
        self.on_refused = on_refused
        self.slot = slot
        """The connection's place among the handshakes in progress (see ._pacing)."""
        self.protocol: Any = None
        self.decided = False
        self.gated = gated
        """An :class:`AuthGate` judges the request first and records :attr:`verdict`."""
        self.verdict: Verdict | None = None

    def abort_undecided(self) -> None:
        """Drop the connection if its upgrade request was not decided yet."""
        transport = getattr(self.protocol, "transport", None)
        if not self.decided and transport is not None:
            transport.underlying_transport.abort()

    def __call__(self, request: WSUpgradeRequest) -> Any:
        self.decided = True
        self.slot.release(decided=True)
        info: HandshakeInfo | None = None
        try:
            info = self._handshake_info(request)
            self._check_subprotocol(info)  # after the id is known, so refusals name it
            if self.gated:
                verdict = self.verdict
                if verdict is None or not verdict.matches(info):
                    raise Refusal(400, "malformed upgrade request")
                if verdict.refusal is not None:
                    raise detached(verdict.refusal)  # the recorded one stays traceback-free
            handler = self.accept(info)
        except Refusal as refusal:
            self.on_refused(info, refusal)
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(
                    refusal.status, refusal.reason.encode(), {"Content-Type": "text/plain"}
                ),
                None,
            )
        options = self.options
        keepalive = None
        if options.ping_interval:
            keepalive = (options.ping_interval, options.ping_timeout)
        link = PicowsLink(handler, options.max_message_size, options.send_buffer, keepalive)
        headers = {"Sec-WebSocket-Protocol": info.subprotocol} if info.subprotocol else None
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(headers), link)

    def _handshake_info(self, request: WSUpgradeRequest) -> HandshakeInfo:
        """Apply the transport rules of spec §1 to an upgrade request."""
        path = request.path.decode("latin-1") if isinstance(request.path, bytes) else request.path
        return self.head_info(path, request.headers)

    def checked_info(self, path: str, headers: Any) -> HandshakeInfo:
        """:meth:`head_info` of a request that also offers the right subprotocol.

        Raises:
            Refusal: the request breaks a transport rule of spec §1.
        """
        info = self.head_info(path, headers)
        self._check_subprotocol(info)
        return info

    def head_info(self, path: str, headers: Any) -> HandshakeInfo:
        """Apply the transport rules of spec §1 to a request target and its headers.

        Raises:
            Refusal: the path or gateway id breaks spec §1.
        """
        options = self.options
        try:
            gateway_id = gateway_id_from_path(path, options.path)
        except UnicodeDecodeError:
            raise Refusal(400, "gateway id is not valid UTF-8") from None
        if gateway_id is None or gateway_id == "":
            raise Refusal(404, f"expected {options.path.rstrip('/')}/<gatewayId>")
        if not valid_gateway_id(gateway_id):
            raise Refusal(400, "gateway id must be 1..48 printable ASCII characters without '/'")
        tcp = self.protocol.transport.underlying_transport if self.protocol else None
        peer = tcp.get_extra_info("peername") if tcp is not None else None
        ssl_object = tcp.get_extra_info("ssl_object") if tcp is not None else None
        return HandshakeInfo(
            gateway_id=gateway_id,
            path=path,
            headers=headers,
            remote_address=(str(peer[0]), int(peer[1])) if peer else None,
            subprotocol=SUBPROTOCOL if SUBPROTOCOL in _offered(headers) else None,
            credentials=parse_basic_auth(headers.get("Authorization")),
            tls=ssl_object is not None,
            peer_certificate=ssl_object.getpeercert() if ssl_object is not None else None,
        )

    def _check_subprotocol(self, info: HandshakeInfo) -> None:
        """Refuse a client that offers other subprotocols, or none unless lenient (§1)."""
        if info.subprotocol is not None:
            return
        if _offered(info.headers):
            raise Refusal(400, f"subprotocol {SUBPROTOCOL} not offered")
        if not self.options.accept_missing_subprotocol:
            raise Refusal(400, f"subprotocol {SUBPROTOCOL} required")


def _offered(headers: Any) -> list[str]:
    """The subprotocols a client offers in its upgrade request."""
    offered = headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in offered.split(",") if p.strip()]


class _PacedProtocol(WSProtocol):  # type: ignore[misc]
    """picows' protocol, releasing its handshake slot when the connection ends early."""

    slot: HandshakeSlot

    def connection_lost(self, exc: Exception | None) -> None:
        self.slot.release(decided=False)  # no-op once the upgrade was decided
        super().connection_lost(exc)


class WebSocketServer:
    """A listening WebSocket server (spec §1), accepting at the pace of its options."""

    def __init__(
        self,
        listener: PacedListener,
        options: ServerOptions,
        upgrades: weakref.WeakSet[_Upgrade] | None = None,
    ) -> None:
        self._listener = listener
        self.options = options
        bound = listener.sockets[0].getsockname()
        self._host = str(bound[0])
        self._port = int(bound[1])
        self._upgrades = upgrades if upgrades is not None else weakref.WeakSet()
        self._starting: set[asyncio.Task[Any]] = set()
        self.authenticate: Authenticate | None = None
        """The asynchronous check of new connections (see :func:`listen`); settable."""

    def admission(self) -> AdmissionCounts:
        """Connections accepted, handshakes decided, in progress and waiting so far."""
        return self._listener.counts()

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0); still known after :meth:`close`."""
        return self._port

    @property
    def host(self) -> str:
        """The bound host address; still known after :meth:`close`."""
        return self._host

    def close(self) -> None:
        """Stop accepting new connections; drop those still before their upgrade.

        Upgraded connections stay open (their owner closes them). Dropping the others
        keeps :meth:`wait_closed` from waiting for their handshake timeout (Python 3.12+
        waits for every connection of a closed server).
        """
        self._listener.close()
        for task in self._starting:
            task.cancel()  # a TLS handshake in progress
        for upgrade in list(self._upgrades):
            upgrade.abort_undecided()

    async def wait_closed(self) -> None:
        """Wait until the connections being started (TLS handshakes) are gone."""
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    def _start(self, connection: socket.socket, protocol: Any, slot: HandshakeSlot) -> None:
        """Run an accepted connection (its TLS handshake first, when TLS)."""
        loop = asyncio.get_running_loop()
        options = self.options
        tls: dict[str, Any] = {}
        if options.ssl is not None:
            tls = {"ssl": options.ssl, "ssl_handshake_timeout": options.handshake_timeout}
        task = loop.create_task(loop.connect_accepted_socket(lambda: protocol, connection, **tls))
        self._starting.add(task)
        task.add_done_callback(lambda done: self._started(done, slot))

    def _started(self, task: asyncio.Task[Any], slot: HandshakeSlot) -> None:
        self._starting.discard(task)
        if task.cancelled() or task.exception() is not None:  # e.g. a failed TLS handshake
            slot.release(decided=False)


async def listen(
    options: ServerOptions,
    accept: AcceptHook,
    on_refused: RefusalHook,
    *,
    authenticate: Authenticate | None = None,
) -> WebSocketServer:
    """Start a WebSocket server.

    Args:
        options: host, port, path, TLS and limits.
        accept: called for every upgrade that passes the transport rules of spec §1
            (and ``authenticate``); returns the connection's handler or raises
            :class:`Refusal`. It runs in the accept path: it must be quick.
        on_refused: told about every refused upgrade (the info is ``None`` when the
            request failed before a gateway id could be read).
        authenticate: an asynchronous check of each upgrade request, awaited before
            ``accept`` without holding up other connections (see
            :class:`~ntxcp.transport._gate.AuthGate`); it raises :class:`Refusal` to
            refuse. The handshake timeout covers it. The server's
            :attr:`WebSocketServer.authenticate` changes it for later connections.

    Returns:
        The server, already listening.
    """
    upgrades: weakref.WeakSet[_Upgrade] = weakref.WeakSet()
    web_socket_server: WebSocketServer | None = None

    def start(connection: socket.socket, slot: HandshakeSlot) -> None:
        assert web_socket_server is not None
        authenticate = web_socket_server.authenticate
        upgrade = _Upgrade(options, accept, on_refused, slot, gated=authenticate is not None)
        upgrades.add(upgrade)
        protocol = _PacedProtocol(
            None,
            None,
            False,
            upgrade,
            _PICOWS_LOG,
            True,
            options.handshake_timeout,
            False,  # no picows auto-ping: each link runs its own KeepAlive (see .keepalive)
            30.0,
            30.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            True,
            options.max_message_size,
            None,
            2048,
        )
        protocol.slot = slot
        upgrade.protocol = protocol
        gate = None if authenticate is None else AuthGate(protocol, upgrade, authenticate)
        web_socket_server._start(connection, gate or protocol, slot)

    sockets = await listening_sockets(options.host, options.port, options.backlog)
    pacer = AdmissionPacer(options.max_handshakes, options.accept_rate)
    listener = PacedListener(sockets, pacer, start)
    web_socket_server = WebSocketServer(listener, options, upgrades)
    web_socket_server.authenticate = authenticate
    listener.resume()
    return web_socket_server


async def connect(url: str, options: ClientOptions, handler: LinkHandler) -> PicowsLink:
    """Open a WebSocket connection to ``url`` (already ending in ``/<gatewayId>``).

    Raises:
        HandshakeRefusedError: the server answered with an HTTP error, or did not
            select subprotocol ``ntxcp1.0``.
        OSError: the TCP/TLS connection failed.
        TimeoutError: no handshake within ``options.connect_timeout``.
    """
    headers: dict[str, str] = dict(options.extra_headers)
    if options.subprotocols:
        headers["Sec-WebSocket-Protocol"] = ", ".join(options.subprotocols)
    if options.credentials is not None:
        headers["Authorization"] = options.basic_auth_header()
    link = PicowsLink(None, options.max_message_size)
    ping = options.ping_interval is not None and options.ping_interval > 0
    kwargs: dict[str, Any] = {}
    if url.startswith("wss:"):
        kwargs["ssl_context"] = options.ssl or ssl.create_default_context()
    try:
        await asyncio.wait_for(
            ws_connect(
                lambda: link,
                url,
                websocket_handshake_timeout=options.connect_timeout,
                enable_auto_ping=ping,
                auto_ping_idle_timeout=options.ping_interval or 30.0,
                auto_ping_reply_timeout=min(
                    options.ping_timeout, options.ping_interval or options.ping_timeout
                ),
                max_frame_size=options.max_message_size,
                extra_headers=headers,
                max_redirects=0,
                logger_name=_PICOWS_LOG,
                **kwargs,
            ),
            options.connect_timeout,
        )
    except BaseException as exc:
        # Cancelled or timed out half-way: never leave a connection nobody owns.
        link.abandon()
        if not isinstance(exc, WSHandshakeError):
            raise
        response = exc.response
        if response is not None:
            body = (exc.raw_body or b"").decode("utf-8", "replace").strip()
            raise HandshakeRefusedError(
                int(response.status), body or response.status.phrase
            ) from None
        raise HandshakeRefusedError(0, str(exc)) from None
    transport = link._transport
    if transport is None:  # picows returns normally when the peer drops the upgrade
        raise ConnectionResetError("connection closed during the WebSocket handshake")
    chosen = (
        transport.response.headers.get("Sec-WebSocket-Protocol") if transport.response else None
    )
    if options.subprotocols and chosen not in options.subprotocols:
        link.close(1002, "subprotocol not selected")
        raise HandshakeRefusedError(0, f"server did not select subprotocol {SUBPROTOCOL}")
    link.attach(handler)
    return link
