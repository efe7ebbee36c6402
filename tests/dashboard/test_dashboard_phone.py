"""The dashboard on a phone (390 by 844): nothing off-screen, wide tables in scroll boxes,
the overview as one card per gateway."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import ServiceProcess
from playwright.sync_api import expect

WIDTH, HEIGHT = 390, 844
WAIT_MS = 8000

# Elements reaching past the right edge of the screen, except those inside a scroll box
# (a wide table scrolls sideways in its own box, the page does not).
OFF_SCREEN = """width => [...document.querySelectorAll('body *')]
  .filter(node => node.getClientRects().length && !node.closest('.table-scroll'))
  .filter(node => node.getBoundingClientRect().right > width + 0.5)
  .map(node => `${node.tagName.toLowerCase()}.${node.getAttribute('class') || ''}`)"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page at a phone's size, touch and all."""
    context = browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        timezone_id="UTC",
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    yield page
    context.close()


def assert_fits(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    assert page.evaluate(OFF_SCREEN, WIDTH) == []
    live = page.locator("#live").bounding_box()
    assert live is not None and live["x"] + live["width"] <= WIDTH


def test_overview_fits_a_phone_as_cards(phone: Any, service: ServiceProcess) -> None:
    phone.goto(service.api_url)
    expect(phone.locator("#live")).to_have_text("Live")
    card = phone.locator('tr[data-gateway="demo-1"]')
    chips = card.locator(".chip")
    expect(chips).to_have_count(3)
    expect(phone.locator("table.gateways thead")).to_be_hidden()
    # Each cell is labelled in the card, the service chips are on screen.
    label = card.locator('[data-col="connection"]').evaluate(
        "node => getComputedStyle(node, '::before').content"
    )
    assert label == '"Connection"'
    for chip in chips.all():
        box = chip.bounding_box()
        assert box is not None and box["x"] + box["width"] <= WIDTH
    assert_fits(phone)


def test_gateway_page_fits_a_phone(phone: Any, service: ServiceProcess) -> None:
    phone.goto(f"{service.api_url}#/gateways/demo-2")
    expect(phone.locator("#live")).to_have_text("Live")
    expect(phone.locator(".services .service")).to_have_count(3)
    phone.get_by_label("Action", exact=True).select_option("ClearCache")
    phone.get_by_role("button", name="Send ClearCache").click()
    history = phone.locator(".history")
    expect(history.locator("tbody tr")).not_to_have_class("empty")
    # The commands table is wider than the screen: it scrolls in its own box.
    box = history.bounding_box()
    assert box is not None and box["x"] + box["width"] <= WIDTH
    assert history.evaluate("node => getComputedStyle(node).overflowX") == "auto"
    phone.get_by_label("Measurand").select_option("Frequency")  # the simulator sends none
    expect(phone.locator("svg.chart-svg")).to_contain_text("No Frequency samples")
    assert_fits(phone)


# The room a select leaves for its text: its content box less the drop-down arrow
# Chromium draws inside it (about 20 px at 16 px text; 24 leaves a margin).
ARROW_PX = 24
SELECT_TEXT = """select => {
  const style = getComputedStyle(select);
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  const widest = Math.max(...[...select.options].map(o => context.measureText(o.text).width));
  const room = select.clientWidth - parseFloat(style.paddingLeft)
    - parseFloat(style.paddingRight) - ARROW;
  return {widest, room};
}""".replace("ARROW", str(ARROW_PX))
PHONE_FLEET = 150  # more than one page (overview.js PAGE_SIZE is 100)


def _import(service: ServiceProcess, gateway_ids: list[str]) -> None:
    body = json.dumps({"gateways": [{"id": gateway_id} for gateway_id in gateway_ids]})
    request = urllib.request.Request(
        f"{service.api_url}api/gateway-imports",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201


def test_paged_overview_filters_and_pager_fit_a_phone(phone: Any, service: ServiceProcess) -> None:
    # Ids after the demo gateways' in natural order: the other tests' cards stay first.
    _import(service, [f"zz-phone-{n}" for n in range(1, PHONE_FLEET + 1)])
    phone.goto(service.api_url)
    expect(phone.locator("#live")).to_have_text("Live")
    total = PHONE_FLEET + 2
    pager = phone.get_by_role("navigation", name="Pages of gateways")
    expect(pager).to_contain_text(f"1\u2013100 of {total}")

    # The filter row: every choice of each select shows whole, nothing off-screen.
    for name in ("Connection", "Sort by"):
        select = phone.get_by_label(name, exact=True)
        text = select.evaluate(SELECT_TEXT)
        assert text["widest"] <= text["room"], (name, text)
    assert_fits(phone)

    # The pager at the end of the list: on screen, its buttons tapped with a finger.
    pager.scroll_into_view_if_needed()
    for button in ("Previous", "Next"):
        box = pager.get_by_role("button", name=button).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, button
        assert box["height"] >= 24, (button, box)  # a finger's target, not a line of text
    pager.get_by_role("button", name="Next").tap()
    expect(pager).to_contain_text(f"101\u2013{total} of {total}")
    expect(phone.locator("tr[data-gateway]").first).to_be_visible()
    assert_fits(phone)
    pager.get_by_role("button", name="Previous").tap()
    expect(pager).to_contain_text(f"1\u2013100 of {total}")
