"""The service's database at scale: fill it with N sampled values, measure size and queries.

Fills a fresh database, laid out by the service's own migrations, with MeterValues
of ``--gateways`` gateways (one message per gateway per minute, 4 sampled values:
energy, power, current, voltage, as the simulator sends), each with its two frames in
the frame log (the CALL and its CALLRESULT, as the service logs them), plus one
StatusNotification exchange per gateway per hour and a Heartbeat every 5 minutes.
Rows are written with the service's packing (:mod:`ntxcp.service.packing`) in large
transactions, which is much faster than the wire but stores the same bytes.

Then it measures:

* bytes on disk per sampled value (database after a checkpoint), data alone and
  with the frame log (``dbstat``);
* the growth of the database per gateway per day at one MeterValues per minute;
* every query the HTTP API and the dashboard make, through the service's own read
  path (:meth:`ntxcp.service.storage.Storage.read` and :mod:`ntxcp.service.queries`),
  against gateways spread over the database: median and maximum of ``--repeat``
  runs each.

Prints one JSON line per result (``{"kind": "storage", ...}``) on stdout, which
``bench/run.py`` records with the rest of the run; ``--keep FILE`` keeps the database.

    python bench/service_storage.py                    # 10,000,000 samples (~2 GB)
    python bench/service_storage.py --samples 200000   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ntxcp.service import queries
from ntxcp.service.backend import StorageBackend
from ntxcp.service.packing import ms_text, pack
from ntxcp.service.storage import Storage
from ntxcp.v10 import core
from ntxcp.v10 import types as t
from ntxcp.v10.codec import encode_payload

SAMPLES_PER_MESSAGE = 4
START = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps({"kind": "storage", **fields}) + "\n")
    sys.stdout.flush()


def meter_request(minute: int, energy: float) -> core.MeterValuesRequest:
    when = START + timedelta(minutes=minute)
    return core.MeterValuesRequest(
        service_id=1 + minute % 2,
        meter_value=[
            t.MeterValue(
                timestamp=when,
                sampled_value=[
                    t.SampledValue(value=f"{energy:.1f}"),
                    t.SampledValue(
                        value=f"{3.2 + minute % 7 * 0.1:.2f}",
                        measurand=t.Measurand.POWER_ACTIVE_IMPORT,
                        unit=t.UnitOfMeasure.KW,
                    ),
                    t.SampledValue(
                        value=f"{14 + minute % 5:.1f}",
                        measurand=t.Measurand.CURRENT_IMPORT,
                        unit=t.UnitOfMeasure.A,
                        phase=t.Phase.L1,
                    ),
                    t.SampledValue(
                        value=f"{229 + minute % 3:.1f}",
                        measurand=t.Measurand.VOLTAGE,
                        unit=t.UnitOfMeasure.V,
                        phase=t.Phase.L1,
                    ),
                ],
            )
        ],
    )


_METER = (
    "INSERT INTO meter_messages (gateway_id, service_id, first_ms, last_ms, measurands, "
    "received_ms, unique_id, samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FRAME = (
    "INSERT INTO frames (gateway_id, direction, time_ms, message_type, action, unique_id, raw, "
    "size) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
)


def minute_rows(
    samples: int, gateways: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """The rows of each minute: (meter_messages rows, frames rows in time order)."""
    names = [f"GW-{index:05d}" for index in range(gateways)]
    messages = samples // SAMPLES_PER_MESSAGE
    minutes = -(-messages // gateways)
    written = 0
    energy = 1000.0
    status = encode_payload(
        core.StatusNotificationRequest(
            service_id="1",
            error_code=core.DingxGatewayErrorCode.NO_ERROR,
            status=core.DingxGatewayStatus.AVAILABLE,
        )
    )

    def exchange(
        name: str, stamp: int, action: str, uid: bytes, call: bytes, answer: bytes
    ) -> list[tuple[Any, ...]]:
        text = uid.decode()
        return [
            (
                name,
                "in",
                stamp,
                2,
                action,
                text,
                b'[2,"' + uid + b'","' + action.encode() + b'",' + call + b"]",
            ),
            (name, "out", stamp + 1, 3, action, text, b'[3,"' + uid + b'",' + answer + b"]"),
        ]

    for minute in range(minutes):
        if written >= messages:
            break
        request = meter_request(minute, energy)
        energy += 0.8
        packed = pack(request.meter_value)
        payload = encode_payload(request)
        stamp = packed.last_ms
        meter_rows = []
        frame_rows = []
        for name in names[: min(gateways, messages - written)]:
            uid = str(uuid.uuid4())
            meter_rows.append(
                (
                    name,
                    request.service_id,
                    packed.first_ms,
                    packed.last_ms,
                    packed.measurands,
                    stamp + 40,
                    uid,
                    packed.samples,
                )
            )
            frame_rows += exchange(name, stamp + 20, "MeterValues", uid.encode(), payload, b"{}")
            if minute % 5 == 0:
                now = b'{"currentTime":"' + ms_text(stamp).encode() + b'"}'
                frame_rows += exchange(name, stamp + 50, "Heartbeat", _uid(), b"{}", now)
            if minute % 60 == 0:
                frame_rows += exchange(
                    name, stamp + 60, "StatusNotification", _uid(), status, b"{}"
                )
        frame_rows.sort(key=lambda row: row[2])  # logged in time order, as the service does
        written += len(meter_rows)
        yield meter_rows, frame_rows


def _uid() -> bytes:
    return str(uuid.uuid4()).encode()


def _filled(
    samples: int, gateways: int, written: int, frames: int, started: float
) -> dict[str, Any]:
    return {
        "messages": written,
        "samples": written * SAMPLES_PER_MESSAGE,
        "frames": frames,
        "minutes": -(-(samples // SAMPLES_PER_MESSAGE) // gateways),
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def _gateway_rows(gateways: int) -> list[tuple[str, str]]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return [(f"GW-{index:05d}", now) for index in range(gateways)]


def fill(path: Path, samples: int, gateways: int) -> dict[str, Any]:
    """Write the rows into a SQLite database; returns counts and the time taken."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    conn.executemany(
        "INSERT INTO gateways (id, registered, created_at, first_seen, last_seen) "
        "VALUES (?, 1, ?2, ?2, ?2)",
        _gateway_rows(gateways),
    )
    started = time.perf_counter()
    written = frames = 0
    for meter_rows, frame_rows in minute_rows(samples, gateways):
        conn.execute("BEGIN")
        conn.executemany(_METER, meter_rows)
        conn.executemany(_FRAME, frame_rows)
        conn.execute("COMMIT")
        written += len(meter_rows)
        frames += len(frame_rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return _filled(samples, gateways, written, frames, started)


METER_COLS = _METER[_METER.index("(") + 1 : _METER.index(")")].split(", ")
FRAME_COLS = ("gateway_id", "direction", "time_ms", "message_type", "action", "unique_id", "raw")


async def fill_postgres(url: str, samples: int, gateways: int) -> dict[str, Any]:
    """Write the rows into a PostgreSQL database (COPY, one transaction per 100 minutes)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO gateways (id, registered, created_at, first_seen, last_seen) "
            "VALUES ($1, true, $2, $2, $2)",
            _gateway_rows(gateways),
        )
        started = time.perf_counter()
        written = frames = 0
        meters: list[tuple[Any, ...]] = []
        logged: list[tuple[Any, ...]] = []
        for meter_rows, frame_rows in minute_rows(samples, gateways):
            meters += meter_rows
            logged += frame_rows
            if len(meters) >= 100 * gateways:
                await _copy(conn, meters, logged)
                written += len(meters)
                frames += len(logged)
                meters, logged = [], []
        await _copy(conn, meters, logged)
        written += len(meters)
        frames += len(logged)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return _filled(samples, gateways, written, frames, started)


async def _copy(conn: Any, meters: list[tuple[Any, ...]], logged: list[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table("meter_messages", records=meters, columns=METER_COLS)
        await conn.copy_records_to_table("frames", records=logged, columns=FRAME_COLS)


def sqlite_tables(path: Path) -> tuple[int, dict[str, int]]:
    """Bytes of the database file, and per table (with its indexes; ``dbstat``)."""
    conn = sqlite3.connect(path)
    by_table: dict[str, int] = {}
    for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        by_table[name] = int(size)
    tables = {row[0]: row[1] for row in conn.execute("SELECT name, tbl_name FROM sqlite_master")}
    conn.close()
    per_table: dict[str, int] = {}
    for name, size in by_table.items():
        owner = tables.get(name, name)
        per_table[owner] = per_table.get(owner, 0) + size
    return path.stat().st_size, per_table


async def postgres_tables(url: str) -> tuple[int, dict[str, int]]:
    """Bytes of the database, and per table (with its indexes and TOAST)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        total = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        rows = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    finally:
        await conn.close()
    return total, {row[0]: int(row[1]) for row in rows}


def sizes(
    total: int, per_table: dict[str, int], filled: dict[str, Any], gateways: int
) -> dict[str, Any]:
    data = per_table.get("meter_messages", 0)
    log = per_table.get("frames", 0)
    samples = filled["samples"]
    per_message_data = data / filled["messages"]
    per_message_log = log / filled["messages"]  # with its share of heartbeats and statuses
    return {
        "database_bytes": total,
        "bytes_per_sample": total / samples,
        "data_bytes_per_sample": data / samples,
        "frame_log_bytes_per_sample": log / samples,
        "growth_per_gateway_day_data": per_message_data * 1440,
        "growth_per_gateway_day_total": (per_message_data + per_message_log) * 1440,
        "tables": per_table,
        "gateways": gateways,
    }


def query_plan(
    filled: dict[str, Any],
) -> list[tuple[str, Callable[..., Any], Callable[[str], tuple[Any, ...]]]]:
    last = START + timedelta(minutes=filled["minutes"] - 1)

    def iso(when: datetime) -> str:
        return t.encode_datetime(when)

    hour = (iso(last - timedelta(hours=5)), iso(last - timedelta(hours=4)))
    day = iso(last - timedelta(days=3))
    return [
        (
            "meter values, newest 1000 (the API default)",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter()),
        ),
        (
            "meter values of one measurand (Voltage), newest 1000",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter(measurand="Voltage")),
        ),
        (
            "meter values of one service, newest 100",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter(service=2, limit=100)),
        ),
        (
            "meter values in a one-hour range",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter(since=hour[0], until=hour[1])),
        ),
        (
            "meter values from a day, oldest first, 1000",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter(since=day, ascending=True)),
        ),
        (
            "meter values of a measurand never sent (whole history scanned)",
            queries.meter_values,
            lambda g: (g, queries.MeterFilter(measurand="Frequency")),
        ),
        ("messages, newest 100", queries.frames, lambda g: (g, queries.FrameFilter())),
        (
            "messages of one action (StatusNotification), newest 100",
            queries.frames,
            lambda g: (g, queries.FrameFilter(action="StatusNotification")),
        ),
        (
            "messages of an action never sent (Reset)",
            queries.frames,
            lambda g: (g, queries.FrameFilter(action="Reset")),
        ),
        (
            "messages since an hour ago",
            queries.frames,
            lambda g: (g, queries.FrameFilter(since=hour[1])),
        ),
        ("status of a gateway", queries.status, lambda g: (g, 100)),
        ("one gateway", queries.gateway, lambda g: (g,)),
        ("every gateway", queries.gateways, lambda g: ()),
    ]


async def time_queries(
    storage: StorageBackend, filled: dict[str, Any], gateways: int, repeat: int
) -> None:
    """Run each query ``repeat`` times against random gateways; one line per query."""
    rng = random.Random(1)
    for name, query, arguments in query_plan(filled):
        times: list[float] = []
        rows = 0
        for _ in range(repeat):
            gateway = f"GW-{rng.randrange(gateways):05d}"
            started = time.perf_counter()
            result = await storage.read(query, *arguments(gateway))
            times.append((time.perf_counter() - started) * 1000)
            rows = len(result) if isinstance(result, list) else 1
        emit(
            item="query",
            backend=storage.backend,
            query=name,
            p50_ms=statistics.median(times),
            max_ms=max(times),
            rows=rows,
            runs=repeat,
        )


async def run_sqlite(args: argparse.Namespace, path: Path) -> None:
    if args.existing is None:
        if path.exists():
            path.unlink()
        storage = Storage(path)  # the service's own schema and migrations
        storage.open()
        await storage.close()
        filled = await asyncio.to_thread(fill, path, args.samples, args.gateways)
        emit(item="fill", backend="sqlite", **filled)
    storage = Storage(path)
    storage.open()  # migrates a kept database of an older schema
    try:
        if args.existing is not None:
            filled = await counted(storage, args.gateways)
            emit(item="fill", backend="sqlite", **filled)
        emit(item="size", backend="sqlite", **sizes(*sqlite_tables(path), filled, args.gateways))
        await time_queries(storage, filled, args.gateways, args.repeat)
    finally:
        await storage.close()


async def run_postgres(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ntxcp.service.pg_storage import PostgresStorage
    from pg_server import PostgresServer  # the tests' throw-away server

    server = PostgresServer()
    await asyncio.to_thread(server.start)
    try:
        storage = PostgresStorage(server.url)
        await storage.start()  # the service's own schema and migrations
        try:
            filled = await fill_postgres(server.url, args.samples, args.gateways)
            emit(item="fill", backend="postgresql", **filled)
            total, tables = await postgres_tables(server.url)
            emit(item="size", backend="postgresql", **sizes(total, tables, filled, args.gateways))
            await time_queries(storage, filled, args.gateways, args.repeat)
        finally:
            await storage.close()
    finally:
        await asyncio.to_thread(server.remove)


async def counted(storage: Storage, gateways: int) -> dict[str, Any]:
    """What a kept database holds, in the terms of :func:`fill`'s result."""

    def count(conn: sqlite3.Connection) -> tuple[int, int, int]:
        messages, last = conn.execute(
            "SELECT count(*), max(last_ms) FROM meter_messages"
        ).fetchone()
        frames = conn.execute("SELECT count(*) FROM frames").fetchone()[0]
        return int(messages), int(frames), int(last)

    messages, frames, last = await storage.read(count)
    minutes = (last - int(START.timestamp() * 1000)) // MINUTE_MS + 1
    return {
        "messages": messages,
        "samples": messages * SAMPLES_PER_MESSAGE,
        "frames": frames,
        "minutes": minutes,
        "fill_seconds": 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--gateways", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20, help="runs of each query")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--keep", type=Path, default=None, help="keep the SQLite database here")
    ap.add_argument(
        "--existing",
        type=Path,
        default=None,
        help="measure a SQLite database kept by --keep (migrated first) instead of filling one",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ntxcp-bench-db-") as tmp:
        if args.backend == "postgresql":
            asyncio.run(run_postgres(args))
        else:
            path = args.existing or args.keep or Path(tmp) / "cc.sqlite"
            asyncio.run(run_sqlite(args, path))
        os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
