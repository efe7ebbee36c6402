"""Helpers of the dashboard tests (and of ``scripts/screenshots.py``).

* :class:`ServiceProcess`: ``python -m ntxcp control-center`` as a subprocess on free
  ports, with a SQLite file in a temporary directory; the ready line gives the URLs.
* :func:`launch_chromium`: Debian's Chromium driven by Playwright, headless. The
  browser build Playwright would download is not used (it cannot be fetched here).
* :class:`GatewayThread`: library gateways (:class:`ntxcp.Gateway`) on an event loop
  of their own, so a synchronous Playwright test can make them boot, report statuses
  and send meter values exactly when it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

import ntxcp
from ntxcp.v10 import types as t
from service_process import ServiceProcess as ServiceProcess  # re-exported

T = TypeVar("T")

CHROMIUM = os.environ.get("NTXCP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium executable to use, or ``None`` when there is none."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def launch_chromium(playwright: Any) -> Any:
    """Launch headless Debian Chromium with Playwright (``playwright.chromium``)."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
    )


class GatewayThread:
    """An event loop on a thread for library gateways driven from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateways: list[ntxcp.Gateway] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the thread's loop and wait (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(
        self,
        url: str,
        gateway_id: str,
        model: str = "DX-TEST",
        *,
        keep_running: bool = False,
        **boot: Any,
    ) -> ntxcp.Gateway:
        """Connect a gateway and boot it (Accepted under the default policy).

        ``keep_running``: when its connection is closed it connects again (0.2 s later),
        as a gateway in the field does; otherwise it stays away.
        """

        async def start() -> ntxcp.Gateway:
            gateway = ntxcp.Gateway(
                gateway_id,
                reconnect=keep_running,
                backoff=ntxcp.Backoff(initial=0.2, maximum=0.2),
                heartbeat=False,
            )
            await gateway.start(url)
            await gateway.boot_notification(model, **boot)
            return gateway

        gateway = self.run(start())
        self.gateways.append(gateway)
        return gateway

    def status(
        self, gateway: ntxcp.Gateway, service: str, status: str, error: str = "NoError"
    ) -> None:
        """Send a StatusNotification (spec §4.1) with the current time."""
        self.run(
            gateway.status_notification(
                service, error, status, timestamp=datetime.now().astimezone()
            )
        )

    def meter_values(
        self,
        gateway: ntxcp.Gateway,
        service: int,
        samples: Sequence[tuple[datetime, str, str, str]],
    ) -> None:
        """Send one MeterValues: ``(timestamp, measurand, value, unit)`` per sample."""
        values = [
            t.MeterValue(
                timestamp=when,
                sampled_value=[
                    t.SampledValue(
                        value=value, measurand=t.Measurand(measurand), unit=t.UnitOfMeasure(unit)
                    )
                ],
            )
            for when, measurand, value, unit in samples
        ]
        self.run(gateway.meter_values(service, values))

    def stop(self, gateway: ntxcp.Gateway) -> None:
        """Close one gateway's connection with 1000 (spec §6.2)."""
        self.run(gateway.stop())
        if gateway in self.gateways:
            self.gateways.remove(gateway)

    def close(self) -> None:
        """Stop every gateway still running, then the loop and its thread."""
        for gateway in list(self.gateways):
            with contextlib.suppress(Exception):  # cleanup goes on
                self.stop(gateway)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
