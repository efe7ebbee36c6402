"""A gateway's page in a real browser: commands built from the schemas, the meter chart,
the message log, and a Reset that reaches the simulator and shows its reboot live."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard_helpers import GatewayThread, ServiceProcess
from playwright.sync_api import expect

from ntxcp.v10 import types as t
from waiting import wait_until

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


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


def open_gateway(page: Any, service: ServiceProcess, gateway_id: str) -> None:
    page.goto(f"{service.api_url}#/gateways/{gateway_id}")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator(".title-line")).to_contain_text(gateway_id)


def choose_action(page: Any, action: str) -> Any:
    page.get_by_label("Action", exact=True).select_option(action)
    return page.locator("form.command-form")


def test_reset_from_the_form_reboots_the_simulator_live(page: Any, service: ServiceProcess) -> None:
    open_gateway(page, service, "demo-1")
    header = page.locator(".title-line")
    expect(header.locator('[data-connection="connected"]')).to_be_visible()
    last_boot = page.locator('[data-field="last-boot"]')
    expect(last_boot).not_to_have_attribute("datetime", "")
    booted = last_boot.get_attribute("datetime")
    expect(page.locator(".services .service")).to_have_count(3)

    form = choose_action(page, "Reset")
    form.get_by_label("type", exact=True).select_option("Soft")
    expect(form.locator("pre.preview")).to_contain_text('"type": "Soft"')
    form.get_by_role("button", name="Send Reset").click()
    result = page.locator(".result")
    expect(result).to_contain_text("Reset confirmed")
    expect(result.locator(".badge")).to_have_text("Accepted")

    # The simulator closes the connection, stays off a second, reconnects and boots.
    expect(header.locator('[data-connection="disconnected"]')).to_be_visible()
    expect(header.locator('[data-connection="connected"]')).to_be_visible()
    expect(last_boot).not_to_have_attribute("datetime", booted or "")
    log = page.locator("table.log")
    expect(log.locator('tr[data-action="BootNotification"]').first).to_be_visible()
    expect(log.locator('tr[data-action="Reset"]').first).to_be_visible()
    # The command is in the recent commands, with its outcome.
    expect(page.locator(".history")).to_contain_text("Reset")

    # Raw JSON of a frame is one click away.
    row = log.locator('tr[data-action="Reset"]').first
    row.get_by_role("button", name=re.compile("Raw JSON")).click()
    raw = row.locator("xpath=following-sibling::tr[1]").locator("pre")
    expect(raw).to_be_visible()
    frame = json.loads(raw.inner_text())
    assert frame[0] in (2, 3) and isinstance(frame[1], str)


def test_invalid_field_value_shows_the_api_error_at_the_field(
    page: Any, service: ServiceProcess
) -> None:
    open_gateway(page, service, "demo-2")
    form = choose_action(page, "ChangeConfiguration")
    key = form.get_by_label("key", exact=True)
    key.fill("K" * 51)
    form.get_by_label("value", exact=True).fill("1")
    expect(form.locator(".counter.over")).to_have_text("51/50")
    form.get_by_role("button", name="Send ChangeConfiguration").click()
    expect(key).to_have_attribute("aria-invalid", "true")
    error = key.locator("xpath=ancestor::div[contains(@class,'field')][1]").locator(".field-error")
    expect(error).to_have_text("must be at most 50 characters; it has 51")
    expect(page.locator(".result")).to_contain_text("PropertyConstraintViolation")

    # Fixed, it goes through and the error is gone.
    key.fill("MeterValueSampleInterval")
    form.get_by_label("value", exact=True).fill("5")
    form.get_by_role("button", name="Send ChangeConfiguration").click()
    expect(page.locator(".result")).to_contain_text("ChangeConfiguration confirmed")
    expect(key).not_to_have_attribute("aria-invalid", "true")


def test_forms_follow_the_schemas(page: Any, service: ServiceProcess) -> None:
    open_gateway(page, service, "demo-2")
    options = page.get_by_label("Action", exact=True).locator("option").all_inner_texts()
    assert options == sorted(
        [
            "CaptureProcess",
            "ChangeConfiguration",
            "ClearCache",
            "DataTransfer",
            "GetConfiguration",
            "GetDiagnostics",
            "Reset",
            "TriggerMessage",
            "UpdateFirmware",
        ]
    )

    # An array: repeatable inputs; the confirmation as a readable table.
    form = choose_action(page, "GetConfiguration")
    form.get_by_role("button", name="Add key").click()
    form.get_by_label("key 1", exact=True).fill("HeartbeatInterval")
    form.get_by_role("button", name="Add key").click()
    form.get_by_label("key 2", exact=True).fill("NoSuchKey")
    form.get_by_role("button", name="Send GetConfiguration").click()
    table = page.locator(".result table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("HeartbeatInterval")
    expect(page.locator(".result")).to_contain_text("Unknown keys: NoSuchKey")

    # An enum: a select; integers: number inputs; date-times: sent as RFC 3339 UTC.
    form = choose_action(page, "UpdateFirmware")
    assert form.get_by_label("retries", exact=True).get_attribute("type") == "number"
    retrieve = form.get_by_label("retrieveDate", exact=True)
    retrieve.fill("2026-11-23 18:36:34")  # 24-hour local time, whatever the browser's locale
    preview = json.loads(form.locator("pre.preview").text_content() or "")
    assert preview == {"retrieveDate": "2026-11-23T18:36:34.000Z"}  # the page's zone is UTC
    assert retrieve.get_attribute("type") == "text"
    assert retrieve.get_attribute("placeholder") == "YYYY-MM-DD HH:MM:SS"
    form.get_by_role("button", name="Set retrieveDate to now").click()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d [0-2]\d:[0-5]\d:[0-5]\d", retrieve.input_value())
    retrieve.fill("2026-11-23 7pm")
    expect(form.locator("output.utc")).to_contain_text("not a date and time")

    form = choose_action(page, "TriggerMessage")
    trigger = form.get_by_label("requestedMessage", exact=True)
    assert "StatusNotification" in trigger.locator("option").all_inner_texts()
    trigger.select_option("StatusNotification")
    form.get_by_label("serviceId", exact=True).fill("1")
    form.get_by_role("button", name="Send TriggerMessage").click()
    expect(page.locator(".result")).to_contain_text("TriggerMessage confirmed")

    # A CALLERROR-free rejection and a required array (CaptureProcess).
    form = choose_action(page, "CaptureProcess")
    form.get_by_label("serviceId", exact=True).fill("1")
    form.get_by_label("datapointIds 1", exact=True).fill("temperature")
    form.get_by_role("button", name="Send CaptureProcess").click()
    expect(page.locator(".result table")).to_contain_text("temperature")


def test_meter_chart_draws_the_samples_and_grows_live(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    gateway = gateways.connect(service.ws_url, "meter-gw", "DX-METER")
    now = datetime.now(UTC)
    energy = [(now - timedelta(minutes=5 - i), ENERGY, f"{1000 + 40 * i}", "Wh") for i in range(5)]
    power = [(now - timedelta(minutes=5 - i), POWER, f"{2.5 + i / 10:.1f}", "kW") for i in range(5)]
    gateways.meter_values(gateway, 1, energy)
    gateways.meter_values(gateway, 1, power)
    gateways.meter_values(gateway, 2, energy[:3])

    open_gateway(page, service, "meter-gw")
    chart = page.locator("svg.chart-svg")
    expect(chart).to_have_attribute("data-points", "8")
    expect(chart.locator('[data-series="1|"] circle')).to_have_count(5)
    expect(chart.locator('[data-series="2|"] circle')).to_have_count(3)
    expect(chart.locator("path")).to_have_count(2)
    expect(chart.locator("text.axis-label")).to_have_text("kWh")
    expect(page.locator(".legend")).to_contain_text("Service 1 (5)")
    # The default range fits the data: five minutes of samples span the plot's width.
    expect(page.get_by_label("Time range")).to_have_value("0")
    plot = chart.bounding_box()
    xs = [float(c.get_attribute("cx") or 0) for c in chart.locator("circle").all()]
    assert plot is not None and min(xs) < plot["width"] * 0.2 and max(xs) > plot["width"] * 0.8

    # A new sample arrives live.
    gateways.meter_values(gateway, 1, [(datetime.now(UTC), ENERGY, "1300", "Wh")])
    expect(chart.locator('[data-series="1|"] circle')).to_have_count(6)

    # Another measurand (kW is drawn in W, prefixed again for the axis).
    page.get_by_role("button", name="Power", exact=True).click()
    expect(chart).to_have_attribute("data-points", "5")
    expect(chart.locator("text.axis-label")).to_have_text("kW")
    page.get_by_label("Measurand").select_option("Voltage")
    expect(chart).to_have_attribute("data-points", "0")
    expect(chart).to_contain_text("No Voltage samples")
    page.get_by_label("Measurand").select_option(ENERGY)
    page.get_by_label("Time range").select_option(label="Last 15 minutes")
    expect(chart).to_have_attribute("data-points", "9")

    # The message log filters by action, and follows live.
    page.get_by_label("Action filter").select_option("MeterValues")
    log = page.locator("table.log")
    expect(log.locator("tr.frame")).to_have_count(8)  # 4 CALLs and their CALLRESULTs
    gateways.status(gateway, "1", "Charging")
    expect(log.locator("tr.frame")).to_have_count(8)  # filtered out
    page.get_by_label("Action filter").select_option("")
    expect(log.locator('tr[data-action="StatusNotification"]')).to_have_count(2)
    expect(page.locator(".services")).to_contain_text("Charging")


def test_gateway_errors_and_missing_gateways_are_shown(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    gateway = gateways.connect(service.ws_url, "plain gw#1", "DX-PLAIN")  # no C→G handlers
    page.goto(service.api_url)
    page.get_by_role("link", name="plain gw#1").click()
    expect(page.locator(".title-line")).to_contain_text("plain gw#1")
    form = choose_action(page, "ClearCache")
    expect(form).to_contain_text("This request has no fields.")
    form.get_by_role("button", name="Send ClearCache").click()
    result = page.locator(".result")
    expect(result).to_contain_text("The gateway answered CALLERROR NotSupported")
    expect(page.locator(".history")).to_contain_text("callerror")

    gateways.stop(gateway)
    expect(page.locator('.title-line [data-connection="disconnected"]')).to_be_visible()
    form.get_by_role("button", name="Send ClearCache").click()
    expect(result).to_contain_text("is not connected")

    page.goto(f"{service.api_url}#/gateways/no-such-gateway")
    expect(page.get_by_role("alert")).to_contain_text("There is no gateway no-such-gateway.")
    expect(page.locator(".grid")).to_be_hidden()


def test_refusal_statuses_look_like_refusals(page: Any, service: ServiceProcess) -> None:
    open_gateway(page, service, "demo-2")
    form = choose_action(page, "ChangeConfiguration")
    form.get_by_label("key", exact=True).fill("NoSuchKey")
    form.get_by_label("value", exact=True).fill("1")
    form.get_by_role("button", name="Send ChangeConfiguration").click()
    alert = page.locator(".result .alert")
    expect(alert).to_contain_text("ChangeConfiguration refused: not supported by the gateway")
    expect(alert).not_to_contain_text("confirmed")
    expect(alert).to_have_class(re.compile(r"\btone-bad\b"))
    expect(alert.locator(".badge")).to_have_text("NotSupported")
    latest = page.locator(".history tbody tr").first
    expect(latest.locator(".badge")).to_have_text("refused")
    expect(latest.locator(".badge")).to_have_class(re.compile(r"\btone-bad\b"))

    # Accepted stays a success, in the success colour.
    form.get_by_label("key", exact=True).fill("HeartbeatInterval")
    form.get_by_label("value", exact=True).fill("300")
    form.get_by_role("button", name="Send ChangeConfiguration").click()
    expect(alert).to_contain_text("ChangeConfiguration confirmed")
    expect(alert).to_have_class(re.compile(r"\btone-ok\b"))
    expect(latest.locator(".badge")).to_have_text("ok")


def test_unknown_gateway_page_recovers_when_it_appears(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    page.goto(f"{service.api_url}#/gateways/LATE-1")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.get_by_role("alert")).to_contain_text("There is no gateway LATE-1.")
    expect(page.get_by_role("button", name="Remove gateway")).to_be_hidden()

    gateways.connect(service.ws_url, "LATE-1", "DX-LATE")
    expect(page.locator("div.grid")).to_be_visible()
    expect(page.locator('.title-line [data-connection="connected"]')).to_be_visible()
    expect(page.locator(".defs")).to_contain_text("DX-LATE")
    expect(page.get_by_role("button", name="Remove gateway")).to_be_visible()
    expect(page.locator(".banner")).to_be_hidden()


def test_message_log_says_why_it_is_empty_and_holds_an_opened_frame_still(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    register(service, "quiet-gw")
    open_gateway(page, service, "quiet-gw")
    log = page.locator("table.log")
    expect(log.locator("tr.empty")).to_have_text("No frames logged yet.")

    gateway = gateways.connect(service.ws_url, "log-gw", "DX-LOG")
    open_gateway(page, service, "log-gw")
    expect(log.locator('tr[data-action="BootNotification"]')).to_have_count(2)
    page.get_by_label("Action filter").select_option("DataTransfer")
    expect(log.locator("tr.empty")).to_have_text("No frames match the filter.")
    page.get_by_label("Action filter").select_option("")
    expect(log.locator("tr.frame")).to_have_count(2)

    # An opened raw frame stays where it is while frames arrive; they are held and counted.
    opened = log.locator("tr.frame").first
    toggle = opened.get_by_role("button", name=re.compile("Raw JSON"))
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    before = opened.bounding_box()
    gateways.status(gateway, "1", "Available")
    held = page.locator(".held")
    expect(held).to_contain_text("2 new frames held")
    assert opened.bounding_box() == before
    expect(log.locator("tr.frame")).to_have_count(2)
    toggle.click()
    expect(log.locator("tr.frame")).to_have_count(4)
    expect(held).to_be_hidden()


def test_commands_wait_for_a_gateway_that_never_connected(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    register(service, "never-gw")
    open_gateway(page, service, "never-gw")
    form = choose_action(page, "ClearCache")
    expect(form.locator(".never-connected")).to_contain_text("has never connected")
    expect(form.get_by_role("button", name="Send ClearCache")).to_be_disabled()

    gateways.connect(service.ws_url, "never-gw", "DX-NEVER")
    expect(form.get_by_role("button", name="Send ClearCache")).to_be_enabled()
    expect(form.locator(".never-connected")).to_be_hidden()


def test_what_is_scrolled_to_stays_below_the_top_bar(page: Any, service: ServiceProcess) -> None:
    page.set_viewport_size({"width": 1360, "height": 500})
    open_gateway(page, service, "demo-2")
    heading = page.get_by_role("heading", name="Message log")
    heading.evaluate("node => node.scrollIntoView({block: 'start'})")
    page.wait_for_function("window.scrollY > 0")
    bar = page.locator(".topbar").bounding_box()
    box = heading.bounding_box()
    assert bar is not None and box is not None
    assert box["y"] >= bar["y"] + bar["height"], (box, bar)


def test_meter_chart_thins_dense_series_keeping_peaks(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    gateway = gateways.connect(service.ws_url, "dense-gw", "DX-DENSE")
    start = datetime.now(UTC) - timedelta(seconds=3000)
    values = [
        (start + timedelta(seconds=i), POWER, "9000" if i == 1234 else f"{1000 + i % 7}", "W")
        for i in range(3000)
    ]
    for first in range(0, 3000, 1000):  # at most 1000 sampled values per message
        gateways.meter_values(gateway, 1, values[first : first + 1000])

    open_gateway(page, service, "dense-gw")
    page.get_by_role("button", name="Power", exact=True).click()
    chart = page.locator("svg.chart-svg")
    expect(chart).to_have_attribute("data-points", "3000")
    drawn = int(chart.get_attribute("data-drawn") or 0)
    assert 0 < drawn < 3000
    expect(chart.locator("circle")).to_have_count(0)
    # The one peak (9 kW among ~1 kW) survives the thinning: the line reaches near the
    # top of the plot (y grows downwards; the baseline sits near the bottom).
    path = chart.locator('[data-series="1|"] path').get_attribute("d") or ""
    ys = [float(y) for y in re.findall(r"[ML][\d.]+,([\d.]+)", path)]
    assert len(ys) == drawn
    assert min(ys) < max(ys) / 4, (min(ys), max(ys))


def test_meter_chart_draws_a_week_of_dense_samples_from_the_servers_buckets(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    gateway = gateways.connect(service.ws_url, "week-gw", "DX-WEEK")
    # A week of 1-second samples (four minutes short, so that "Last 7 days" holds them
    # all), 1,000 per message: 605 messages rather than 600,000.
    count = 7 * 86400 - 240
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    start = end - timedelta(seconds=count - 1)
    peak = count // 3

    async def send_week() -> None:
        for first in range(0, count, 1000):
            await gateway.meter_values(
                1,
                [
                    t.MeterValue(
                        timestamp=start + timedelta(seconds=second),
                        sampled_value=[
                            t.SampledValue(
                                value="9000" if second == peak else f"{1000 + second % 7}",
                                measurand=t.Measurand.POWER_ACTIVE_IMPORT,
                                unit=t.UnitOfMeasure.W,
                            )
                        ],
                    )
                    for second in range(first, min(first + 1000, count))
                ],
            )

    gateways.run(send_week(), timeout=300)

    open_gateway(page, service, "week-gw")
    page.get_by_role("button", name="Power", exact=True).click()
    chart = page.locator("svg.chart-svg")
    note = page.locator('section[aria-labelledby="meter-title"] p.note')
    for label in ("Fit the data", "Last 7 days"):
        page.get_by_label("Time range").select_option(label=label)
        expect(chart.locator("title")).to_contain_text(f"{POWER}, {label}")
        expect(note).to_have_text(f"{count:,} samples, shown as min/max per pixel column.")
        # The whole week is drawn, not its newest 5,000 samples: the first point lies
        # in the first pixel column's span, the last is the newest sample.
        column = timedelta(days=7) / 600  # the plot is wider than 600 pixels
        first = datetime.fromisoformat(chart.get_attribute("data-first") or "")
        last = datetime.fromisoformat(chart.get_attribute("data-last") or "")
        assert start <= first < start + column, (start, first)
        assert end - column < last <= end, (end, last)
        assert 0 < int(chart.get_attribute("data-drawn") or 0) <= 4 * 4000
        # The one 9 kW peak among 1 kW samples survives the thinning: the axis reaches it.
        ticks = [float(text) for text in chart.locator("text.tick.y").all_text_contents()]
        assert max(ticks) >= 9, ticks
        expect(chart.locator("text.axis-label")).to_have_text("kW")


def test_every_invalid_field_is_shown_at_once_in_words(page: Any, service: ServiceProcess) -> None:
    open_gateway(page, service, "demo-2")
    form = choose_action(page, "UpdateFirmware")
    location = form.get_by_label("location", exact=True)
    retries = form.get_by_label("retries", exact=True)
    location.fill("not a url")
    form.get_by_label("retrieveDate", exact=True).fill("2026-11-23 18:36:34")
    retries.fill("-1")
    form.get_by_role("button", name="Send UpdateFirmware").click()
    expect(page.locator(".result")).to_contain_text("Not sent: 2 fields are invalid")
    for field, words in [
        (location, "must be an absolute URL such as ftp://host/file"),
        (retries, "must be a whole number from 0 to 2147483647, not -1"),
    ]:
        expect(field).to_have_attribute("aria-invalid", "true")
        error = field.locator("xpath=ancestor::div[contains(@class,'field')][1]")
        expect(error.locator(".field-error")).to_contain_text(words)
    expect(location).to_be_focused()


def test_removing_a_connected_gateway_says_that_under_auth_none_it_comes_back(
    page: Any, service: ServiceProcess, gateways: GatewayThread
) -> None:
    # --auth none (this service) admits any gateway id: Remove closes the connection,
    # and a gateway still running connects again at once. The operator is told so
    # before and after, and what the overview then shows agrees.
    gateway = gateways.connect(service.ws_url, "rm-running", "DX-RM", keep_running=True)
    gateways.status(gateway, "1", "Faulted", "GroundFailure")
    open_gateway(page, service, "rm-running")
    expect(page.locator(".badges [data-connection]")).to_have_attribute(
        "data-connection", "connected"
    )
    page.get_by_role("button", name="Remove gateway").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Its connection is closed.")
    expect(dialog).to_contain_text("admits any gateway id (--auth none)")
    expect(dialog).to_contain_text("if rm-running is still running, it connects again")
    expect(dialog).to_contain_text("--auth basic")
    dialog.get_by_role("button", name="Remove gateway").click()
    toast = page.locator(".toast", has_text="Gateway rm-running removed.")
    expect(toast).to_contain_text("If it is still running, it connects again and is listed anew")
    wait_until(lambda: gateway.last_close == (1008, "gateway removed"))

    # Back on the overview: there again, connected, seen anew (its statuses are gone).
    back = page.locator('tr[data-gateway="rm-running"]')
    expect(back.locator('[data-connection="connected"]')).to_be_visible()
    expect(back.locator(".chip")).to_have_count(0)
