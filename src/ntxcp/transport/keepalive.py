"""The control center's own keep-alive pings: a hung gateway is *unresponsive* first.

A gateway whose process hangs, or whose network path silently drops packets, leaves
its TCP connection open: nothing tells the control center it is gone. WebSocket pings
(RFC 6455 §5.5.2; spec §1 leaves keep-alive to the transport, as OCPP 1.6-J does) find
it. A ping library's own keep-alive closes the connection as soon as one pong is
missing; the operator then sees a connected gateway until the very moment it is
closed. :class:`KeepAlive` makes the step in between visible. With ``interval`` I and
``timeout`` T, for a peer that stops sending anything at t0:

* t0 + I: a ping (only after I seconds without any frame from the peer: a busy
  connection is never pinged);
* t0 + I + T: no pong: the peer is *unresponsive* (reported), a second ping goes out;
* t0 + I + 2T: still nothing: the connection is closed (1001, then dropped one second
  later if the peer does not take part in the closing handshake).

Any frame from the peer (a pong, a message, another ping) at any time makes it
responsive again (reported) and starts the count anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["KeepAlive"]


class KeepAlive:
    """Pings one connection when it is silent; reports a missed pong; closes after two.

    Args:
        interval: seconds of silence from the peer before a ping.
        timeout: seconds to wait for the pong.
        ping: sends a ping frame.
        close: closes the connection (the second pong was missed).
        report: told ``False`` when a pong is missed, ``True`` when the peer is heard
            from again after that.
    """

    __slots__ = (
        "_close",
        "_handle",
        "_loop",
        "_ping",
        "_report",
        "interval",
        "last_heard",
        "missed",
        "timeout",
    )

    def __init__(
        self,
        interval: float,
        timeout: float,
        ping: Callable[[], None],
        close: Callable[[], None],
        report: Callable[[bool], None],
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._ping = ping
        self._close = close
        self._report = report
        self._loop = asyncio.get_running_loop()
        self.last_heard = self._loop.time()
        self.missed = 0
        """Pongs missed in a row (0, 1: unresponsive)."""
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Watch the connection (it just opened)."""
        self.last_heard = self._loop.time()
        self._handle = self._loop.call_at(self.last_heard + self.interval, self._idle)

    def stop(self) -> None:
        """Stop watching (the connection closed)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def heard(self) -> None:
        """A frame came from the peer (the hot path: a clock read and a compare)."""
        self.last_heard = self._loop.time()
        if self.missed:
            self.missed = 0
            self._report(True)
            self._watch_idle()

    def _watch_idle(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(self.last_heard + self.interval, self._idle)

    def _idle(self) -> None:
        """``interval`` after the last frame heard: ping, unless something came since."""
        due = self.last_heard + self.interval
        if self._loop.time() < due:  # heard from meanwhile: wait from that frame
            self._handle = self._loop.call_at(due, self._idle)
            return
        self._send_ping()

    def _send_ping(self) -> None:
        self._ping()
        self._handle = self._loop.call_later(self.timeout, self._pong_due, self._loop.time())

    def _pong_due(self, pinged_at: float) -> None:
        """``timeout`` after a ping: was anything heard since it left?"""
        if self.last_heard >= pinged_at:
            self._watch_idle()
            return
        self.missed += 1
        if self.missed == 1:
            self._report(False)
            self._send_ping()
            return
        self._handle = None
        self._close()
