"""W5: gateway-side throughput of ntxcp.

One ntxcp gateway sends MeterValues (one meter value, four sampled values) back to
back to a fast server (the null server) for a warm-up and then a measured window.

  --kind async   ntxcp.Gateway on uvloop
  --kind sync    ntxcp.sync.Gateway (blocking calls from the main thread)

Prints JSON lines: ``window_start``, ``window_end`` and ``result`` events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

now = time.perf_counter


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def meter_value() -> list[object]:
    from ntxcp.v10 import types

    sv = types.SampledValue
    return [
        types.MeterValue(
            timestamp=datetime.now(UTC),
            sampled_value=[
                sv(
                    value="12345.6",
                    context=types.ReadingContext.SAMPLE_PERIODIC,
                    measurand=types.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
                    unit=types.UnitOfMeasure.WH,
                ),
                sv(
                    value="7200",
                    context=types.ReadingContext.SAMPLE_PERIODIC,
                    measurand=types.Measurand.POWER_ACTIVE_IMPORT,
                    unit=types.UnitOfMeasure.W,
                ),
                sv(
                    value="31.3",
                    context=types.ReadingContext.SAMPLE_PERIODIC,
                    measurand=types.Measurand.CURRENT_IMPORT,
                    phase=types.Phase.L1,
                    unit=types.UnitOfMeasure.A,
                ),
                sv(
                    value="230.1",
                    context=types.ReadingContext.SAMPLE_PERIODIC,
                    measurand=types.Measurand.VOLTAGE,
                    phase=types.Phase.L1_N,
                    unit=types.UnitOfMeasure.V,
                ),
            ],
        )
    ]


def report(kind: str, calls: int, errors: int, seconds: float, lat: list[float]) -> None:
    lat.sort()
    n = len(lat)
    emit(
        "result",
        kind=kind,
        calls=calls,
        errors=errors,
        seconds=seconds,
        calls_per_s=calls / seconds if seconds else 0.0,
        p50_ms=lat[n // 2] * 1000.0 if n else None,
        p99_ms=lat[min(n - 1, int(n * 0.99))] * 1000.0 if n else None,
    )


async def run_async(args: argparse.Namespace) -> None:
    from ntxcp import Gateway

    values = meter_value()
    gw = Gateway(args.gateway_id)
    await asyncio.wait_for(gw.start(args.url), 10.0)
    await asyncio.wait_for(gw.boot_notification("BenchGW"), 10.0)
    calls = errors = 0
    lat: list[float] = []
    counting = False
    end = now() + args.warmup
    window_start = 0.0
    for phase in ("warmup", "window"):
        while now() < end:
            t = now()
            try:
                await asyncio.wait_for(gw.meter_values(1, values), 10.0)
            except Exception:  # counted; the run goes on
                errors += 1
                continue
            if counting:
                calls += 1
                lat.append(now() - t)
        if phase == "warmup":
            counting = True
            window_start = now()
            end = window_start + args.duration
            emit("window_start")
    seconds = now() - window_start
    emit("window_end")
    await asyncio.wait_for(gw.stop(), 10.0)
    report("async", calls, errors, seconds, lat)


def run_sync(args: argparse.Namespace) -> None:
    from ntxcp.sync import Gateway as SyncGateway

    values = meter_value()
    gw = SyncGateway(args.gateway_id)
    gw.start(args.url)
    gw.boot_notification("BenchGW")
    calls = errors = 0
    lat: list[float] = []
    end = now() + args.warmup
    while now() < end:
        try:
            gw.meter_values(1, values)
        except Exception:  # counted; the run goes on
            errors += 1
    window_start = now()
    end = window_start + args.duration
    emit("window_start")
    while now() < end:
        t = now()
        try:
            gw.meter_values(1, values)
        except Exception:  # counted; the run goes on
            errors += 1
            continue
        calls += 1
        lat.append(now() - t)
    seconds = now() - window_start
    emit("window_end")
    gw.stop()
    report("sync", calls, errors, seconds, lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="base URL, e.g. ws://127.0.0.1:8887/ntxcp")
    ap.add_argument("--kind", choices=("async", "sync"), default="async")
    ap.add_argument("--gateway-id", default="GW-W5")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    if args.kind == "async":
        import uvloop

        uvloop.run(run_async(args))
    else:
        run_sync(args)


if __name__ == "__main__":
    main()
