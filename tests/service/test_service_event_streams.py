"""Event streams cannot hurt the service (issue: hostile peers, finding 7).

A subscriber of ``/api/events`` that reads too slowly is dropped (its stream ends
with ``resync``; a browser reconnects and reloads); one that reads nothing at all is
disconnected after the write timeout; at most ``max_subscribers`` streams are open.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from service_helpers import until

from ntxcp.service import Service, ServiceConfig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service without authentication."""
    async with Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "e.sqlite"))) as svc:
        yield svc


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``predicate()`` holds."""

    async def holds() -> bool:
        return predicate()

    await until(holds, timeout=timeout, interval=0.02)


def _stalled_reader(service: Service) -> socket.socket:
    """A client that asks for the event stream and never reads it."""
    address = urlsplit(service.api_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address.hostname, address.port))
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.setblocking(False)
    return sock


async def _closed_by_server(sock: socket.socket) -> bool:
    """Read what is buffered; true once the server ended the connection."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            async with asyncio.timeout(0.2):
                if not await loop.sock_recv(sock, 65536):
                    return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def test_slow_readers_are_dropped_and_good_ones_served(service: Service) -> None:
    hub = service.events
    hub.write_timeout = 0.5
    stalled = [_stalled_reader(service) for _ in range(3)]
    received: list[bytes] = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(service.api_url + "api/events?kinds=meter") as good,
    ):
        await eventually(lambda: hub.subscribers == 4)

        async def read() -> None:
            async for line in good.content:
                if line.startswith(b"event: "):
                    received.append(line.strip())

        reader = asyncio.ensure_future(read())
        blob = "x" * 2000
        for batch in range(60):
            for n in range(25):
                hub.publish("meter", f"GW-{n}", {"batch": batch, "blob": blob})
            await asyncio.sleep(0.01)
        await eventually(lambda: hub.dropped_subscribers == 3)
        assert hub.subscribers == 1  # the good reader keeps its stream
        await eventually(lambda: len(received) == 1 + 60 * 25)
        reader.cancel()
    assert received[0] == b"event: hello"
    assert set(received[1:]) == {b"event: meter"}
    for sock in stalled:
        try:
            await until(lambda s=sock: _closed_by_server(s), timeout=10)
        finally:
            sock.close()
    await eventually(lambda: hub.subscribers == 0)


async def test_a_full_queue_ends_the_stream_with_resync(service: Service) -> None:
    hub = service.events
    hub.queue_size = 5
    async with (
        aiohttp.ClientSession() as http,
        http.get(service.api_url + "api/events?kinds=seen") as stream,
    ):
        await eventually(lambda: hub.subscribers == 1)
        for n in range(10):  # no await in between: the stream cannot keep up
            hub.publish("seen", f"GW-{n}", {"time": "t"})
        body = await asyncio.wait_for(stream.content.read(), 10)
    events = [line for line in body.split(b"\n") if line.startswith(b"event: ")]
    assert events == [b"event: hello", b"event: resync"]
    assert hub.dropped_subscribers == 1 and hub.subscribers == 0


async def test_event_streams_are_limited(service: Service) -> None:
    service.events.max_subscribers = 2
    async with aiohttp.ClientSession() as http:
        first = await http.get(service.api_url + "api/events")
        second = await http.get(service.api_url + "api/events")
        try:
            async with http.get(service.api_url + "api/events") as third:
                assert third.status == 503
                assert "at most 2" in (await third.json())["error"]
        finally:
            first.close()
            second.close()
        await eventually(lambda: service.events.subscribers == 0)
        async with http.get(service.api_url + "api/events") as again:
            assert again.status == 200
