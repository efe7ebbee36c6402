#!/usr/bin/env python3
"""The gateways overview at fleet scale: time to first paint and per filter keystroke.

For each fleet size (``--sizes``) it starts ``ntxcp control-center`` (loopback, free
ports, a fresh SQLite file), registers the fleet through ``POST /api/gateway-imports``
(``B-1`` … ``B-N``: registered, never connected), connects ``--connected`` simulated
gateways with ``ntxcp gateway --count`` (they boot, report statuses and meter values,
so the overview's event stream is busy during the measurement), then opens the
overview in Debian's Chromium (Playwright, headless, as ``tests/dashboard`` does) and
measures, inside the page:

* first paint: from navigation start until the first gateway row is shown and the
  summary counts the whole fleet;
* each keystroke of typing ``b-199`` into the filter: from the ``input`` event until
  the rows shown all match the text typed so far (and the next frame is drawn).

With ``--before REF`` the same is measured first with the service and dashboard of
git revision ``REF`` (exported to a temporary directory), so before and after come
from the same run on the same machine. Nothing is asserted: the numbers are printed.

Usage: python bench/dashboard_fleet.py [--sizes 5000,50000] [--connected 200]
       [--meter-interval 5] [--before REF]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "dashboard"), str(ROOT / "tests")]
from dashboard_helpers import launch_chromium  # noqa: E402

READY = re.compile(r"^ntxcp control center ready: gateways (\S+)/<id>  api (\S+)$")
FILTER = "b-199"  # B-199, B-1990…B-1999, … in every fleet of 2,000 or more
IMPORT_CHUNK = 20_000  # the most one POST /api/gateway-imports takes

# The rows shown (not hidden) all match the filter typed so far, and there is one.
SHOWN_MATCH = """text => {
  const shown = [...document.querySelectorAll('tr[data-gateway]')].filter(r => !r.hidden);
  return shown.length > 0 && shown.every(r => r.dataset.gateway.toLowerCase().includes(text));
}"""

KEYSTROKE = """async ([text, shownMatch]) => {
  const matches = eval(shownMatch);
  const input = document.querySelector('input[type=search]');
  const started = performance.now();
  input.value = text;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  while (!matches(text)) {
    if (performance.now() - started > 120000) return Infinity;
    await new Promise(r => setTimeout(r, 1));
  }
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - started;
}"""


def _start(source: Path, directory: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {**os.environ, "PYTHONPATH": str(source / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ntxcp", "control-center", "--port", "0", "--api-port", "0",
         "--db", str(directory / "cc.sqlite"), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env=env, cwd=directory,
    )  # fmt: skip
    assert proc.stdout is not None
    match = READY.match(proc.stdout.readline().decode().strip())
    if match is None:
        proc.kill()
        raise SystemExit("the control center did not start")
    return proc, match[1], match[2]


def _import(api: str, count: int) -> None:
    for first in range(1, count + 1, IMPORT_CHUNK):
        ids = range(first, min(count, first + IMPORT_CHUNK - 1) + 1)
        body = json.dumps({"gateways": [{"id": f"B-{n}"} for n in ids]}).encode()
        request = urllib.request.Request(
            f"{api}api/gateway-imports",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            assert answer.status == 201


def _connected(api: str) -> int:
    with urllib.request.urlopen(f"{api}healthz", timeout=30) as answer:
        return int(json.load(answer)["connectedGateways"])


def _measure_page(browser: Any, api: str, total: int) -> tuple[float, list[float]]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(600_000)
    page = context.new_page()
    try:
        page.goto(api)
        page.wait_for_function(
            """total => document.querySelector('tr[data-gateway]') &&
              document.querySelector('.summary strong')?.textContent.replace(/,/g, '') == total""",
            arg=str(total),
            polling="raf",
        )
        first_paint = float(page.evaluate("performance.now()"))
        keystrokes = [
            float(page.evaluate(KEYSTROKE, [FILTER[:n], SHOWN_MATCH]))
            for n in range(1, len(FILTER) + 1)
        ]
        return first_paint, keystrokes
    finally:
        context.close()


def _run(
    label: str, source: Path, size: int, connected: int, meter_interval: float, browser: Any
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        proc, ws_url, api = _start(source, Path(directory))
        simulator: subprocess.Popen[bytes] | None = None
        try:
            started = time.perf_counter()
            _import(api, size)
            imported = time.perf_counter() - started
            if connected:
                simulator = subprocess.Popen(
                    [sys.executable, "-m", "ntxcp", "gateway", "--url", ws_url,
                     "--count", str(connected), "--id-prefix", "B-",
                     "--meter-interval", str(meter_interval), "--log-level", "warning"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                )  # fmt: skip
                # The service admits 1,000 connections a second by default.
                deadline = time.monotonic() + 120 + connected / 500
                while _connected(api) < connected and time.monotonic() < deadline:
                    time.sleep(0.2)
            first_paint, keystrokes = _measure_page(browser, api, size)
            typed = " ".join(f"{k:.0f}" for k in keystrokes)
            print(
                f"{label:7s} {size:>7,} gateways ({_connected(api)} connected, imported in "
                f"{imported:.1f} s): first paint {first_paint:8.0f} ms; filter keystrokes "
                f"median {statistics.median(keystrokes):6.0f} ms, max {max(keystrokes):6.0f} ms "
                f"({typed})",
                flush=True,
            )
        finally:
            if simulator is not None:
                simulator.terminate()
                simulator.wait(30)
            proc.terminate()
            proc.wait(30)


def _export(ref: str, directory: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    target = directory / "before"
    target.mkdir()
    archive_path = directory / "before.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target


def main() -> int:
    """Run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,50000", help="fleet sizes, comma-separated")
    parser.add_argument("--connected", type=int, default=200, help="simulated gateways")
    parser.add_argument("--before", metavar="REF", help="also measure git revision REF first")
    parser.add_argument(
        "--meter-interval",
        type=float,
        default=5.0,
        help="seconds between a simulated gateway's MeterValues (60 for a real fleet's pace)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as directory, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            sources = [("after", ROOT)]
            if args.before:
                sources.insert(0, ("before", _export(args.before, Path(directory))))
            for size in sizes:
                for label, source in sources:
                    _run(
                        label,
                        source,
                        size,
                        min(args.connected, size),
                        args.meter_interval,
                        browser,
                    )
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
