"""Sizing of the service's database on both backends: rows and bytes per gateway per day.

Writes one day of ``--gateways`` gateways through the service's own storage (the
``record_*`` and frame-log methods of :mod:`ntxcp.service.backend`, so the rows,
packing and indexes are exactly the service's): one MeterValues per minute (4 sampled
values, as the simulator sends) with its CALL and CALLRESULT frames, a Heartbeat
exchange every 5 minutes and a StatusNotification every hour, into a fresh SQLite file
and a fresh PostgreSQL database (a throw-away server started for the run with
Debian's binaries, as the tests start it). Then it reports, per backend, the rows and
bytes on disk per gateway per day, per table (SQLite ``dbstat``; PostgreSQL
``pg_total_relation_size``, indexes and TOAST included, after ``VACUUM``), and the
bytes per sampled value.

Prints one JSON line per backend (``{"kind": "sizing", ...}``).

    python bench/service_sizing.py [--gateways 20] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from service_storage import START, meter_request

from ntxcp.service import ServiceConfig
from ntxcp.service.backend import StorageBackend, create_storage
from ntxcp.v10 import core
from ntxcp.v10.codec import encode_payload

TESTS = Path(__file__).resolve().parents[1] / "tests"
MINUTES = 1440
START_MS = int(START.timestamp() * 1000)


async def fill(storage: StorageBackend, gateways: int) -> int:
    """One day of traffic of every gateway; returns the sampled values stored."""
    samples = 0
    status = core.StatusNotificationRequest(
        service_id="1",
        error_code=core.DingxGatewayErrorCode.NO_ERROR,
        status=core.DingxGatewayStatus.AVAILABLE,
    )
    for minute in range(MINUTES):
        stamp = START_MS + minute * 60_000
        writes: list[Any] = []
        statuses: list[Any] = []
        for index in range(gateways):
            name = f"GW-{index:05d}"
            uid = str(uuid.uuid4())
            request = meter_request(minute, 1000.0 + minute)
            payload = encode_payload(request)
            writes.append(storage.record_meter_values(name, uid, request))
            call = b'[2,"' + uid.encode() + b'","MeterValues",' + payload + b"]"
            storage.log_frame(name, "in", stamp + 20, 2, "MeterValues", uid, call)
            answer = b'[3,"' + uid.encode() + b'",{}]'
            storage.log_frame(name, "out", stamp + 41, 3, "MeterValues", uid, answer)
            if minute % 5 == 0:
                hid = str(uuid.uuid4())
                beat = b'[2,"' + hid.encode() + b'","Heartbeat",{}]'
                storage.log_frame(name, "in", stamp + 30, 2, "Heartbeat", hid, beat)
                time_answer = b'[3,"' + hid.encode() + b'",{"currentTime":"2026-01-01T00:00:00Z"}]'
                storage.log_frame(name, "out", stamp + 31, 3, "Heartbeat", hid, time_answer)
            if minute % 60 == 0:
                sid = str(uuid.uuid4())
                statuses.append(storage.record_status(name, sid, status))
        stored = await asyncio.gather(*writes)
        await asyncio.gather(*statuses)
        samples += sum(value or 0 for value in stored)
    await storage.sync()
    return samples


async def sqlite_sizes(path: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        tables = {
            row[0]: row[1] for row in conn.execute("SELECT name, tbl_name FROM sqlite_master")
        }
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            owner = tables.get(name, name)
            sizes[owner] = sizes.get(owner, 0) + int(size)
        return sizes
    finally:
        conn.close()


async def postgres_sizes(url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM")
        rows = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        return {row[0]: int(row[1]) for row in rows}
    finally:
        await conn.close()


async def measure(backend: str, db: str, gateways: int) -> dict[str, Any]:
    storage = create_storage(ServiceConfig(db=db))
    await storage.start()
    try:
        samples = await fill(storage, gateways)
        counts = {
            table: int((await storage.fetch(f"SELECT count(*) FROM {table}"))[0][0])
            for table in ("meter_messages", "frames", "status_history", "received_calls")
        }
    finally:
        await storage.close()
    sizes = await (sqlite_sizes(db) if backend == "sqlite" else postgres_sizes(db))
    tables = {name: size for name, size in sizes.items() if name in counts}
    total = sum(tables.values())
    return {
        "kind": "sizing",
        "backend": backend,
        "gateways": gateways,
        "samples": samples,
        "rows_per_gateway_day": {name: count / gateways for name, count in counts.items()},
        "bytes_per_gateway_day": {name: size / gateways for name, size in tables.items()},
        "total_bytes_per_gateway_day": total / gateways,
        "data_bytes_per_sample": tables.get("meter_messages", 0) / samples,
        "bytes_per_sample": total / samples,
    }


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="ntxcp-sizing-") as tmp:
        if "sqlite" in backends:
            result = await measure("sqlite", str(Path(tmp) / "size.sqlite"), args.gateways)
            print(json.dumps(result), flush=True)
        if "postgresql" in backends:
            sys.path.insert(0, str(TESTS))
            from pg_server import PostgresServer

            server = await asyncio.to_thread(lambda: PostgresServer().start())
            try:
                result = await measure("postgresql", server.url, args.gateways)
                print(json.dumps(result), flush=True)
            finally:
                await asyncio.to_thread(server.remove)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
