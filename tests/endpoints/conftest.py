"""Fixtures of the end-to-end endpoint tests: started endpoints that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from endpoint_helpers import GW, RawServer, ThreadedLoop

import ntxcp
import ntxcp.sync


@pytest.fixture
async def make_cc() -> AsyncIterator[Callable[..., Any]]:
    """``await make_cc(**options)``: a started control center on a free port."""
    started: list[ntxcp.ControlCenter] = []

    async def make(*, path: str | None = None, **options: Any) -> ntxcp.ControlCenter:
        cc = ntxcp.ControlCenter(**options)
        await cc.start(0, path)
        started.append(cc)
        return cc

    yield make
    for cc in started:
        await cc.stop(grace=2.0)


@pytest.fixture
async def make_gw() -> AsyncIterator[Callable[..., Any]]:
    """``await make_gw(url, gateway_id=GW, start=True, **options)``: a connected gateway.

    Gateways made here do not reconnect unless asked (``reconnect=True``).
    """
    made: list[ntxcp.Gateway] = []

    async def make(
        url: str | None, gateway_id: str = GW, *, start: bool = True, **options: Any
    ) -> ntxcp.Gateway:
        options.setdefault("reconnect", False)
        gw = ntxcp.Gateway(gateway_id, **options)
        made.append(gw)
        if start:
            assert url is not None
            await gw.start(url)
        return gw

    yield make
    for gw in made:
        await gw.stop()


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    """A bare picows server speaking ``ntxcp1.0``."""
    server = await RawServer().start()
    yield server
    await server.close()


@pytest.fixture
def threaded_loop() -> Iterator[ThreadedLoop]:
    """An event loop on a background thread (for tests of the blocking gateway)."""
    loop = ThreadedLoop()
    yield loop
    loop.close()


@pytest.fixture
def threaded_cc(threaded_loop: ThreadedLoop) -> Iterator[Callable[..., ntxcp.ControlCenter]]:
    """``make(**options)``: a control center started on the background loop."""
    started: list[ntxcp.ControlCenter] = []

    def make(**options: Any) -> ntxcp.ControlCenter:
        async def start() -> ntxcp.ControlCenter:
            cc = ntxcp.ControlCenter(**options)
            await cc.start(0)
            return cc

        cc: ntxcp.ControlCenter = threaded_loop.run(start())
        started.append(cc)
        return cc

    yield make
    for cc in started:
        threaded_loop.run(cc.stop(grace=2.0))


@pytest.fixture
def make_sync_gw() -> Iterator[Callable[..., ntxcp.sync.Gateway]]:
    """``make(gateway_id=GW, **options)``: a blocking gateway, stopped at the end."""
    made: list[ntxcp.sync.Gateway] = []

    def make(gateway_id: str = GW, **options: Any) -> ntxcp.sync.Gateway:
        options.setdefault("reconnect", False)
        gw = ntxcp.sync.Gateway(gateway_id, **options)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()
