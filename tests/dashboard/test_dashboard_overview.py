"""The gateways overview in a real browser: live updates over server-sent events,
registration and removal."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from typing import Any

import aiohttp
from dashboard_helpers import GatewayThread, ServiceProcess
from playwright.sync_api import expect


def row(page: Any, gateway_id: str) -> Any:
    return page.locator(f'tr[data-gateway="{gateway_id}"]')


def test_overview_shows_gateways_and_follows_them_live(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    page.goto(service.api_url)
    expect(page.get_by_role("heading", name="Gateways")).to_be_visible()
    expect(page.locator("#live")).to_have_text("Live")
    for gateway_id in ("demo-1", "demo-2"):
        expect(row(page, gateway_id).locator('[data-connection="connected"]')).to_be_visible()
        expect(row(page, gateway_id).get_by_text("Accepted")).to_be_visible()
        expect(row(page, gateway_id).get_by_text("DX-SIM")).to_be_visible()
        expect(row(page, gateway_id).locator(".chip")).to_have_count(3)  # "0", "1", "2"
    page.evaluate("window.notReloaded = true")

    # A gateway connecting for the first time appears, booted, without a reload.
    gateway = gateways.connect(
        service.ws_url, "live-gw", "DX-LIVE", dingx_gateway_vendor="Acme", firmware_version="2.1.0"
    )
    live = row(page, "live-gw")
    expect(live.locator('[data-connection="connected"]')).to_be_visible()
    expect(live.get_by_text("DX-LIVE")).to_be_visible()
    expect(live.get_by_text("2.1.0")).to_be_visible()
    expect(live.get_by_text("Acme")).to_be_visible()

    # Its services' statuses arrive live, coloured by status and error code.
    gateways.status(gateway, "1", "Available")
    chip = live.locator('.chip[data-service="1"]')
    expect(chip).to_have_attribute("data-status", "Available")
    expect(chip).to_have_class(re.compile(r"\btone-ok\b"))
    gateways.status(gateway, "1", "Faulted", "GroundFailure")
    expect(chip).to_have_attribute("data-status", "Faulted")
    expect(chip).to_have_class(re.compile(r"\btone-bad\b.*\bhas-error\b"))
    expect(chip).to_contain_text("GroundFailure")
    expect(page.locator(".summary")).to_contain_text("1 service needs attention")

    # It leaves: disconnected, still listed.
    gateways.stop(gateway)
    expect(live.locator('[data-connection="disconnected"]')).to_be_visible()
    assert page.evaluate("window.notReloaded") is True

    # The filter narrows the table; a filter nothing matches says so.
    no_match = page.locator("tr.no-match")
    expect(no_match).to_be_hidden()
    page.get_by_label("Filter gateways").fill("dx-live")
    expect(live).to_be_visible()
    expect(row(page, "demo-1")).to_be_hidden()
    expect(no_match).to_be_hidden()
    page.get_by_label("Filter gateways").fill("no-such-model")
    expect(no_match).to_contain_text("No gateway matches “no-such-model”")
    no_match.get_by_role("button", name="Clear the filter").click()
    expect(row(page, "demo-1")).to_be_visible()
    expect(no_match).to_be_hidden()


def test_register_and_remove_a_gateway(page: Any, service: ServiceProcess) -> None:
    page.goto(service.api_url)
    expect(row(page, "demo-1")).to_be_visible()
    page.get_by_label("Gateway id").fill("reg-gw-1")
    page.get_by_label("Password").fill("s3cret-pass")
    page.get_by_role("button", name="Register gateway").click()
    added = row(page, "reg-gw-1")
    expect(added).to_contain_text("registered · password")
    expect(added.locator('[data-connection="never"]')).to_be_visible()
    expect(page.get_by_text("Gateway reg-gw-1 registered.")).to_be_visible()
    with urllib.request.urlopen(f"{service.api_url}api/gateways/reg-gw-1", timeout=5) as answer:
        assert answer.status == 200

    # The same id again: the API's 409 is shown at the id field.
    page.get_by_label("Gateway id").fill("reg-gw-1")
    page.get_by_role("button", name="Register gateway").click()
    expect(page.get_by_label("Gateway id")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("already registered")).to_be_visible()

    # An invalid id: the 422 names the field.
    page.get_by_label("Gateway id").fill("a/b")
    page.get_by_role("button", name="Register gateway").click()
    expect(page.get_by_text("without '/'")).to_be_visible()

    # Remove, after confirming in the dialog.
    added.get_by_role("button", name="Remove reg-gw-1").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Remove gateway reg-gw-1?")
    dialog.get_by_role("button", name="Remove gateway").click()
    expect(added).to_have_count(0)
    try:
        urllib.request.urlopen(f"{service.api_url}api/gateways/reg-gw-1", timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    else:
        raise AssertionError("the gateway is still there")


def register(service: ServiceProcess, gateway_id: str) -> None:
    body = json.dumps({"id": gateway_id}).encode()
    request = urllib.request.Request(
        f"{service.api_url}api/gateways",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 201


def test_statuses_of_a_disconnected_gateway_are_last_known(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    gateway = gateways.connect(service.ws_url, "stale-gw", "DX-STALE")
    gateways.status(gateway, "1", "Faulted", "GroundFailure")
    page.goto(service.api_url)
    stale = row(page, "stale-gw")
    chip = stale.locator('.chip[data-service="1"]')
    expect(chip).to_have_class(re.compile(r"\btone-bad\b"))
    summary = page.locator(".summary")
    expect(summary).to_contain_text("1 service needs attention")

    gateways.stop(gateway)
    expect(stale.locator('[data-connection="disconnected"]')).to_be_visible()
    expect(chip).to_have_attribute("data-stale", "")
    expect(chip).to_have_class(re.compile(r"\btone-off\b"))
    expect(chip).not_to_have_class(re.compile(r"\btone-bad\b"))
    expect(chip).to_have_attribute("title", re.compile("last known"))
    expect(stale.locator(".stale-note")).to_contain_text("last known")
    expect(stale.locator(".stale-note time")).to_have_count(1)
    expect(stale).not_to_have_class(re.compile(r"\battention\b"))
    expect(summary).to_contain_text("0 services need attention")

    # The gateway page says the same.
    stale.get_by_role("link", name="stale-gw").click()
    service_line = page.locator('.services .service[data-service="1"]')
    expect(service_line).to_contain_text("last known, reported")
    expect(service_line.locator(".chip")).to_have_attribute("data-stale", "")


def test_rows_are_in_natural_order(page: Any, service: ServiceProcess) -> None:
    for gateway_id in ("LOAD-10", "LOAD-2", "LOAD-1", "LOAD-100", "LOAD-9"):
        register(service, gateway_id)
    page.goto(service.api_url)
    load_rows = page.locator('tr[data-gateway^="LOAD-"]')
    expect(load_rows).to_have_count(5)
    order = ["LOAD-1", "LOAD-2", "LOAD-9", "LOAD-10", "LOAD-100"]
    assert [r.get_attribute("data-gateway") for r in load_rows.all()] == order

    # One arriving later goes to its place too.
    register(service, "LOAD-11")
    expect(load_rows).to_have_count(6)
    order.insert(4, "LOAD-11")
    assert [r.get_attribute("data-gateway") for r in load_rows.all()] == order


class SilentClient:
    """A gateway connection that answers the service's pings only once told to.

    Silent, it turns unresponsive after ``--ping-interval`` + ``--ping-timeout`` and is
    closed one ``--ping-timeout`` later; once told to answer, it answers every ping, so
    what the test checks afterwards has no deadline.
    """

    def __init__(self) -> None:
        self.answering = False
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, url: str) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(url, protocols=("ntxcp1.0",), autoping=False)
        self._reader = asyncio.get_running_loop().create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.PING and self.answering:
                await ws.pong(message.data)

    async def answer(self) -> None:
        """Answer from now on, starting with an unsolicited pong."""
        assert self.ws is not None
        self.answering = True
        await self.ws.pong()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        if self.session is not None:
            await self.session.close()


def test_an_unresponsive_gateway_is_shown_as_such(
    page: Any, tmp_path: Any, gateways: GatewayThread
) -> None:
    # A gateway that stops answering pings but keeps its TCP connection: unresponsive
    # after --ping-interval + --ping-timeout (10.3 s), closed 10 s later. Those 10 s
    # are for looking at it on both pages (a few seconds on a loaded machine); after it
    # answers, it answers every ping, so the checks that follow have no deadline.
    service = ServiceProcess(tmp_path, "--ping-interval", "0.3", "--ping-timeout", "10").start()
    client = SilentClient()
    try:
        page.goto(service.api_url)
        expect(page.locator("#live")).to_have_text("Live")
        gateways.run(client.open(f"{service.ws_url}/hung-1"))
        hung = row(page, "hung-1")
        expect(hung.locator('[data-connection="connected"]')).to_be_visible()
        expect(hung.locator('[data-connection="unresponsive"]')).to_be_visible(timeout=25_000)
        expect(hung.locator('[data-connection="unresponsive"]')).to_have_text("Unresponsive")
        expect(hung).to_have_class(re.compile(r"\battention\b"))
        expect(page.locator(".summary")).to_contain_text("1 unresponsive")
        # The gateway page says so too, and follows it live.
        hung.get_by_role("link", name="hung-1").click()
        badge = page.locator(".badges [data-connection]")
        expect(badge).to_have_attribute("data-connection", "unresponsive")
        gateways.run(client.answer())  # it answers again
        expect(badge).to_have_attribute("data-connection", "connected")
        page.go_back()
        expect(hung.locator('[data-connection="connected"]')).to_be_visible()
        expect(page.locator(".summary")).not_to_contain_text("unresponsive")
        gateways.run(client.close())
        expect(hung.locator('[data-connection="disconnected"]')).to_be_visible()
        assert service.stop() == 0, service.stderr()
    finally:
        gateways.run(client.close())
        service.kill()
