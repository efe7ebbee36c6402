"""The overview reads the paged lists to their end: more gateways than one page holds."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from dashboard_helpers import ServiceProcess
from playwright.sync_api import expect

PAGE_SIZE = 500  # the overview's page size (overview.js reads /api/gateways 500 at a time)
EXTRA = PAGE_SIZE + 20  # registered here, on top of the two demo gateways


def _register(api_url: str, gateway_id: str) -> None:
    request = urllib.request.Request(
        f"{api_url}api/gateways",
        data=json.dumps({"id": gateway_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201


def test_overview_lists_gateways_of_every_page(page: Any, service: ServiceProcess) -> None:
    ids = [f"bulk-{n:04d}" for n in range(EXTRA)]
    for gateway_id in ids:
        _register(service.api_url, gateway_id)
    pages: list[str] = []
    page.on("request", lambda r: pages.append(r.url) if "/api/gateways?" in r.url else None)
    page.goto(service.api_url)
    expect(page.locator("tr[data-gateway]")).to_have_count(EXTRA + 2)
    expect(page.locator(f'tr[data-gateway="{ids[-1]}"]')).to_be_visible()
    expect(page.locator('tr[data-gateway="demo-1"]')).to_be_visible()
    assert len(pages) >= 2 and any("after=" in url for url in pages), pages
