"""The API listener cannot starve the gateways (issue: hostile peers, finding 6).

Idle and half-sent API connections are closed after the idle timeout, the number of
API connections is capped (one more gets 503), gateways still connect while the API
is saturated, and the open-file limit is raised at start-up where allowed.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from service_helpers import gateway, until

from ntxcp.service import Service, ServiceConfig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service with short API idle and body timeouts and at most 4 API connections."""
    service = Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "l.sqlite")))
    service.api_idle_timeout = 0.5
    service.api_body_timeout = 0.5
    service.max_api_connections = 4
    async with service:
        yield service


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``predicate()`` holds."""

    async def holds() -> bool:
        return predicate()

    await until(holds, timeout=timeout, interval=0.02)


def _connect(service: Service, data: bytes = b"") -> socket.socket:
    address = urlsplit(service.api_url)
    sock = socket.create_connection((address.hostname, address.port))
    if data:
        sock.sendall(data)
    sock.setblocking(False)
    return sock


async def _read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    loop = asyncio.get_running_loop()
    received = b""
    async with asyncio.timeout(timeout):
        while chunk := await loop.sock_recv(sock, 65536):
            received += chunk
    return received


async def test_idle_and_half_sent_connections_are_closed(service: Service) -> None:
    idle = _connect(service)
    partial = _connect(service, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        assert await _read_all(idle) == b""
        assert await _read_all(partial) == b""
    finally:
        idle.close()
        partial.close()
    assert service.api_listener is not None
    await eventually(lambda: service.api_listener.connections == 0)  # type: ignore[union-attr]


async def test_api_connections_are_capped_and_gateways_still_connect(service: Service) -> None:
    assert service.api_listener is not None
    held = [_connect(service) for _ in range(4)]
    try:
        await eventually(lambda: service.api_listener.connections == 4)  # type: ignore[union-attr]
        refused = _connect(service, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = await _read_all(refused)
        finally:
            refused.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"too many API connections" in answer
        assert service.api_listener.refused == 1
        async with gateway(service.ws_url, "GW-1") as gw:  # the gateway port is not affected
            await gw.heartbeat()
    finally:
        for sock in held:
            sock.close()
    await eventually(lambda: service.api_listener.connections == 0)  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http, http.get(service.api_url + "healthz") as ok:
        assert ok.status == 200


def test_the_open_file_limit_is_raised_where_allowed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    code = (
        "import resource\n"
        "from ntxcp.service.api_listener import raise_open_file_limit\n"
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(before, raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard)),
    )
    before, reported, after = (int(word) for word in done.stdout.split())
    assert before == lowered
    expected = hard if hard != resource.RLIM_INFINITY else lowered
    assert reported == after == expected


async def test_a_trickled_body_is_answered_408_after_the_body_timeout(service: Service) -> None:
    head = (
        b"POST /api/gateways HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    sock = _connect(service, head + b'{"id": ')  # the rest never comes
    try:
        answer = await _read_all(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b"did not arrive within 0.5 s" in answer
    url = service.api_url + "api/gateways"  # a whole body in time is served
    async with aiohttp.ClientSession() as http, http.post(url, json={"id": "GW-B"}) as made:
        assert made.status == 201


async def test_malformed_requests_are_counted_and_logged_without_a_traceback(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        sock = _connect(service, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        try:
            answer = await _read_all(sock)
        finally:
            sock.close()
        assert answer.split(b" ", 2)[1] == b"400", answer[:80]
    assert service.metrics.api_bad_requests.value() == 5
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]  # one line per minute at most
    assert loud[0].exc_info is None
    assert "malformed HTTP request" in loud[0].getMessage()
    async with aiohttp.ClientSession() as http, http.get(service.api_url + "metrics") as page:
        assert "ntxcp_api_bad_requests_total 5" in await page.text()
