"""The live part of the HTTP API: the event stream and every gateway's statuses.

:func:`setup` (called by :func:`ntxcp.service.api.create_app`) adds:

* ``GET /api/events``: live events as server-sent events (``text/event-stream``),
  see :mod:`.events` for the kinds. Query parameters (declared in
  :mod:`.api_contract`): ``gateway`` (only events about this gateway) and ``kinds``
  (comma-separated). Like every ``/api/*`` route it needs the bearer token when one is
  configured, and ends as soon as that token is revoked; the dashboard reads the
  stream with ``fetch`` so it can send the
  ``Authorization`` header (an ``EventSource`` cannot), and the token never appears
  in a URL;
* ``GET /api/status``: the current status of every service of a page of gateways
  (what ``/api/gateways/{id}/status`` returns as ``current``, for many gateways at
  once), paged like ``/api/gateways`` with ``after`` and ``limit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from ntxcp.service import queries
from ntxcp.service.access import add_route, current_principal
from ntxcp.service.api_contract import parse_query
from ntxcp.service.events import Subscription, TooManySubscribersError
from ntxcp.service.http_errors import json_response
from ntxcp.v10.types import encode_datetime

if TYPE_CHECKING:
    from ntxcp.service.service import Service

__all__ = ["KEEPALIVE_SECONDS", "setup"]

_log = logging.getLogger("ntxcp.service.live_api")

KEEPALIVE_SECONDS = 15.0
"""Seconds between comment lines on an idle event stream (keeps proxies from closing it)."""

_RETRY_MS = 2000  # the client's reconnect delay, sent with every stream
_STREAM_BUFFER = 64 * 1024  # bytes an event stream may have unsent before writes wait
_BATCH = 256  # events written at most in one write
_CHECK_INTERVAL = 1.0  # s between checks that a quiet stream's client is still there


class _LiveApi:
    """The handlers of the live routes, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.streams: dict[str | None, set[Subscription]] = {}
        """The open event streams, by the name of the token that opened them."""

    def end_streams_of(self, token_name: str) -> None:
        """End every event stream opened with a token (it was revoked)."""
        for subscription in self.streams.pop(token_name, set()):
            subscription.close()

    async def statuses(self, request: web.Request) -> web.Response:
        params = parse_query(request.query, "listStatuses")
        limit = params["limit"]
        items = await self.service.storage.read(
            queries.current_statuses, params["after"], limit + 1
        )
        # Paged by gateway: a page holds every service of at most `limit` gateways.
        gateways = list(dict.fromkeys(item["gatewayId"] for item in items))
        more = len(gateways) > limit
        if more:
            items = [item for item in items if item["gatewayId"] != gateways[limit]]
        return json_response(
            {"count": len(items), "items": items, "next": gateways[limit - 1] if more else None}
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        params = parse_query(request.query, "streamEvents")
        gateway_id: str | None = params["gateway"]
        kinds: list[str] | None = params["kinds"]
        hub = self.service.events
        try:
            stream = hub.subscribe(gateway_id, kinds)
            subscription = stream.__enter__()
        except TooManySubscribersError as exc:
            return json_response({"error": str(exc)}, 503)
        name = current_principal().name
        self.streams.setdefault(name, set()).add(subscription)
        try:
            return await self._stream(request, subscription)
        finally:
            stream.__exit__(None, None, None)
            open_streams = self.streams.get(name)
            if open_streams is not None:
                open_streams.discard(subscription)
                if not open_streams:
                    del self.streams[name]

    async def _stream(self, request: web.Request, subscription: Subscription) -> web.StreamResponse:
        """Write the subscription's events until it ends, the client leaves or stalls."""
        hub = self.service.events
        transport = request.transport
        writing = _Writing()

        def dropped() -> None:  # fell behind: if it is stuck in a write, end it now
            if writing.count and transport is not None:
                transport.abort()

        subscription.on_drop = dropped
        if transport is not None:  # keep what a slow reader can hold back small
            transport.set_write_buffer_limits(high=_STREAM_BUFFER)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _STREAM_BUFFER)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",  # tell buffering proxies to pass events at once
            }
        )
        try:
            await response.prepare(request)
            hello = {
                "time": encode_datetime(datetime.now(UTC)),
                "version": self.service.version,
            }
            await self._write(response, b"retry: %d\n" % _RETRY_MS + hub.hello(hello), writing)
            quiet = 0.0
            while True:
                try:
                    async with asyncio.timeout(_CHECK_INTERVAL):
                        event = await subscription.get()
                except TimeoutError:
                    if transport is None or transport.is_closing():
                        break  # the client left: free its place at once
                    quiet += _CHECK_INTERVAL
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        await self._write(response, b": keep-alive\n\n", writing)
                    continue
                quiet = 0.0
                if event is None:  # the service stops, or the subscriber fell behind
                    break
                # What queued up meanwhile goes out in the same write: a busy stream
                # costs one write per batch, not one per event.
                more, ended = subscription.take_ready(_BATCH)
                data = b"".join([event.message, *(e.message for e in more)])
                await self._write(response, data, writing)
                if ended:
                    break
        except ConnectionError as exc:  # the client went away
            _log.debug("event stream closed: %s", exc)
        except TimeoutError:  # the client reads nothing: do not wait for it
            _log.info("event stream dropped: the client stopped reading")
            if transport is not None:
                transport.abort()
        return response

    async def _write(self, response: web.StreamResponse, data: bytes, writing: _Writing) -> None:
        async with asyncio.timeout(self.service.events.write_timeout):
            writing.count += 1
            try:
                await response.write(data)
            finally:
                writing.count -= 1


class _Writing:
    """Whether an event stream's handler waits for a write to complete."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def setup(app: web.Application, service: Service) -> None:
    """Add the live routes (the event stream, all statuses).

    Args:
        app: the API's application (routes may still be added).
        service: the running service.
    """
    live = _LiveApi(service)
    add_route(app, "GET", "/api/events", live.events, "streamEvents")
    add_route(app, "GET", "/api/status", live.statuses, "listStatuses")
    service.tokens.on_revoke.append(live.end_streams_of)
