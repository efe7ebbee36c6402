"""The HTTP API's listening socket, guarded against idle and excess connections.

The API shares the process with thousands of gateway connections and their file
descriptors (spec §6.1), so a client of the API must not be able to starve them:

* a connection that sends no complete request head within ``idle_timeout`` seconds of
  connecting, or nothing for ``idle_timeout`` seconds after a response, is closed
  (aiohttp's keep-alive timer, which runs from the moment of connecting);
* at most ``max_connections`` API connections are open; one more is answered
  ``503`` and closed at once, so a flood of API connections never takes the file
  descriptors gateways need;
* at start-up the soft limit of open files is raised to the hard limit where the
  system allows (:func:`raise_open_file_limit`), and the API's share is capped at an
  eighth of it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from ssl import SSLContext
from typing import Any

from aiohttp import web

__all__ = [
    "DEFAULT_API_IDLE_TIMEOUT",
    "DEFAULT_MAX_API_CONNECTIONS",
    "ApiListener",
    "raise_open_file_limit",
]

_log = logging.getLogger("ntxcp.service")

DEFAULT_API_IDLE_TIMEOUT = 5.0
"""Seconds an API connection may stay without a complete request head (or idle)."""

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
