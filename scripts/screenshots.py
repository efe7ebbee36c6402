"""Take the dashboard screenshots of the documentation (overview, gateway page, phone).

They go to docs/img/overview.png, gateway.png and phone-overview.png (the overview at
a phone's 390 by 844).

Runs the real control center (``python -m ntxcp control-center --demo 3``) on free
ports with a throw-away database, adds a few gateways with an hour of history (status
changes, meter values, firmware and diagnostics notifications), and photographs the
pages with the same headless Debian Chromium set-up as ``tests/dashboard``.

Usage::

    .venv/bin/python scripts/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "dashboard"))
sys.path.insert(0, str(ROOT / "tests"))  # service_process, shared with the service tests

from dashboard_helpers import GatewayThread, ServiceProcess, launch_chromium  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

import ntxcp  # noqa: E402
from ntxcp.simulator import SimulatedGateway  # noqa: E402
from ntxcp.v10 import firmware  # noqa: E402
from ntxcp.v10 import types as t  # noqa: E402

ENERGY = t.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER
POWER = t.Measurand.POWER_ACTIVE_IMPORT
FEATURED = "berlin-depot-01"
VIEWPORT = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}


def _sample(when: datetime, energy_wh: float, power_w: float) -> t.MeterValue:
    return t.MeterValue(
        timestamp=when,
        sampled_value=[
            t.SampledValue(value=f"{energy_wh:.1f}", measurand=ENERGY, unit=t.UnitOfMeasure.WH),
            t.SampledValue(value=f"{power_w:.1f}", measurand=POWER, unit=t.UnitOfMeasure.W),
        ],
    )


def _history(end_energy: float, rated: float, phase: float, now: datetime) -> list[t.MeterValue]:
    """An hour of one-minute samples ending just before ``now`` at ``end_energy``."""
    powers = [
        max(0.0, rated * (0.62 + 0.3 * math.sin(minute / 9.0 + phase)) * (minute % 47 > 5))
        for minute in range(60)
    ]
    energy = end_energy - sum(powers) / 60.0
    values = []
    for minute, power in enumerate(powers):
        energy += power / 60.0
        values.append(_sample(now - timedelta(minutes=60 - minute), energy, power))
    return values


async def _seed_featured(ws_url: str, simulated: SimulatedGateway) -> None:
    """Give the featured gateway a past: statuses, meter values, firmware, diagnostics."""
    now = datetime.now(UTC)
    past = ntxcp.Gateway(FEATURED, reconnect=False, heartbeat=False)
    await past.start(ws_url)
    await past.boot_notification("DX-SIM", dingx_gateway_vendor="Ding.X", firmware_version="2.4.0")
    for minutes, service, status, error in (
        (58, "1", "Available", "NoError"),
        (41, "1", "Preparing", "NoError"),
        (40, "1", "Charging", "NoError"),
        (33, "2", "Faulted", "OverCurrentFailure"),
        (21, "2", "Available", "NoError"),
        (12, "2", "Charging", "NoError"),
    ):
        await past.status_notification(
            service, error, status, timestamp=now - timedelta(minutes=minutes)
        )
    for index, service in enumerate(simulated.plant.services):
        history = _history(service.energy_wh, service.rated_power_w, index * 2.1, now)
        await past.meter_values(service.service_id, history)
    for status in ("Downloading", "Downloaded", "Installing", "Installed"):
        await past.firmware_status_notification(firmware.FirmwareStatus(status))
    for diagnostics in ("Uploading", "Uploaded"):
        await past.diagnostics_status_notification(firmware.DiagnosticsStatus(diagnostics))
    await past.stop()


async def _seed_others(ws_url: str) -> list[ntxcp.Gateway]:
    """Gateways in other states: one faulted and gone, one half-suspended and online."""
    gone = ntxcp.Gateway("hamburg-port-02", reconnect=False, heartbeat=False)
    await gone.start(ws_url)
    await gone.boot_notification("DX-200", dingx_gateway_vendor="Ding.X", firmware_version="1.9.3")
    await gone.status_notification("0", "NoError", "Available")
    await gone.status_notification("1", "OverCurrentFailure", "Faulted")
    await gone.status_notification("2", "NoError", "Available")
    await gone.stop()
    online = ntxcp.Gateway("lisbon-lab-04", reconnect=False, heartbeat=False)
    await online.start(ws_url)
    await online.boot_notification(
        "DX-400", dingx_gateway_vendor="Ding.X", firmware_version="2.5.0"
    )
    await online.status_notification("0", "NoError", "Available")
    await online.status_notification("1", "NoError", "SuspendedEV")
    await online.status_notification("2", "NoError", "Unavailable", info="maintenance")
    return [online]


def _register(api_url: str, gateway_id: str) -> None:
    request = urllib.request.Request(
        f"{api_url}api/gateways",
        data=json.dumps({"id": gateway_id, "password": "not-shown"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def main() -> int:
    """Run the service, seed it, and write the two screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chart", type=Path, help="also save the chart alone here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        service = ServiceProcess(Path(directory), "--demo", "3").start()
        thread = GatewayThread()
        simulated: SimulatedGateway | None = None
        try:

            async def make() -> SimulatedGateway:
                return SimulatedGateway(
                    FEATURED,
                    service.ws_url,
                    services=3,
                    meter_interval=10,
                    firmware_version="2.4.1",
                )

            simulated = thread.run(make())
            thread.run(_seed_featured(service.ws_url, simulated), timeout=30)
            thread.run(simulated.start())
            thread.gateways.extend(thread.run(_seed_others(service.ws_url)))
            _register(service.api_url, "munich-hq-03")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport=VIEWPORT, color_scheme="light")
                page.goto(service.api_url)
                expect(page.locator("#live")).to_have_text("Live", timeout=10000)
                expect(page.locator(f'tr[data-gateway="{FEATURED}"] .chip')).to_have_count(
                    4, timeout=10000
                )
                page.wait_for_timeout(1500)  # let the live highlights fade
                page.evaluate("window.scrollTo(0, 0)")  # the sticky bar belongs at the top
                page.screenshot(path=str(args.out / "overview.png"), full_page=True)

                page.goto(f"{service.api_url}#/gateways/{FEATURED}")
                expect(page.locator("#live")).to_have_text("Live", timeout=10000)
                page.get_by_role("button", name="Power", exact=True).click()
                expect(page.locator("svg.chart-svg circle").first).to_be_visible(timeout=10000)
                page.get_by_label("Action", exact=True).select_option("GetConfiguration")
                page.get_by_role("button", name="Send GetConfiguration").click()
                expect(page.locator(".result table")).to_be_visible(timeout=10000)
                page.wait_for_timeout(1800)
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(args.out / "gateway.png"), full_page=True)
                page.locator("figure.chart").screenshot(path=str(Path(directory) / "chart.png"))
                if args.chart:
                    page.locator("figure.chart").screenshot(path=str(args.chart))

                phone = browser.new_page(
                    viewport=PHONE, device_scale_factor=2, is_mobile=True, color_scheme="light"
                )
                phone.goto(service.api_url)
                expect(phone.locator("#live")).to_have_text("Live", timeout=10000)
                expect(phone.locator(f'tr[data-gateway="{FEATURED}"] .chip')).to_have_count(
                    4, timeout=10000
                )
                phone.wait_for_timeout(1500)
                phone.screenshot(path=str(args.out / "phone-overview.png"))  # the first screen
                browser.close()
        finally:
            if simulated is not None:
                thread.run(simulated.stop(), timeout=15)
            thread.close()
            code = service.stop()
        print(
            "wrote overview.png, gateway.png and phone-overview.png to "
            f"{args.out} (service exit status {code})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
