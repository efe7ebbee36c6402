"""The dashboard with ``--api-token``: the sign-in screen, the token in sessionStorage,
the live stream with the token (and never without it), and a stop with streams open."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import GatewayThread, ServiceProcess
from playwright.sync_api import expect

TOKEN = "dashboard-token-5678"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        tmp_path_factory.mktemp("secured"), "--api-token", TOKEN, "--demo", "1"
    ).start()
    yield process
    process.kill()


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_events_need_the_token_in_the_header(secured: ServiceProcess) -> None:
    events = f"{secured.api_url}api/events"
    assert status_of(events) == 401
    assert status_of(f"{events}?token={TOKEN}") == 401  # never in the URL
    assert status_of(f"{secured.api_url}api/status") == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert status_of(f"{events}?kinds=status,nonsense", auth) == 400
    request = urllib.request.Request(f"{events}?kinds=status", headers=auth)
    with urllib.request.urlopen(request, timeout=5) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        head = [stream.readline().decode() for _ in range(4)]
    assert head[0] == "retry: 2000\n"
    assert head[2] == "event: hello\n"
    assert head[3].startswith("data: {") and '"version"' in head[3]
    # The page itself and its files need no token; they hold no data.
    assert status_of(secured.api_url) == 200
    assert status_of(f"{secured.api_url}dashboard/app.js") == 200
    assert status_of(f"{secured.api_url}dashboard/nothing.js") == 404


def test_sign_in_with_the_token_then_live_updates(
    page: Any, secured: ServiceProcess, gateways: GatewayThread
) -> None:
    page.goto(secured.api_url)
    token = page.get_by_label("API token")
    expect(token).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    token.fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("This token was not accepted.")).to_be_visible()

    token.fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator('tr[data-gateway="demo-1"]')).to_be_visible()
    expect(page.locator("#live")).to_have_text("Live")
    assert page.evaluate("sessionStorage.getItem('ntxcp.apiToken')") == TOKEN

    # The stream carries the token too: a new gateway appears live.
    gateways.connect(secured.ws_url, "token-gw", "DX-TOKEN")
    expect(page.locator('tr[data-gateway="token-gw"]')).to_contain_text("DX-TOKEN")

    # A reload keeps the token (same tab); the gateway page works with it.
    page.reload()
    expect(page.locator('tr[data-gateway="token-gw"]')).to_be_visible()
    page.get_by_role("link", name="demo-1").click()
    expect(page.locator(".title-line")).to_contain_text("demo-1")
    expect(page.locator("#live")).to_have_text("Live")

    # Sign out: the token is forgotten.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ntxcp.apiToken')") is None

    # Signed in again with a stream open, the service still stops at once (spec §6.3).
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#live")).to_have_text("Live")
    assert secured.stop(timeout=10) == 0, secured.stderr()
    expect(page.locator("#live")).to_have_text("Reconnecting…")
