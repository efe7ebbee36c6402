"""Admission pacing: a storm of reconnecting gateways never starves the connected ones.

After a restart (or the loss of a cluster node) thousands of gateways reconnect within
a second (spec §6.2: the first backoff step). Accepting them as fast as the kernel
hands them over puts all their handshakes, authentication checks and first messages
on the event loop at once, and the gateways already connected wait behind them. The
server therefore accepts from its listening socket at most 32 connections per turn of
the event loop, and only while

* a token bucket of ``accept_rate`` connections per second (a tenth of a second's
  worth at once) has a token, and
* when ``max_handshakes`` is set, fewer than that many connections are between their
  accept and the decision on their upgrade request (TLS handshake, request head,
  authentication).

A connection stops counting once its upgrade is decided, once it is gone, or
:data:`PLACE_TIMEOUT` seconds after its accept, whichever comes first: a client that
opens connections and sends nothing (or a password check queued behind others) does
not hold a place for its whole handshake timeout, so a few silent clients cannot stop
the admission of everyone else.

Otherwise the listening socket is not read at all: new connections wait, already
connected at the TCP level, in the kernel's accept queue (the ``listen`` backlog),
and are taken in order as handshakes finish and tokens come back. Nothing is refused
that would have been accepted; a gateway only waits longer for its upgrade answer.
The backlog must hold the storm (``ServerOptions.backlog``; Linux caps it at
``net.core.somaxconn``, whose default is 4096), else the kernel drops the excess
connection attempts and those gateways retry after their TCP timeout.

:class:`AdmissionPacer` is the accounting (and what the metrics read);
:class:`PacedListener` reads the listening sockets under its control.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ACCEPT_RATE",
    "DEFAULT_MAX_HANDSHAKES",
    "AdmissionCounts",
    "AdmissionPacer",
    "HandshakeSlot",
    "PacedListener",
    "TokenBucket",
    "listening_sockets",
]

_log = logging.getLogger("ntxcp.transport")

DEFAULT_MAX_HANDSHAKES = 0
"""Connections whose upgrade is not decided yet, at most, before accepting pauses (0: off).

Off by default: a handshake waits on round trips more than on the CPU (the TLS
handshake, the request), so a cap limits the admission rate without saving the loop
any work (64 halved the TLS admission rate of a loaded machine), while the accept
rate bounds the work itself.
"""

DEFAULT_ACCEPT_RATE = 0.0
"""New connections accepted per second at most (0: no limit, the default).

Off by default: on the 2-core development machine, loaded by other work, 1,000 a
second did not lower the probe's Heartbeat p99 during a storm of 5,000 gateways
(scheduling noise dominated), and TLS fleets took twice as long to come back (clients
waiting in the backlog ran into their connect timeout and backed off). About 0.6 ms of
event-loop time follows each admitted gateway, so 1,000 a second would leave the loop
at least a third of its time for the connected gateways; set it where that matters
more than the fastest admission.
"""

PLACE_TIMEOUT = 1.0
"""Seconds an accepted connection counts among the handshakes in progress, at most."""

_ACCEPT_BATCH = 32  # most connections accepted in one readiness callback
_RESOURCE_PAUSE = 1.0  # s without accepting after the process ran out of descriptors
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class AdmissionCounts:
    """The admission of a listening server at one moment (what the metrics show).

    Attributes:
        accepted: connections accepted so far.
        handshakes: upgrade requests decided so far (admitted or refused).
        in_progress: connections accepted whose upgrade is not decided yet.
        waiting: connections waiting in the kernel's accept queue (Linux; else 0).
        pauses: times accepting paused because of the cap or the rate.
    """

    accepted: int = 0
    handshakes: int = 0
    in_progress: int = 0
    waiting: int = 0
    pauses: int = 0


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up.

    Args:
        rate: tokens per second (0: unlimited, every take succeeds).
        burst: the bucket's size (default: a tenth of a second's worth, at least one).
        clock: the time source (seconds).
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._tokens = self.burst
        self._since = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._since) * self.rate)
        self._since = now
        return self._tokens

    def available(self) -> int:
        """Whole tokens in the bucket now (a large number when unlimited)."""
        if self.rate <= 0:
            return _ACCEPT_BATCH
        return math.floor(self._refill())

    def take(self) -> None:
        """Spend one token (call only when :meth:`available` said there is one)."""
        if self.rate > 0:
            self._tokens -= 1.0

    def wait(self) -> float:
        """Seconds until the next whole token (0 when there is one)."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, (1.0 - self._refill()) / self.rate)


class AdmissionPacer:
    """How many handshakes are in progress, and whether another may start.

    Args:
        max_handshakes: handshakes in progress at most (0: no limit).
        accept_rate: connections accepted per second at most (0: no limit).
        clock: the time source of the rate (seconds).

    Attributes:
        accepted: connections accepted so far.
        handshakes: upgrade requests decided so far (admitted or refused).
        in_progress: connections accepted whose upgrade is not decided yet.
        pauses: times accepting paused because of the cap or the rate.
    """

    def __init__(
        self,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        accept_rate: float = DEFAULT_ACCEPT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_handshakes < 0 or accept_rate < 0:
            raise ValueError("max_handshakes and accept_rate must not be negative")
        self.max_handshakes = max_handshakes
        self.bucket = TokenBucket(accept_rate, clock=clock)
        self.accepted = 0
        self.handshakes = 0
        self.in_progress = 0
        self.pauses = 0
        self.on_room: Callable[[], object] | None = None
        """Called when a finished handshake made room again (the listener resumes)."""

    @property
    def accept_rate(self) -> float:
        """Connections accepted per second at most (0: no limit)."""
        return self.bucket.rate

    def room(self) -> int:
        """How many connections may be accepted now (at most one batch)."""
        free = _ACCEPT_BATCH
        if self.max_handshakes:
            free = min(free, self.max_handshakes - self.in_progress)
        if free <= 0:
            return 0
        return min(free, self.bucket.available())

    def started(self) -> HandshakeSlot:
        """Count an accepted connection; its slot is released once its upgrade is decided."""
        self.bucket.take()
        self.accepted += 1
        self.in_progress += 1
        return HandshakeSlot(self)

    def _free(self) -> None:
        full = bool(self.max_handshakes) and self.in_progress >= self.max_handshakes
        self.in_progress -= 1
        if full and self.on_room is not None:
            self.on_room()


class HandshakeSlot:
    """One connection's place among the handshakes in progress.

    The place is freed once (decision, end of the connection, or expiry); the decision
    is counted once, even when it comes after the place expired.
    """

    __slots__ = ("_decided", "_held", "_pacer", "_timer")

    def __init__(self, pacer: AdmissionPacer) -> None:
        self._pacer = pacer
        self._held = True
        self._decided = False
        self._timer: asyncio.TimerHandle | None = None

    def expire_after(self, seconds: float) -> None:
        """Free the place after ``seconds`` unless it was freed before."""
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._free()

    def release(self, decided: bool) -> None:
        """The upgrade was decided (``decided``) or the connection ended before that."""
        if decided and not self._decided:
            self._decided = True
            self._pacer.handshakes += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._free()

    def _free(self) -> None:
        if self._held:
            self._held = False
            self._pacer._free()


async def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bind and listen on every address of ``host`` (as ``loop.create_server`` does).

    Raises:
        OSError: an address cannot be resolved or bound.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # each family on its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"{exc.strerror} ({host}:{port})") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def accept_queue_length(sock: socket.socket) -> int:
    """Connections waiting in the kernel's accept queue of a listening socket (Linux).

    Returns:
        The length, or 0 where the system does not tell it.
    """
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:  # pragma: no cover - Linux has it
        return 0
    try:
        # struct tcp_info: 8 one-byte fields, then tcpi_rto, _ato, _snd_mss, _rcv_mss,
        # tcpi_unacked: for a listening socket, the length of its accept queue.
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 32)
        waiting: int = struct.unpack_from("I", info, 24)[0]
    except (OSError, struct.error):  # pragma: no cover - closed socket, other kernels
        return 0
    return waiting


class PacedListener:
    """Accepts from listening sockets while the :class:`AdmissionPacer` has room.

    Args:
        sockets: the listening sockets (non-blocking).
        pacer: the accounting.
        start: takes over an accepted connection with its handshake slot.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        pacer: AdmissionPacer,
        start: Callable[[socket.socket, HandshakeSlot], object],
    ) -> None:
        self.sockets = list(sockets)
        self.pacer = pacer
        self._start = start
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        pacer.on_room = self.resume

    def waiting(self) -> int:
        """Connections waiting in the kernel's accept queues now."""
        if self._closed:
            return 0
        return sum(accept_queue_length(sock) for sock in self.sockets)

    def counts(self) -> AdmissionCounts:
        """The admission so far and now."""
        pacer = self.pacer
        return AdmissionCounts(
            pacer.accepted, pacer.handshakes, pacer.in_progress, self.waiting(), pacer.pauses
        )

    def resume(self) -> None:
        """Read the listening sockets again (when open and not reading already)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed or self._reading:
            return
        self._reading = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause(self, seconds: float | None) -> None:
        """Stop reading; resume after ``seconds`` (``None``: when a handshake ends)."""
        if self._reading:
            self._reading = False
            self.pacer.pauses += 1
            for sock in self.sockets:
                self._loop.remove_reader(sock.fileno())
        if seconds is not None and self._timer is None and not self._closed:
            self._timer = self._loop.call_later(seconds, self.resume)

    def _accept(self, sock: socket.socket) -> None:
        pacer = self.pacer
        for _ in range(pacer.room()):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:  # wait for descriptors to be freed
                    _log.error("cannot accept connections: %s; pausing 1 s", exc)
                    self._pause(_RESOURCE_PAUSE)
                    return
                continue  # the peer gave up already (ECONNABORTED ...)
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            slot = pacer.started()
            slot.expire_after(PLACE_TIMEOUT)
            self._start(conn, slot)
        if pacer.room() <= 0:
            full = pacer.max_handshakes and pacer.in_progress >= pacer.max_handshakes
            self._pause(None if full else pacer.bucket.wait())

    def close(self) -> None:
        """Stop accepting and close the listening sockets."""
        if self._closed:
            return
        self._pause(None)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sock in self.sockets:
            sock.close()
