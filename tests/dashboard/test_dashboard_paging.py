"""The overview at fleet scale: a fixed page of rows whatever the fleet's size, the
service filtering, sorting and counting, live counts coalesced from the event stream."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

from dashboard_helpers import GatewayThread, ServiceProcess
from playwright.sync_api import expect

PAGE_SIZE = 100  # overview.js PAGE_SIZE
FLEET = 3_000  # imported here, on top of the two demo gateways


def _post(api_url: str, path: str, body: Any) -> None:
    request = urllib.request.Request(
        f"{api_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201


def rows(page: Any) -> Any:
    return page.locator("tr[data-gateway]")


def ids(page: Any) -> list[str | None]:
    return [r.get_attribute("data-gateway") for r in rows(page).all()]


def test_a_large_fleet_shows_one_page_at_a_time(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    entries = [{"id": f"bulk-{n}"} for n in range(1, FLEET + 1)]
    _post(service.api_url, "api/gateway-imports", {"gateways": entries})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/" in r.url else None)
    page.goto(service.api_url)
    summary = page.locator(".summary")
    total = FLEET + 2
    expect(summary).to_contain_text(f"{total:,} gateways")
    expect(rows(page)).to_have_count(PAGE_SIZE)  # never the whole fleet in the page
    assert ids(page)[:3] == ["bulk-1", "bulk-2", "bulk-3"]  # natural order
    pager = page.get_by_role("navigation", name="Pages of gateways")
    expect(pager).to_contain_text(f"1\u2013100 of {total:,}")
    assert not any("/api/gateways?" in url or "/api/status?" in url for url in requests)

    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text(f"101\u2013200 of {total:,}")
    expect(rows(page).first).to_have_attribute("data-gateway", "bulk-101")
    expect(rows(page)).to_have_count(PAGE_SIZE)
    pager.get_by_role("button", name="Previous").click()
    expect(rows(page).first).to_have_attribute("data-gateway", "bulk-1")

    # The service filters: the matching gateways of the whole fleet, one page of them.
    page.get_by_label("Filter gateways").fill("BULK-29")
    expect(pager).to_contain_text("1\u2013100 of 111 matching")  # bulk-29, -290..299, -2900..2999
    expect(rows(page).first).to_have_attribute("data-gateway", "bulk-29")
    pager.get_by_role("button", name="Next").click()
    expect(rows(page)).to_have_count(11)
    expect(rows(page).last).to_have_attribute("data-gateway", "bulk-2999")
    page.get_by_label("Filter gateways").fill("bulk-2999")  # a new filter starts at page 1
    expect(rows(page)).to_have_count(1)
    expect(pager).to_be_hidden()
    page.get_by_label("Filter gateways").fill("")

    # Connection state and attention filters, and sorting, are the service's too.
    page.get_by_label("Connection").select_option("connected")
    expect(rows(page)).to_have_count(2)
    assert ids(page) == ["demo-1", "demo-2"]
    page.get_by_label("Connection").select_option("never")
    expect(pager).to_contain_text(f"of {FLEET:,} matching")
    page.get_by_label("Connection").select_option("")
    page.get_by_label("Sort by").select_option("id-desc")
    expect(rows(page).first).to_have_attribute("data-gateway", "demo-2")
    page.get_by_label("Sort by").select_option("state")
    expect(rows(page).first).to_have_attribute("data-gateway", "demo-1")
    expect(rows(page).nth(2)).to_have_attribute("data-gateway", "bulk-1")
    page.get_by_label("Sort by").select_option("id")

    # Counts follow the event stream without a reload; the page stays one page.
    page.evaluate("window.notReloaded = true")
    gateway = gateways.connect(service.ws_url, "bulk-7", "DX-BULK")
    expect(summary).to_contain_text("3 connected")
    gateways.status(gateway, "1", "Faulted", "GroundFailure")
    expect(summary).to_contain_text("1 service needs attention")
    page.get_by_label("Needs attention only").check()
    expect(rows(page)).to_have_count(1)
    row = page.locator('tr[data-gateway="bulk-7"]')
    expect(row).to_have_class(re.compile(r"\battention\b"))
    expect(row.get_by_text("DX-BULK")).to_be_visible()
    gateways.stop(gateway)
    expect(summary).to_contain_text("0 services need attention")
    expect(page.locator("tr.no-match")).to_contain_text("No gateway matches these filters")
    page.get_by_role("button", name="Clear the filter").click()
    expect(rows(page)).to_have_count(PAGE_SIZE)
    assert page.evaluate("window.notReloaded") is True


def test_a_storm_of_events_is_coalesced(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    page.goto(service.api_url)
    expect(rows(page).first).to_be_visible()
    fleet_reads: list[str] = []
    page.on("request", lambda r: fleet_reads.append(r.url) if "/api/fleet" in r.url else None)
    gateway = gateways.connect(service.ws_url, "storm-1", "DX-STORM")
    started = time.monotonic()
    statuses = 200
    for n in range(statuses):
        gateways.status(gateway, str(n % 5 + 1), "Faulted" if n % 2 else "Available")
    # The last status is Faulted for service 5, Available for service 4 (n = 199, 198).
    gateways.status(gateway, "9", "Faulted", "GroundFailure")
    page.get_by_label("Filter gateways").fill("storm-1")
    last_chip = page.locator('tr[data-gateway="storm-1"] .chip[data-service="9"]')
    expect(last_chip).to_have_attribute("data-status", "Faulted")
    # Each event did not cost a request: at most one refresh per 300 ms (REFRESH_GAP_MS
    # of overview.js), however slow the machine, plus the filter's own request.
    coalesced = (time.monotonic() - started) / 0.3 + 3
    assert len(fleet_reads) <= min(coalesced, statuses / 2), len(fleet_reads)
    gateways.stop(gateway)
