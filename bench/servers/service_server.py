"""The control center service as a benchmark server: ``ntxcp control-center`` in-process.

The whole service (storage with group commit, frame log on, metrics, HTTP API, boot
policy ``accept``) with its default settings, on uvloop, on a fresh database:
``--backend sqlite`` (the default) a file in a temporary directory, ``--backend
postgresql`` a throw-away PostgreSQL server started for the run (Debian's binaries, as
the tests start it: ``tests/pg_server.py``; its defaults, ``synchronous_commit`` on).
``--durability`` chooses ``disk`` (the default) or ``process``. Gateways connect to
``ws://HOST:PORT/ntxcp/<gatewayId>``.

Prints ``READY <port>`` once listening (and ``API <url>`` on stderr). On SIGTERM or at
``--max-runtime`` it stops and prints a ``result`` event line with the samples stored,
the database size and the bytes on disk per stored sample (growth since the empty
schema, divided by the samples stored; the frame log included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
import tempfile
from pathlib import Path

import uvloop

from ntxcp.service import Durability, Service, ServiceConfig
from ntxcp.service.config import FrameLogMode

TESTS = Path(__file__).resolve().parents[2] / "tests"


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--durability", choices=("disk", "process"), default="disk")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--db", default=None, help="database file (default: a fresh temporary one)")
    ap.add_argument("--frame-log", choices=("all", "errors", "off"), default="all")
    ap.add_argument("--max-runtime", type=float, default=3600.0)
    # Accepted for compatibility with the other servers; the service has no W4 mode.
    ap.add_argument("--w4-gateways", type=int, default=0)
    ap.add_argument("--w4-warmup", type=float, default=1.0)
    ap.add_argument("--w4-duration", type=float, default=10.0)
    ap.add_argument("--w4-wait", type=float, default=60.0)
    args = ap.parse_args()
    # SIGTERM sets the event from the start: a stop during the database's start-up
    # still ends in its removal (the PostgreSQL server is not in our process group).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pg_server = None
    try:
        if args.backend == "postgresql" and args.db is None:
            sys.path.insert(0, str(TESTS))
            from pg_server import PostgresServer

            pg_server = PostgresServer()
            await asyncio.to_thread(pg_server.start)
        if not stop.is_set():
            await serve(args, None if pg_server is None else pg_server.url, stop)
    finally:
        if pg_server is not None:
            await asyncio.to_thread(pg_server.remove)


async def database_bytes(db: str) -> int:
    """The database's size on disk: the SQLite file, or ``pg_database_size``."""
    if not db.startswith("postgresql://"):
        return Path(db).stat().st_size
    import asyncpg

    conn = await asyncpg.connect(db)
    try:
        await conn.execute("CHECKPOINT")  # every row in the data files, not only the WAL
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


async def serve(args: argparse.Namespace, url: str | None, stop: asyncio.Event) -> None:
    with tempfile.TemporaryDirectory(prefix="ntxcp-bench-service-") as tmp:
        db = url or args.db or str(Path(tmp) / "cc.sqlite")
        config = ServiceConfig(
            host=args.host,
            port=args.port,
            api_port=0,
            db=db,
            durability=Durability(args.durability),
            frame_log=FrameLogMode(args.frame_log),
        )
        service = Service(config)
        await service.start()
        empty = await database_bytes(db)  # the schema alone: not counted per sample
        print(f"READY {service.control_center.port}", flush=True)
        print(f"API {service.api_url}", file=sys.stderr, flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_runtime)
        await service.stop()
        size = await database_bytes(db)
        stored = service.storage.samples_stored
        emit(
            "result",
            backend=service.storage.backend,
            samples_stored=stored,
            database_bytes=size,
            bytes_per_sample=(size - empty) / stored if stored else None,
        )


if __name__ == "__main__":
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    uvloop.run(main())
