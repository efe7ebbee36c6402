"""The HTTP API's command round trip of the service, idle and under ingest load.

Starts the service (``servers/service_server.py``, durability ``disk``, pinned to core
0 like every benchmark server) and one gateway of the library (``ntxcp.Gateway``,
answering ``GetConfiguration``) in this process. It then sends
``POST /api/gateways/API-GW/calls/GetConfiguration`` one after the other and times
each answer (HTTP request, C→G CALL, the gateway's CALLRESULT, command log, HTTP
answer): first with nothing else going on, then while ``bench/loadgen.py`` (core 1)
runs W1 against the same service (100 gateways sending MeterValues back to back).

Prints one JSON line ``{"kind": "api", ...}`` on stdout.

    python bench/service_api.py [--duration 10] [--conns 100] [--backend postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

import ntxcp
from ntxcp.v10 import core

BENCH = Path(__file__).resolve().parent
PY = sys.executable


class Answering(core.GatewayHandler):
    def on_get_configuration(
        self, request: core.GetConfigurationRequest
    ) -> core.GetConfigurationConfirmation:
        return core.GetConfigurationConfirmation(configuration_key=[], unknown_key=None)


def pinned(argv: list[str], cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *argv]
    return argv


async def read_event(stream: asyncio.StreamReader, timeout: float) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout)
    if not line:
        raise RuntimeError("the service exited")
    return line.decode().strip()


async def round_trip(http: aiohttp.ClientSession, url: str) -> float:
    """One ``POST`` of an empty command to ``url``: its round trip in ms."""
    started = time.perf_counter()
    async with http.post(url, json={}) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"API answered {response.status}")
    return (time.perf_counter() - started) * 1000


async def round_trips(
    http: aiohttp.ClientSession, url: str, seconds: float, most: int
) -> list[float]:
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(times) < most:
        times.append(await round_trip(http, url))
    return times


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "calls": len(times),
        "p50_ms": statistics.median(ordered) if ordered else None,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None,
    }


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each phase")
    ap.add_argument("--conns", type=int, default=100, help="ingesting gateways")
    ap.add_argument("--most", type=int, default=2000, help="most round trips per phase")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args()
    server = await asyncio.create_subprocess_exec(
        *pinned(
            [
                PY,
                str(BENCH / "servers" / "service_server.py"),
                *("--max-runtime", "600", "--backend", args.backend),
            ],
            0,
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    load: subprocess.Popen[bytes] | None = None
    gateway = ntxcp.Gateway("API-GW", reconnect=False)
    gateway.set_core_handler(Answering())
    try:
        assert server.stdout is not None and server.stderr is not None
        port = int((await read_event(server.stdout, 60)).split()[1])
        api = (await read_event(server.stderr, 10)).split()[1]
        ws = f"ws://127.0.0.1:{port}/ntxcp"
        await gateway.start(ws)
        url = f"{api}api/gateways/API-GW/calls/GetConfiguration"
        async with aiohttp.ClientSession() as http:
            await round_trips(http, url, 1.0, 50)  # warm-up
            idle = await round_trips(http, url, args.duration, args.most)
            load = subprocess.Popen(
                pinned(
                    [
                        PY,
                        str(BENCH / "loadgen.py"),
                        *("--mode", "calls", "--flavor", "ntxcp", "--url", ws),
                        *("--prefix", "LOAD", "--conns", str(args.conns)),
                        *("--warmup", "2", "--duration", str(args.duration + 2)),
                        "--max-runtime",
                        str(args.duration * 3 + 60),
                    ],
                    1,
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            await asyncio.sleep(3.0)  # connected, booted and past its warm-up
            loaded = await round_trips(http, url, args.duration, args.most)
        out, _ = await asyncio.to_thread(load.communicate, timeout=args.duration * 3 + 60)
        ingest = [json.loads(line) for line in out.decode().splitlines() if '"result"' in line]
        sys.stdout.write(
            json.dumps(
                {
                    "kind": "api",
                    "backend": args.backend,
                    "action": "GetConfiguration",
                    "idle": summary(idle),
                    "loaded": summary(loaded),
                    "ingest_conns": args.conns,
                    "ingest_calls_per_s": ingest[-1].get("calls_per_s") if ingest else None,
                }
            )
            + "\n"
        )
        return 0
    finally:
        with contextlib.suppress(Exception):
            await gateway.stop()
        if load is not None and load.poll() is None:
            os.killpg(load.pid, signal.SIGKILL)
        if server.returncode is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 30)  # a PostgreSQL server to remove
            except TimeoutError:
                os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
