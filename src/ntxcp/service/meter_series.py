"""Sampled values thinned to time buckets: the lowest and highest value of each.

A chart of a long range (a week of 1-second samples is 604,800 of them) cannot draw,
nor should a browser download, every sample. ``GET /api/gateways/{id}/meter-series``
cuts the range into ``buckets`` equal spans and answers, per series (service,
measurand, phase, unit) and per span that holds samples, the count and the lowest and
highest value with their times, so that peaks and dips survive the thinning.

Both backends stream the stored messages that can match (selected by the index, as
:class:`ntxcp.service.queries.MeterCollector` does) and feed each to
:meth:`SeriesBuckets.add`, which aggregates in one pass without building a list of the
samples. A value that is not a finite decimal number (``SignedData``, text) is counted
as skipped, never drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec

from ntxcp.service.packing import (
    CODES,
    DEFAULT_MEASURAND_CODE,
    DEFAULTS,
    enumerated_texts,
    measurand_key,
    ms_text,
    text_ms,
)

__all__ = ["MAX_BUCKETS", "SeriesBuckets", "SeriesFilter", "answer", "buckets_for"]

MAX_BUCKETS = 4000
"""Most buckets one request may ask for (a wide screen has fewer pixel columns)."""

_DEFAULT_MEASURAND = DEFAULTS[1] or ""
_DEFAULT_UNIT = DEFAULTS[3] or ""
_SIGNED_DATA = CODES[6].index("SignedData")
_NOT_A_NUMBER = math.nan
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """Which sampled values to thin, and into how many buckets.

    Attributes:
        buckets: how many equal time spans the range is cut into (1..:data:`MAX_BUCKETS`).
        service: only this service id.
        measurand: only this measurand (spec §4.1 names).
        since: the range's start (spec §3 text); ``None``: the first matching message's.
        until: the range's end; ``None``: the last matching message's.
    """

    buckets: int
    service: int | None = None
    measurand: str | None = None
    since: str | None = None
    until: str | None = None


class SeriesBuckets:
    """Aggregates the samples of ``[since_ms, until_ms]`` into buckets, one pass.

    Each bucket of a series is a list ``[count, min, min_ms, max, max_ms]``; a series
    is keyed by the packed codes of its measurand, phase and unit (resolved to texts,
    and merged where two codings mean the same, only in :meth:`result`).

    Args:
        since_ms: the range's first millisecond.
        until_ms: its last (inclusive); before ``since_ms``: an empty range.
        buckets: how many spans to cut it into.
        measurand: only this measurand.
    """

    def __init__(self, since_ms: int, until_ms: int, buckets: int, measurand: str | None) -> None:
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.buckets = buckets
        # Every bucket spans the same whole number of milliseconds; the last one may
        # reach past until_ms, which no sample does.
        self.width = max(1, -(-(until_ms - since_ms + 1) // buckets))
        self.wanted = None if measurand is None else measurand_key(measurand)
        # (service id, measurand, phase, unit codes, bucket index) -> bucket
        self._cells: dict[tuple[int, Any, Any, Any, int], list[Any]] = {}
        self._skipped: dict[tuple[int, Any, Any, Any], int] = {}
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def add(self, service_id: int, samples: bytes | str) -> None:
        """Take the samples of one stored message (its ``samples`` column).

        This loop runs once per stored sample: it keeps to local names, one dict
        lookup per sample (the cell of its series and bucket) and no function calls
        but ``float``.
        """
        since, until, width, wanted = self.since_ms, self.until_ms, self.width, self.wanted
        cells, skipped = self._cells, self._skipped
        default_code = DEFAULT_MEASURAND_CODE
        signed = _SIGNED_DATA
        first, last = self.first_ms, self.last_ms
        for stamp, values in _decode(samples):
            if stamp < since or stamp > until:
                continue
            index = (stamp - since) // width
            drawn = False
            for fields in values:
                size = len(fields)
                if size < 4:  # trailing defaults left out (see .packing)
                    fields = fields + [None] * (4 - size)
                measurand = fields[1]
                if (
                    wanted is not None
                    and (default_code if measurand is None else measurand) != wanted
                ):
                    continue
                cell_key = (service_id, measurand, fields[2], fields[3], index)
                try:
                    value = float(fields[0])
                except (TypeError, ValueError):
                    value = _NOT_A_NUMBER
                # inf - inf and nan - nan are nan, which is not 0: not drawable either.
                if value - value != 0 or (size > 6 and fields[6] == signed):
                    skipped[cell_key[:4]] = skipped.get(cell_key[:4], 0) + 1
                    continue
                drawn = True
                cell = cells.get(cell_key)
                if cell is None:
                    cells[cell_key] = [1, value, stamp, value, stamp]
                    continue
                cell[0] += 1
                if value < cell[1]:
                    cell[1] = value
                    cell[2] = stamp
                elif value > cell[3]:
                    cell[3] = value
                    cell[4] = stamp
            if drawn:
                if first is None or stamp < first:
                    first = stamp
                if last is None or stamp > last:
                    last = stamp
        self.first_ms, self.last_ms = first, last

    @staticmethod
    def _entry(merged: dict[Any, dict[str, Any]], key: tuple[Any, ...]) -> dict[str, Any]:
        """The entry of a series (by its texts) that the series of ``key``'s codes joins."""
        names = _names(key)
        entry = merged.get(names)
        if entry is None:
            entry = merged[names] = {"buckets": {}, "skipped": 0}
        return entry

    def result(self) -> dict[str, Any]:
        """The buckets as API items: ``series``, ``total`` and ``skipped`` (see the route)."""
        merged: dict[tuple[int, str, str | None, str], dict[str, Any]] = {}
        for key, count in self._skipped.items():
            self._entry(merged, key)["skipped"] += count
        for cell_key, bucket in self._cells.items():
            _merge(self._entry(merged, cell_key[:4])["buckets"], cell_key[4], bucket)
        text = ms_text
        since, width = self.since_ms, self.width
        series = []
        total = skipped = 0
        for names in sorted(merged, key=_series_order):
            entry = merged[names]
            items = [
                {
                    "start": text(since + index * width),
                    "count": bucket[0],
                    "min": bucket[1],
                    "minAt": text(bucket[2]),
                    "max": bucket[3],
                    "maxAt": text(bucket[4]),
                }
                for index, bucket in sorted(entry["buckets"].items())
            ]
            count = sum(item["count"] for item in items)
            total += count
            skipped += entry["skipped"]
            service_id, measurand, phase, unit = names
            series.append(
                {
                    "serviceId": service_id,
                    "measurand": measurand,
                    "phase": phase,
                    "unit": unit,
                    "count": count,
                    "skipped": entry["skipped"],
                    "buckets": items,
                }
            )
        return {
            "bucketMs": width,
            "total": total,
            "skipped": skipped,
            "first": None if self.first_ms is None else ms_text(self.first_ms),
            "last": None if self.last_ms is None else ms_text(self.last_ms),
            "series": series,
        }


def _names(key: tuple[Any, ...]) -> tuple[int, str, str | None, str]:
    """A series' service id and the texts of its measurand, phase and unit."""
    service_id, *codes = key
    measurand, phase, unit = enumerated_texts(tuple(codes))[:3]
    return service_id, measurand or _DEFAULT_MEASURAND, phase, unit or _DEFAULT_UNIT


def _series_order(names: tuple[int, str, str | None, str]) -> tuple[int, str, str, str]:
    return names[0], names[1], names[2] or "", names[3]


def _merge(buckets: dict[int, list[Any]], index: int, bucket: list[Any]) -> None:
    """Add one bucket into another of the same series and span (two codings merged)."""
    mine = buckets.get(index)
    if mine is None:
        buckets[index] = list(bucket)
        return
    mine[0] += bucket[0]
    if bucket[1] < mine[1]:
        mine[1], mine[2] = bucket[1], bucket[2]
    if bucket[3] > mine[3]:
        mine[3], mine[4] = bucket[3], bucket[4]


def buckets_for(
    query: SeriesFilter, data_first: int | None, data_last: int | None
) -> SeriesBuckets | None:
    """The aggregator of a query; a bound not given is the matching messages' own.

    Args:
        query: the filter.
        data_first: the earliest ``first_ms`` of the messages that can match (or ``None``
            when none can, or it was not asked because ``since`` is given).
        data_last: the latest ``last_ms`` of them.

    Returns:
        ``None`` when a bound is neither given nor known (no matching data).
    """
    since = data_first if query.since is None else text_ms(query.since)
    until = data_last if query.until is None else text_ms(query.until)
    if since is None or until is None:
        return None
    return SeriesBuckets(since, until, query.buckets, query.measurand)


def answer(gateway_id: str, query: SeriesFilter, buckets: SeriesBuckets | None) -> dict[str, Any]:
    """The route's answer: the range and bucket width used, then the series."""
    if buckets is None or buckets.until_ms < buckets.since_ms:
        body: dict[str, Any] = {
            "bucketMs": None,
            "total": 0,
            "skipped": 0,
            "first": None,
            "last": None,
            "series": [],
        }
        since, until = query.since, query.until
    else:
        body = buckets.result()
        since, until = ms_text(buckets.since_ms), ms_text(buckets.until_ms)
    return {
        "gatewayId": gateway_id,
        "measurand": query.measurand,
        "since": since,
        "until": until,
        "buckets": query.buckets,
        **body,
    }
