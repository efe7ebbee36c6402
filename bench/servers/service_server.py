"""The control center service as a benchmark server: ``ntxcp control-center`` in-process.

The whole service (SQLite storage with group commit, frame log on, metrics, HTTP API,
boot policy ``accept``) with its default settings, on uvloop, on a fresh database in a
temporary directory. ``--durability`` chooses ``disk`` (the default, fsync per group
commit) or ``process``. Gateways connect to ``ws://HOST:PORT/ntxcp/<gatewayId>``.

Prints ``READY <port>`` once listening (and ``API <url>`` on stderr). On SIGTERM or at
``--max-runtime`` it stops and prints a ``result`` event line with the samples stored
and the database size.
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


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--durability", choices=("disk", "process"), default="disk")
    ap.add_argument("--db", default=None, help="database file (default: a fresh temporary one)")
    ap.add_argument("--max-runtime", type=float, default=3600.0)
    # Accepted for compatibility with the other servers; the service has no W4 mode.
    ap.add_argument("--w4-gateways", type=int, default=0)
    ap.add_argument("--w4-warmup", type=float, default=1.0)
    ap.add_argument("--w4-duration", type=float, default=10.0)
    ap.add_argument("--w4-wait", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ntxcp-bench-service-") as tmp:
        db = args.db or str(Path(tmp) / "cc.sqlite")
        config = ServiceConfig(
            host=args.host,
            port=args.port,
            api_port=0,
            db=db,
            durability=Durability(args.durability),
        )
        service = Service(config)
        await service.start()
        print(f"READY {service.control_center.port}", flush=True)
        print(f"API {service.api_url}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_runtime)
        await service.stop()
        emit(
            "result",
            samples_stored=service.storage.samples_stored,
            database_bytes=Path(db).stat().st_size,
        )


if __name__ == "__main__":
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    uvloop.run(main())
