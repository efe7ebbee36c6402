"""The error stream of an endpoint (Go API ``Errors()``).

Problems that no caller is waiting for — a bad message from a peer, a late response,
a handler that raised, a refused handshake — are reported here. The stream is bounded
and never blocks the library: when nobody reads it, the oldest reports are dropped,
and every report is logged and counted anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from ntxcp.errors import EndpointError

__all__ = ["ErrorStream"]


class ErrorStream:
    """A bounded, never-blocking stream of :class:`~ntxcp.errors.EndpointError`.

    Args:
        logger: where every report is also logged (WARNING).
        capacity: reports kept for a reader; older ones are dropped beyond it.
    """

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger], capacity: int = 1000
    ) -> None:
        self._log = logger
        self._buffer: deque[EndpointError] = deque(maxlen=capacity)
        self._waiter: asyncio.Future[None] | None = None
        self.reported = 0
        self.dropped = 0
        self._closed = False

    def report(self, error: EndpointError) -> None:
        """Record one problem; never blocks, never raises."""
        self.reported += 1
        self._log.warning("%s", error, extra={"gateway_id": error.gateway_id})
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """End the iteration of every reader once the buffer is drained."""
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> list[EndpointError]:
        """Take every buffered report without waiting."""
        items = list(self._buffer)
        self._buffer.clear()
        return items

    async def __aiter__(self) -> AsyncIterator[EndpointError]:
        """Yield reports as they come, until the endpoint stops."""
        while True:
            while self._buffer:
                yield self._buffer.popleft()
            if self._closed:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
