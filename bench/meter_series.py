"""A week of 1-second samples thinned to buckets: how long the meter chart's query takes.

Fills a fresh SQLite database (the service's own migrations and packing) with one
gateway's week of 1-second power samples, 604,800 of them, in one of two shapes:

* ``minute``: one MeterValues message per minute carrying 60 meter values (10,080 rows);
* ``second``: one message per sample (604,800 rows), the worst case for the index.

Then it times ``GET /api/gateways/{id}/meter-series`` as the service answers it (the
service's read path, :meth:`ntxcp.service.storage.Storage.read` with
:func:`ntxcp.service.queries.meter_series`) for the whole week in 1,000 and 4,000
buckets, and for comparison the newest 5,000 raw samples (:func:`.queries.meter_values`,
what the chart loaded before). Prints one JSON line per result.

    python bench/meter_series.py                   # both shapes, 5 runs each
    python bench/meter_series.py --shape minute --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ntxcp.service import queries
from ntxcp.service.meter_series import SeriesFilter
from ntxcp.service.packing import ms_text, pack
from ntxcp.service.storage import Storage
from ntxcp.v10 import types as t

GATEWAY = "GW-WEEK"
SAMPLES = 7 * 86_400
START = datetime(2026, 1, 1, tzinfo=UTC)
POWER = t.Measurand.POWER_ACTIVE_IMPORT
_METER = (
    "INSERT INTO meter_messages (gateway_id, service_id, first_ms, last_ms, measurands, "
    "received_ms, samples) VALUES (?, 1, ?, ?, ?, ?, ?)"
)


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps({"kind": "meter_series", **fields}) + "\n")
    sys.stdout.flush()


def _value(second: int) -> t.MeterValue:
    watts = 1000 + (second * 7919) % 2000  # varied, deterministic
    return t.MeterValue(
        timestamp=START + timedelta(seconds=second),
        sampled_value=[t.SampledValue(value=str(watts), measurand=POWER, unit=t.UnitOfMeasure.W)],
    )


def rows(per_message: int) -> Iterator[tuple[Any, ...]]:
    """One ``meter_messages`` row per ``per_message`` consecutive seconds."""
    for first in range(0, SAMPLES, per_message):
        packed = pack([_value(second) for second in range(first, first + per_message)])
        yield (
            GATEWAY,
            packed.first_ms,
            packed.last_ms,
            packed.measurands,
            packed.last_ms + 40,
            packed.samples,
        )


def fill(path: Path, per_message: int) -> float:
    """Write the week; returns the seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(
        "INSERT INTO gateways (id, registered, created_at, first_seen, last_seen) "
        "VALUES (?, 1, ?2, ?2, ?2)",
        (GATEWAY, ms_text(0)),
    )
    conn.execute("BEGIN")
    conn.executemany(_METER, rows(per_message))
    conn.execute("UPDATE meter_span SET max_ms = ?", ((per_message - 1) * 1000,))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


async def timed(storage: Storage, repeat: int, query: Any, *args: Any) -> tuple[Any, list[float]]:
    """The query's result and its run times in milliseconds."""
    result = None
    runs = []
    # The service reads a series as a long read (off the event loop), the rest inline.
    read = storage.read_long if query is queries.meter_series else storage.read
    for _ in range(repeat):
        started = time.perf_counter()
        result = await read(query, GATEWAY, *args)
        runs.append((time.perf_counter() - started) * 1000)
    return result, runs


async def measure(shape: str, repeat: int, directory: Path) -> None:
    per_message = 60 if shape == "minute" else 1
    path = directory / f"week-{shape}.sqlite"
    storage = Storage(path)  # the service's own schema and migrations
    storage.open()
    await storage.close()
    seconds = await asyncio.to_thread(fill, path, per_message)
    emit(
        item="fill",
        shape=shape,
        samples=SAMPLES,
        messages=SAMPLES // per_message,
        fill_seconds=round(seconds, 1),
    )
    storage = Storage(path)
    storage.open()
    try:
        since = ms_text(int(START.timestamp() * 1000))
        until = ms_text(int((START + timedelta(days=7)).timestamp() * 1000) - 1)
        for buckets in (1000, 4000):
            query = SeriesFilter(buckets=buckets, measurand=POWER.value, since=since, until=until)
            result, runs = await timed(storage, repeat, queries.meter_series, query)
            assert result["total"] == SAMPLES, result["total"]
            emit(
                item="series",
                shape=shape,
                buckets=buckets,
                total=result["total"],
                p50_ms=round(statistics.median(runs), 1),
                max_ms=round(max(runs), 1),
            )
        auto = SeriesFilter(buckets=1000, measurand=POWER.value)
        result, runs = await timed(storage, repeat, queries.meter_series, auto)
        emit(
            item="series-own-range",
            shape=shape,
            buckets=1000,
            total=result["total"],
            p50_ms=round(statistics.median(runs), 1),
            max_ms=round(max(runs), 1),
        )
        raw = queries.MeterFilter(measurand=POWER.value, since=since, limit=5000)
        _, runs = await timed(storage, repeat, queries.meter_values, raw)
        emit(
            item="latest-5000-raw",
            shape=shape,
            p50_ms=round(statistics.median(runs), 1),
            max_ms=round(max(runs), 1),
        )
    finally:
        await storage.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=("minute", "second", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query (default 5)")
    args = parser.parse_args()
    shapes = ("minute", "second") if args.shape == "both" else (args.shape,)
    with tempfile.TemporaryDirectory() as directory:
        for shape in shapes:
            asyncio.run(measure(shape, args.repeat, Path(directory)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
