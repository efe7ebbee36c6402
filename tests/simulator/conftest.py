"""Fixtures of the simulator tests: a recording control center and simulated gateways."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from simulator_helpers import FAST_BACKOFF, CloseCodes, Recorder

from ntxcp import ControlCenter
from ntxcp.simulator import SimulatedGateway


@pytest.fixture
def recorder() -> Recorder:
    """The handler of the control center: records every G→C message."""
    return Recorder()


@pytest.fixture
async def cc(recorder: Recorder) -> AsyncIterator[ControlCenter]:
    """A started control center on a free port, answering with :class:`Recorder`."""
    center = ControlCenter()
    center.set_core_handler(recorder)
    center.set_firmware_management_handler(recorder)
    await center.start(0)
    yield center
    await center.stop(grace=2.0)


@pytest.fixture
async def make_sim(cc: ControlCenter) -> AsyncIterator[Callable[..., SimulatedGateway]]:
    """``make_sim(gateway_id="GW-1", **options)``: a simulated gateway (not started).

    Fast defaults: no periodic meter values or heartbeats unless asked, short reboots.
    Every gateway made here is stopped after the test.
    """
    made: list[SimulatedGateway] = []

    def make(gateway_id: str = "GW-1", **options: Any) -> SimulatedGateway:
        options.setdefault("meter_interval", 0)
        options.setdefault("heartbeat_interval", 0)
        options.setdefault("reboot_delay", 0.05)
        options.setdefault("install_delay", 0.05)
        options.setdefault("backoff", FAST_BACKOFF)
        sim = SimulatedGateway(gateway_id, options.pop("url", cc.url), **options)
        made.append(sim)
        return sim

    yield make
    for gateway in made:
        await gateway.stop()


@pytest.fixture
async def sim(make_sim: Callable[..., SimulatedGateway], recorder: Recorder) -> SimulatedGateway:
    """A started simulated gateway ``GW-1`` whose boot was accepted."""
    gateway = make_sim()
    await gateway.start()
    await recorder.wait_for("StatusNotification", 3)
    return gateway


@pytest.fixture
def close_codes() -> Iterator[CloseCodes]:
    """Close codes of the control center's connections, by gateway id."""
    handler = CloseCodes()
    logger = logging.getLogger("ntxcp.control_center")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
