"""Meter values thinned to time buckets (``GET /api/gateways/{id}/meter-series``), on
both storage backends, against buckets computed here from the samples sent."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from service_helpers import Api, ServiceProcess, gateway, iso

from ntxcp.v10 import types as t

POWER = t.Measurand.POWER_ACTIVE_IMPORT
ENERGY = t.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECONDS = 600
BASE = "/api/gateways/series-1/meter-series"

# (service, phase, unit) -> [(seconds after START, value)]; values distinct per series,
# so that the time of each bucket's lowest and highest value is unambiguous.
Samples = dict[tuple[int, str | None, str], list[tuple[int, float]]]


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def expected_buckets(
    points: list[tuple[int, float]], since: datetime, until: datetime, buckets: int
) -> list[dict[str, Any]]:
    """The buckets of one series, computed from the samples sent."""
    since_ms, until_ms = _ms(since), _ms(until)
    width = math.ceil((until_ms - since_ms + 1) / buckets)
    grouped: dict[int, list[tuple[int, float]]] = {}
    for second, value in points:
        stamp = _ms(START) + second * 1000
        if since_ms <= stamp <= until_ms:
            grouped.setdefault((stamp - since_ms) // width, []).append((stamp, value))
    result = []
    for index in sorted(grouped):
        members = grouped[index]
        low = min(members, key=lambda member: member[1])
        high = max(members, key=lambda member: member[1])
        result.append(
            {
                "start": iso(datetime.fromtimestamp((since_ms + index * width) / 1000, UTC)),
                "count": len(members),
                "min": low[1],
                "minAt": iso(datetime.fromtimestamp(low[0] / 1000, UTC)),
                "max": high[1],
                "maxAt": iso(datetime.fromtimestamp(high[0] / 1000, UTC)),
            }
        )
    return result


async def send_week_sample(service: ServiceProcess) -> Samples:
    """Send 10 minutes of 1-second power samples in two shapes; returns what was sent.

    Service 1: one message per minute with 60 meter values, each an L1 sample in W
    (every 97th second also a SignedData sample and a text value, which are skipped).
    Service 2: one message per sample, in kW, sent newest first (order must not matter).
    Energy samples ride along in service 1's messages (another measurand: filtered out).
    """
    rng = random.Random(7)
    sent: Samples = {(1, "L1", "W"): [], (2, None, "kW"): []}
    values = rng.sample(range(100_000), 2 * SECONDS)
    async with gateway(service.ws_url, "series-1") as gw:
        await gw.boot_notification("DX-100")
        for minute in range(SECONDS // 60):
            meter_values = []
            for second in range(minute * 60, minute * 60 + 60):
                value = values[second] / 10
                sent[(1, "L1", "W")].append((second, value))
                sampled = [
                    t.SampledValue(
                        value=f"{value:.1f}",
                        measurand=POWER,
                        phase=t.Phase.L1,
                        unit=t.UnitOfMeasure.W,
                    ),
                    t.SampledValue(value=str(second), measurand=ENERGY),
                ]
                if second % 97 == 0:
                    sampled.append(
                        t.SampledValue(
                            value="99999999",  # a number, but signed data: skipped
                            measurand=POWER,
                            phase=t.Phase.L1,
                            unit=t.UnitOfMeasure.W,
                            format=t.ValueFormat.SIGNED_DATA,
                        )
                    )
                    sampled.append(
                        t.SampledValue(
                            value="n/a", measurand=POWER, phase=t.Phase.L1, unit=t.UnitOfMeasure.W
                        )
                    )
                meter_values.append(
                    t.MeterValue(timestamp=START + timedelta(seconds=second), sampled_value=sampled)
                )
            await gw.meter_values(1, meter_values)
        for second in reversed(range(0, SECONDS, 5)):
            value = values[SECONDS + second] / 1000
            sent[(2, None, "kW")].append((second, value))
            await gw.meter_values(
                2,
                [
                    t.MeterValue(
                        timestamp=START + timedelta(seconds=second),
                        sampled_value=[
                            t.SampledValue(
                                value=f"{value:.3f}", measurand=POWER, unit=t.UnitOfMeasure.KW
                            )
                        ],
                    )
                ],
            )
    return sent


async def test_buckets_hold_each_spans_count_lowest_and_highest(
    service: ServiceProcess, api: Api
) -> None:
    sent = await send_week_sample(service)
    skipped_l1 = 2 * len([s for s in range(SECONDS) if s % 97 == 0])

    # A given range, cut into buckets that do not divide it evenly.
    since, until = START + timedelta(seconds=30), START + timedelta(seconds=450)
    status, body = await api.get(
        BASE, measurand=POWER.value, since=iso(since), until=iso(until), buckets="7"
    )
    assert status == 200, body
    assert body["gatewayId"] == "series-1" and body["measurand"] == POWER.value
    assert (body["since"], body["until"]) == (iso(since), iso(until))
    assert body["bucketMs"] == math.ceil((_ms(until) - _ms(since) + 1) / 7)
    assert [(s["serviceId"], s["phase"], s["unit"]) for s in body["series"]] == list(sent)
    for series, (key, points) in zip(body["series"], sent.items(), strict=True):
        assert series["measurand"] == POWER.value
        assert series["buckets"] == expected_buckets(points, since, until, 7), key
        assert series["count"] == sum(b["count"] for b in series["buckets"])
    in_range = [s for s in range(30, 451) if s % 97 == 0]
    assert body["series"][0]["skipped"] == 2 * len(in_range)
    assert body["total"] == sum(s["count"] for s in body["series"])
    assert body["skipped"] == 2 * len(in_range)
    assert body["first"] == iso(since) and body["last"] == iso(until)

    # No range: the data's own, in as many buckets as seconds (one sample each for L1).
    status, whole = await api.get(BASE, measurand=POWER.value, buckets=str(SECONDS))
    assert status == 200
    first, last = START, START + timedelta(seconds=SECONDS - 1)
    assert (whole["since"], whole["until"]) == (iso(first), iso(last))
    assert whole["total"] == SECONDS + SECONDS // 5 and whole["skipped"] == skipped_l1
    for series, points in zip(whole["series"], sent.values(), strict=True):
        assert series["buckets"] == expected_buckets(points, first, last, SECONDS)

    # One service; one bucket for everything.
    _, one = await api.get(BASE, measurand=POWER.value, service="2", buckets="1")
    [series] = one["series"]
    values = [value for _, value in sent[(2, None, "kW")]]
    assert series["buckets"][0]["count"] == len(values)
    assert (series["buckets"][0]["min"], series["buckets"][0]["max"]) == (min(values), max(values))

    # Without a measurand, every measurand is a series of its own (energy: the defaults).
    _, every = await api.get(BASE, service="1", buckets="1")
    assert [(s["measurand"], s["unit"], s["count"]) for s in every["series"]] == [
        (ENERGY.value, "Wh", SECONDS),
        (POWER.value, "W", SECONDS),
    ]

    # since after until: an empty range, not an error; a range without samples: no series.
    status, empty = await api.get(BASE, since=iso(until), until=iso(since))
    assert status == 200 and empty["series"] == [] and empty["total"] == 0
    _, later = await api.get(BASE, since=iso(START + timedelta(days=1)))
    assert later["series"] == [] and later["first"] is None


async def test_bad_parameters_and_unknown_gateways(service: ServiceProcess, api: Api) -> None:
    async with gateway(service.ws_url, "series-2") as gw:
        await gw.boot_notification("DX-100")
    path = "/api/gateways/series-2/meter-series"
    for params, parameter in (
        ({"buckets": "0"}, "buckets"),
        ({"buckets": "4001"}, "buckets"),
        ({"buckets": "ten"}, "buckets"),
        ({"buckets": ""}, "buckets"),
        ({"measurand": "Bogus"}, "measurand"),
        ({"service": "-1"}, "service"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-23T18:00:00"}, "until"),
        ({"limit": "10"}, "limit"),
    ):
        status, body = await api.get(path, **params)
        assert status == 400, params
        assert body["parameter"] == parameter and parameter in body["error"], (params, body)
    status, body = await api.get(path, buckets="4000")
    assert status == 200 and body["series"] == [] and body["since"] is None
    status, body = await api.get("/api/gateways/nobody/meter-series")
    assert status == 404 and "unknown gateway" in body["error"]
