"""Where the event loop's time goes while a fleet connects at once (the admission storm).

Runs the control center service in this process (as ``ntxcp control-center`` does,
optionally with its garbage-collector setting) and ``ntxcp gateway --count N`` in a
process of its own, which starts N gateways at once (each boots and reports its
services). While they connect, a ticker task on the service's loop wakes every 5 ms
and records how late it woke (the loop's lag), the CPU time of the loop's thread in
that interval, and how many connections were accepted and upgrades decided; Python's
garbage collections are timed through ``gc.callbacks``. It prints the worst ticks, the
collections, the lag percentiles and, with ``--profile``, the functions that took the
loop's time (cProfile, which slows everything down).

    python bench/storm_profile.py --gateways 5000 [--gc default|service] [--profile]
        [--unpaced]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from ntxcp.service.config import ServiceConfig
from ntxcp.service.memory import tune_garbage_collector
from ntxcp.service.service import Service

TICK = 0.005


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GcTimes:
    """Each garbage collection: its generation and how long it took (ms)."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, float]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.runs.append((info["generation"], (time.perf_counter() - self._began) * 1e3))


async def _storm(args: argparse.Namespace, service: Service, ticks: list[tuple[float, ...]]) -> str:
    """Start the gateways and wait until all are connected and a second more."""
    cc = service.control_center
    stop = False

    async def ticker() -> None:
        while not stop:
            cpu, began, before = time.thread_time(), time.perf_counter(), cc.admission
            await asyncio.sleep(TICK)
            after = cc.admission
            ticks.append(
                (
                    (time.perf_counter() - began - TICK) * 1e3,
                    (time.thread_time() - cpu) * 1e3,
                    after.accepted - before.accepted,
                    after.handshakes - before.handshakes,
                )
            )

    task = asyncio.create_task(ticker())
    simulator = subprocess.Popen(
        [sys.executable, "-m", "ntxcp", "gateway", "--url", service.ws_url,
         "--count", str(args.gateways), "--meter-interval", "0", "--summary-interval", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    began, cpu = time.perf_counter(), time.process_time()
    while len(cc.gateways()) < args.gateways and time.perf_counter() - began < args.timeout:
        await asyncio.sleep(0.05)
    took = time.perf_counter() - began
    await asyncio.sleep(1.0)  # their first messages
    summary = (
        f"{len(cc.gateways())} of {args.gateways} connected in {took:.2f} s; service CPU "
        f"{time.process_time() - cpu:.2f} s (this process, with the ticker)"
    )
    stop = True
    await task
    simulator.terminate()
    simulator.wait(30)
    return summary


async def _main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="ntxcp-storm-"))
    config = ServiceConfig(
        port=_free_port(), api_port=_free_port(), db=str(work / "cc.sqlite"), log_level="error"
    )
    if args.unpaced:
        config.max_handshakes, config.accept_rate = 0, 0.0
    service = Service(config)
    await service.start()
    if args.gc == "service":
        tune_garbage_collector()
    collections = GcTimes()
    gc.callbacks.append(collections)
    profile = cProfile.Profile() if args.profile else None
    ticks: list[tuple[float, ...]] = []
    if profile is not None:
        profile.enable()
    try:
        summary = await _storm(args, service, ticks)
    finally:
        if profile is not None:
            profile.disable()
        gc.callbacks.remove(collections)
        await service.stop()
    print(f"load average {os.getloadavg()[0]:.1f}; gc {args.gc}; {summary}")
    lags = sorted(tick[0] for tick in ticks)
    print(
        f"loop lag over {len(lags)} ticks of {TICK * 1e3:.0f} ms: p50 {lags[len(lags) // 2]:.1f}"
        f" p99 {lags[int(len(lags) * 0.99)]:.1f} max {lags[-1]:.1f} ms; "
        f"{sum(lag > 20 for lag in lags)} ticks late by more than 20 ms"
    )
    print("worst ticks (lag ms, loop-thread CPU ms, accepted, upgrades decided):")
    for tick in sorted(ticks, reverse=True)[:10]:
        print("  " + ", ".join(f"{value:.1f}" for value in tick))
    parts = []
    for generation in (0, 1, 2):
        runs = [ms for gen, ms in collections.runs if gen == generation]
        longest = max(runs, default=0.0)
        parts.append(f"generation {generation}: {len(runs)}, {sum(runs):.0f} ms, max {longest:.0f}")
    print("garbage collections (count, total, longest ms): " + "; ".join(parts))
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=5000)
    parser.add_argument(
        "--gc", choices=("default", "service"), default="service",
        help="CPython's collector settings, or those of ntxcp control-center",
    )  # fmt: skip
    parser.add_argument("--unpaced", action="store_true", help="admission pacing off")
    parser.add_argument("--profile", action="store_true", help="cProfile the storm")
    parser.add_argument("--timeout", type=float, default=120.0)
    uvloop.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
