"""W5 peer: one ``ocpp`` (Python) ChargePoint as the client, on ``websockets``.

It sends MeterValues (one meter value, four sampled values) back to back to the null
server for a warm-up and then a measured window, like ``ntxcp_gateway.py``. Runs from
``bench/.venv-peers``. Prints JSON lines: ``window_start``, ``window_end``, ``result``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import UTC, datetime

import websockets
from ocpp.v16 import ChargePoint, call
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v16.enums import Measurand, Phase, ReadingContext, UnitOfMeasure

now = time.perf_counter


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def meter_value() -> list[MeterValue]:
    ctx = ReadingContext.sample_periodic
    return [
        MeterValue(
            timestamp=datetime.now(UTC).isoformat(),
            sampled_value=[
                SampledValue(
                    value="12345.6",
                    context=ctx,
                    measurand=Measurand.energy_active_import_register,
                    unit=UnitOfMeasure.wh,
                ),
                SampledValue(
                    value="7200",
                    context=ctx,
                    measurand=Measurand.power_active_import,
                    unit=UnitOfMeasure.w,
                ),
                SampledValue(
                    value="31.3",
                    context=ctx,
                    measurand=Measurand.current_import,
                    phase=Phase.l1,
                    unit=UnitOfMeasure.a,
                ),
                SampledValue(
                    value="230.1",
                    context=ctx,
                    measurand=Measurand.voltage,
                    phase=Phase.l1_n,
                    unit=UnitOfMeasure.v,
                ),
            ],
        )
    ]


async def run(args: argparse.Namespace) -> None:
    values = meter_value()
    async with websockets.connect(f"{args.url}/{args.gateway_id}", subprotocols=["ocpp1.6"]) as ws:
        cp = ChargePoint(args.gateway_id, ws)
        reader = asyncio.ensure_future(cp.start())
        await cp.call(call.BootNotification(charge_point_model="BenchGW", charge_point_vendor="B"))
        calls = errors = 0
        lat: list[float] = []
        counting = False
        end = now() + args.warmup
        window_start = 0.0
        for phase in ("warmup", "window"):
            while now() < end:
                t = now()
                try:
                    await cp.call(call.MeterValues(connector_id=1, meter_value=values))
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
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    lat.sort()
    n = len(lat)
    emit(
        "result",
        kind="ocpp",
        calls=calls,
        errors=errors,
        seconds=seconds,
        calls_per_s=calls / seconds if seconds else 0.0,
        p50_ms=lat[n // 2] * 1000.0 if n else None,
        p99_ms=lat[min(n - 1, int(n * 0.99))] * 1000.0 if n else None,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--gateway-id", default="GW-W5")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=10.0)
    asyncio.run(asyncio.wait_for(run(ap.parse_args()), 600))


if __name__ == "__main__":
    main()
