"""The dashboard with named tokens: it asks ``/api/whoami`` after sign-in and shows only
the forms the token's role may use; a revoked token is sent back to the sign-in screen."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import ServiceProcess
from playwright.sync_api import expect

ADMIN = "dashboard-admin-token-4321"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        tmp_path_factory.mktemp("roles"), "--api-token", ADMIN, "--demo", "1"
    ).start()
    yield process
    try:
        assert process.stop() == 0, process.stderr()
    finally:
        process.kill()


def _api(service: ServiceProcess, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{service.api_url}{path.lstrip('/')}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _token(service: ServiceProcess, name: str, role: str) -> str:
    token: str = _api(service, "POST", "/api/tokens", {"name": name, "role": role})["token"]
    return token


def _sign_in(page: Any, service: ServiceProcess, token: str) -> None:
    page.goto(service.api_url)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator('tr[data-gateway="demo-1"]')).to_be_visible()


def _commands(page: Any) -> Any:
    """The commands card of a gateway page."""
    heading = page.get_by_role("heading", name="Commands", exact=True)
    return page.locator("section.card").filter(has=heading)


def test_a_read_only_token_sees_no_form_it_may_not_use(page: Any, service: ServiceProcess) -> None:
    _sign_in(page, service, _token(service, "wall", "read-only"))
    expect(page.locator("#who")).to_have_text("wall · read-only")
    expect(page.get_by_role("heading", name="Gateways")).to_be_visible()
    expect(page.get_by_role("heading", name="Register a gateway")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove demo-1")).to_have_count(0)
    page.get_by_role("link", name="demo-1").click()
    expect(page.get_by_role("heading", name="Recent commands")).to_be_visible()
    note = "The token wall is read-only: it cannot send commands."
    expect(page.get_by_text(note)).to_be_visible()
    expect(_commands(page).get_by_label("Action")).to_have_count(0)
    expect(page.locator(".command-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove gateway")).to_be_hidden()
    expect(page.locator("#live")).to_have_text("Live")


def test_an_operator_sends_commands_but_does_not_administer(
    page: Any, service: ServiceProcess
) -> None:
    _sign_in(page, service, _token(service, "night-shift", "operator"))
    expect(page.locator("#who")).to_have_text("night-shift · operator")
    expect(page.get_by_role("heading", name="Register a gateway")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove demo-1")).to_have_count(0)
    page.get_by_role("link", name="demo-1").click()
    expect(page.get_by_role("button", name="Remove gateway")).to_be_hidden()
    _commands(page).get_by_label("Action").select_option("ClearCache")
    page.get_by_role("button", name="Send ClearCache").click()
    expect(page.locator(".result")).to_contain_text("ClearCache")
    history = page.locator(".history")
    expect(history).to_contain_text("Sent by")
    expect(history).to_contain_text("night-shift")
    # Revoked while signed in: the next request (the stream's reconnection) gets 401
    # and the sign-in screen comes back.
    _api(service, "DELETE", "/api/tokens/night-shift")
    expect(page.get_by_text("The token was not accepted (any more).")).to_be_visible()


def test_an_admin_sees_every_form(page: Any, service: ServiceProcess) -> None:
    _sign_in(page, service, ADMIN)
    expect(page.locator("#who")).to_have_text("bootstrap · admin")
    expect(page.get_by_role("heading", name="Register a gateway")).to_be_visible()
    expect(page.get_by_role("button", name="Remove demo-1")).to_be_visible()
    page.get_by_role("link", name="demo-1").click()
    expect(_commands(page).get_by_label("Action")).to_be_visible()
    expect(page.get_by_role("button", name="Remove gateway")).to_be_visible()
