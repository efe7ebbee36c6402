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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ntxcp.service import queries
from ntxcp.service.packing import pack
from ntxcp.service.storage import Storage, ms_text
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


def fill(path: Path, samples: int, gateways: int) -> dict[str, Any]:
    """Write the rows; returns counts and the time taken."""
    names = [f"GW-{index:05d}" for index in range(gateways)]
    messages = samples // SAMPLES_PER_MESSAGE
    minutes = -(-messages // gateways)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    conn.executemany(
        "INSERT INTO gateways (id, registered, created_at, first_seen, last_seen) "
        "VALUES (?, 1, ?, ?, ?)",
        [(name, now, now, now) for name in names],
    )
    started = time.perf_counter()
    written = frames = 0
    energy = 1000.0
    status = encode_payload(
        core.StatusNotificationRequest(
            service_id="1",
            error_code=core.DingxGatewayErrorCode.NO_ERROR,
            status=core.DingxGatewayStatus.AVAILABLE,
        )
    )
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
            call = b'[2,"' + uid.encode() + b'","MeterValues",' + payload + b"]"
            frame_rows.append((name, "in", stamp + 20, 2, "MeterValues", uid, call))
            answer = b'[3,"' + uid.encode() + b'",{}]'
            frame_rows.append((name, "out", stamp + 41, 3, "MeterValues", uid, answer))
            if minute % 5 == 0:
                hid = str(uuid.uuid4()).encode()
                frame_rows.append(
                    (
                        name,
                        "in",
                        stamp + 50,
                        2,
                        "Heartbeat",
                        hid.decode(),
                        b'[2,"' + hid + b'","Heartbeat",{}]',
                    )
                )
                frame_rows.append(
                    (
                        name,
                        "out",
                        stamp + 51,
                        3,
                        "Heartbeat",
                        hid.decode(),
                        b'[3,"' + hid + b'",{"currentTime":"' + ms_text(stamp).encode() + b'"}]',
                    )
                )
            if minute % 60 == 0:
                sid = str(uuid.uuid4()).encode()
                frame_rows.append(
                    (
                        name,
                        "in",
                        stamp + 60,
                        2,
                        "StatusNotification",
                        sid.decode(),
                        b'[2,"' + sid + b'","StatusNotification",' + status + b"]",
                    )
                )
                frame_rows.append(
                    (
                        name,
                        "out",
                        stamp + 61,
                        3,
                        "StatusNotification",
                        sid.decode(),
                        b'[3,"' + sid + b'",{}]',
                    )
                )
        frame_rows.sort(key=lambda row: row[2])  # logged in time order, as the service does
        conn.execute("BEGIN")
        conn.executemany(_METER, meter_rows)
        conn.executemany(_FRAME, frame_rows)
        conn.execute("COMMIT")
        written += len(meter_rows)
        frames += len(frame_rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return {
        "messages": written,
        "samples": written * SAMPLES_PER_MESSAGE,
        "frames": frames,
        "minutes": minutes,
        "fill_seconds": round(time.perf_counter() - started, 1),
    }


def sizes(path: Path, filled: dict[str, Any], gateways: int) -> dict[str, Any]:
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
    total = path.stat().st_size
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


async def time_queries(path: Path, filled: dict[str, Any], gateways: int, repeat: int) -> None:
    storage = Storage(path)
    storage.open()
    rng = random.Random(1)
    try:
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
                query=name,
                p50_ms=statistics.median(times),
                max_ms=max(times),
                rows=rows,
                runs=repeat,
            )
    finally:
        await storage.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--gateways", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20, help="runs of each query")
    ap.add_argument("--keep", type=Path, default=None, help="keep the database here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ntxcp-bench-db-") as tmp:
        path = args.keep or Path(tmp) / "cc.sqlite"
        if path.exists():
            path.unlink()
        storage = Storage(path)  # the service's own schema and migrations
        storage.open()
        asyncio.run(storage.close())
        filled = fill(path, args.samples, args.gateways)
        emit(item="fill", **filled)
        emit(item="size", **sizes(path, filled, args.gateways))
        asyncio.run(time_queries(path, filled, args.gateways, args.repeat))
        os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
