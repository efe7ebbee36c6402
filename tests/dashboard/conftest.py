"""Fixtures of the dashboard tests: Debian Chromium via Playwright, the real service.

The tests need the ``playwright`` package (the ``dev`` extra) and a Chromium binary
(``/usr/bin/chromium``, Debian's package; ``scripts/test``, which ``.ci/run`` calls,
installs it). Without them the tests are skipped with the reason shown, except in CI
(``CI`` set), where that is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import GatewayThread, ServiceProcess, chromium_path, launch_chromium

WAIT_MS = 8000  # upper bound of a wait for something the page should show soon

NO_PLAYWRIGHT = "the playwright package is not installed (pip install -e '.[dev]')"

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False


class _SkippedForNoPlaywright(pytest.Module):
    """A browser test module reported as skipped, with the reason, instead of imported.

    The modules import Playwright at the top: importing one without it would be a
    collection error rather than a skip.
    """

    def collect(self) -> Any:
        pytest.skip(NO_PLAYWRIGHT)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """Without Playwright, outside CI: each browser test module is a visible skip.

    In CI (``CI`` set) the module is imported as usual, so the missing package is an
    error there.
    """
    if (
        HAVE_PLAYWRIGHT
        or os.environ.get("CI")
        or not module_path.name.startswith("test_dashboard_")
    ):
        return None
    return _SkippedForNoPlaywright.from_parent(parent, path=module_path)


def _require_browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(NO_PLAYWRIGHT)
    if chromium_path() is None:
        if os.environ.get("CI"):
            raise RuntimeError("chromium is not installed (scripts/test installs it)")
        pytest.skip("no chromium executable (apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (closed before the other suites run)."""
    sync_playwright = _require_browser()
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One control center per test module, with two simulated gateways (``--demo 2``)."""
    process = ServiceProcess(tmp_path_factory.mktemp("dashboard"), "--demo", "2").start()
    yield process
    try:
        assert process.stop() == 0, process.stderr()
    finally:
        process.kill()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own storage) that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield page
    context.close()
    # 4xx answers are part of the tests (401, 409, 422): Chromium logs each as a failed load.
    unexpected = [e for e in errors if not e.startswith("Failed to load resource")]
    assert not unexpected, unexpected


@pytest.fixture
def gateways() -> Iterator[GatewayThread]:
    """Library gateways the test drives (stopped at the end)."""
    thread = GatewayThread()
    yield thread
    thread.close()
