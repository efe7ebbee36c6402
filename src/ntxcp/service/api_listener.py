"""The HTTP API's listening socket, guarded against idle and excess connections.

The API shares the process with thousands of gateway connections and their file
descriptors (spec §6.1), so a client of the API must not be able to starve them:

* a connection that sends no complete request head within ``idle_timeout`` seconds of
  connecting, or nothing for ``idle_timeout`` seconds after a response, is closed
  (aiohttp's keep-alive timer, which runs from the moment of connecting);
* at most ``max_connections`` API connections are open; one more is answered
  ``503`` and closed at once, so a flood of API connections never takes the file
  descriptors gateways need;
* a request body must arrive within ``DEFAULT_API_BODY_TIMEOUT`` seconds of its head
  (408, then the connection is closed after at most ``API_LINGERING_TIME``);
* a malformed request (answered 400 by aiohttp's parser) is counted and reported in
  one log line a minute at most, without a traceback (:class:`MalformedRequestLog`):
  a peer sending garbage to the API port cannot flood the log;
* at start-up the soft limit of open files is raised to the hard limit where the
  system allows (:func:`raise_open_file_limit`), and the API's share is capped at an
  eighth of it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import time
from collections.abc import Callable, Mapping
from ssl import SSLContext
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = [
    "API_LINGERING_TIME",
    "DEFAULT_API_BODY_TIMEOUT",
    "DEFAULT_API_IDLE_TIMEOUT",
    "DEFAULT_MAX_API_CONNECTIONS",
    "ApiListener",
    "MalformedRequestLog",
    "raise_open_file_limit",
]

_log = logging.getLogger("ntxcp.service")

DEFAULT_API_IDLE_TIMEOUT = 5.0
"""Seconds an API connection may stay without a complete request head (or idle)."""

DEFAULT_API_BODY_TIMEOUT = 10.0
"""Seconds a request body may take to arrive once the request head has (then 408)."""

API_LINGERING_TIME = 1.0
"""Seconds the rest of an unread body is read and dropped after an early answer
(408, 413) before the connection is closed (aiohttp's default is 10)."""

MALFORMED_REPORT_INTERVAL = 60.0
"""Seconds between two log lines about malformed API requests."""

DEFAULT_MAX_API_CONNECTIONS = 256
"""API connections open at once (capped further at an eighth of the open-file limit)."""

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 39\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
    b'{"error": "too many API connections"}\r\n'
)


_BUSY_LINGER = 1.0  # s a refused connection may take to read its answer


def raise_open_file_limit() -> int:
    """Raise the soft limit of open files to the hard limit, where allowed.

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # not allowed here: keep what we have
            _log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return int(soft)


class MalformedRequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log, with malformed requests counted instead of dumped.

    aiohttp logs every request its parser rejects (400) at ERROR with a traceback;
    anyone who can reach the API port could fill the log that way. Here such a request
    calls ``count`` and is reported in one line (peer, reason, how many since the last
    line) at most every :data:`MALFORMED_REPORT_INTERVAL` seconds; every other
    problem aiohttp reports is logged as before.

    Args:
        count: called once per malformed request (the service's metric).
    """

    def __init__(self, count: Callable[[], None]) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._count = count
        self._unreported = 0
        self._next_report = 0.0

    def exception(
        self,
        msg: object,
        *args: object,
        exc_info: Any = True,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count a malformed request, or log any other problem with its traceback."""
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, HttpProcessingError) and 400 <= error.code < 500:
            self._malformed(args[0] if args else "an unknown peer", error)
            return
        super().exception(msg, *args, exc_info=exc_info, extra=extra, **kwargs)

    def _malformed(self, peer: object, error: HttpProcessingError) -> None:
        self._count()
        self._unreported += 1
        now = time.monotonic()
        if now < self._next_report:
            return
        _log.warning(
            "malformed HTTP request on the API port from %s (%s); %d since the last "
            "such line (counted in ntxcp_api_bad_requests_total)",
            peer,
            " ".join(str(error.message).split()),
            self._unreported,
        )
        self._unreported = 0
        self._next_report = now + MALFORMED_REPORT_INTERVAL


class _Busy(asyncio.Protocol):
    """Answers one connection ``503`` and ends it (the API is at its cap).

    What the client sends is read and dropped, so closing does not reset the
    connection before the client read the answer; the connection is dropped after
    ``_BUSY_LINGER`` seconds at the latest.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writer: Any = transport
        writer.write(_BUSY)
        if writer.can_write_eof():
            writer.write_eof()
        asyncio.get_running_loop().call_later(_BUSY_LINGER, writer.abort)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not served

    def eof_received(self) -> bool:
        return False  # the client is done: close


class ApiListener:
    """Listens for the HTTP API with an idle timeout and a connection cap.

    Args:
        runner: the set-up runner of the API application.
        max_connections: API connections open at once.
    """

    def __init__(self, runner: web.BaseRunner, max_connections: int) -> None:
        self.runner = runner
        self.max_connections = max_connections
        self.refused = 0
        """Connections answered 503 because the cap was reached."""
        self._server: asyncio.Server | None = None

    def _protocol(self) -> Any:
        server = self.runner.server
        assert server is not None
        if len(server.connections) >= self.max_connections:
            self.refused += 1
            return _Busy()
        return server()

    async def start(self, host: str, port: int, ssl: SSLContext | None = None) -> int:
        """Listen on ``host``/``port`` (HTTPS with ``ssl``); returns the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host, port, backlog=128, reuse_address=True, ssl=ssl
        )
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening (open connections are closed by the runner's cleanup)."""
        if self._server is not None:
            self._server.close()

    @property
    def connections(self) -> int:
        """API connections open now."""
        server = self.runner.server
        return 0 if server is None else len(server.connections)
