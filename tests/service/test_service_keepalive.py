"""Keep-alive of a real service process: a hung gateway is unresponsive, then closed.

The gateways are bare WebSocket clients (aiohttp, no automatic pongs) that keep their
TCP connection open and answer pings only when the test says so. What the operator
sees is read where the operator reads it: the API (``/api/gateways/{id}``,
``/api/fleet``), the event stream (``/api/events``) and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import Api, ServiceProcess, until

pytestmark = pytest.mark.timeout(120)


@asynccontextmanager
async def _service(directory: Path, interval: str, timeout: str) -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess(
        directory, "--ping-interval", interval, "--ping-timeout", timeout
    ).start()
    try:
        yield process
        assert process.stop() == 0, process.stderr()
    finally:
        process.kill()


@asynccontextmanager
async def _connection_states(
    http: aiohttp.ClientSession, service: ServiceProcess, gateway_id: str
) -> AsyncIterator[list[str]]:
    """The ``state`` of every ``connection`` event about a gateway, as they arrive."""
    states: list[str] = []
    subscribed = asyncio.Event()

    async def read() -> None:
        params = {"kinds": "connection", "gateway": gateway_id}
        async with http.get(f"{service.api_url}api/events", params=params) as answer:
            async for line in answer.content:
                if line.startswith(b"data:"):
                    data = json.loads(line[5:])
                    subscribed.set()  # the first one is "hello"
                    if "state" in data:
                        states.append(data["state"])

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        yield states
    finally:
        task.cancel()


async def _state(api: Api, gateway_id: str) -> str:
    status, item = await api.get(f"/api/gateways/{gateway_id}")
    assert status == 200, item
    return str(item["state"])


async def _metric(api: Api, name: str) -> float:
    _, text = await api.get("/metrics")
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match is not None, name
    return float(match[1])


async def _hung(http: aiohttp.ClientSession, service: ServiceProcess, gateway_id: str) -> Any:
    """A gateway that answers no ping (it reads nothing) and keeps its TCP connection."""
    return await http.ws_connect(
        f"{service.ws_url}/{gateway_id}", protocols=("ntxcp1.0",), autoping=False, heartbeat=None
    )


async def test_a_hung_gateway_is_unresponsive_then_closed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Unresponsive after --ping-interval + --ping-timeout of silence, closed after one
    # more --ping-timeout; with the defaults (30 + 30 s) that is 60 s and 90 s.
    async with _service(tmp_path, "0.3", "0.5") as service:
        api = Api(http, service.api_url, None)
        async with _connection_states(http, service, "hung-1") as states:
            hung = await _hung(http, service, "hung-1")
            try:
                message = await hung.receive(timeout=15)  # the pings go unanswered
                while message.type is aiohttp.WSMsgType.PING:
                    message = await hung.receive(timeout=15)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                if message.type is aiohttp.WSMsgType.CLOSE:
                    assert message.data == 1001
            finally:
                await hung.close()
            await until(lambda: states[-1:] == ["disconnected"])
        assert states == ["connected", "unresponsive", "disconnected"]
        assert await _state(api, "hung-1") == "disconnected"
        assert await _metric(api, "ntxcp_unresponsive_gateways") == 0
        assert await _metric(api, "ntxcp_gateway_unresponsive_total") == 1


async def test_an_unresponsive_gateway_that_answers_again_is_connected(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The gateway must answer within --ping-timeout of being unresponsive, or the
    # second missed pong closes it: 3 s leaves room on a loaded machine.
    async with _service(tmp_path, "0.3", "3") as service:
        api = Api(http, service.api_url, None)
        async with _connection_states(http, service, "slow-1") as states:
            slow = await _hung(http, service, "slow-1")
            try:
                await until(lambda: "unresponsive" in states, timeout=15)
                assert await _state(api, "slow-1") == "unresponsive"
                assert await _metric(api, "ntxcp_unresponsive_gateways") == 1
                status, fleet = await api.get("/api/fleet", state="unresponsive")
                assert status == 200 and [i["id"] for i in fleet["items"]] == ["slow-1"]
                assert fleet["attention"]["gateways"] == 1 and fleet["states"]["connected"] == 0
                assert not slow.closed

                await slow.pong()  # it is back: any frame will do, a pong too
                await until(lambda: states[-1:] == ["connected"])
                assert await _state(api, "slow-1") == "connected"
                assert await _metric(api, "ntxcp_unresponsive_gateways") == 0
                status, fleet = await api.get("/api/fleet", state="connected")
                assert [i["id"] for i in fleet["items"]] == ["slow-1"]
                assert fleet["attention"]["gateways"] == 0
            finally:
                await slow.close()
            await until(lambda: states[-1:] == ["disconnected"])
        assert states == ["connected", "unresponsive", "connected", "disconnected"]
