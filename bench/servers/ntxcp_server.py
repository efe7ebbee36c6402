"""ntxcp server of the benchmark suite: a ``ControlCenter`` with default options.

Strict validation stays on (the default). It answers BootNotification, Heartbeat and
MeterValues the way an application would (building confirmation objects), runs on
uvloop, and serves ``ws://HOST:PORT/ntxcp/<gatewayId>`` with subprotocol ``ntxcp1.0``.

With ``--w4-gateways N`` it also plays the server side of W4: once N gateways have
booted it calls ``get_configuration`` on each of them, one outstanding per gateway,
and counts the answers.

Prints ``READY <port>`` once listening, then JSON event lines on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from datetime import UTC, datetime

import uvloop

from ntxcp import ControlCenter
from ntxcp.v10 import core


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Handler(core.ControlCenterHandler):
    def __init__(self, w4_target: int) -> None:
        self.booted: set[str] = set()
        self.w4_target = w4_target
        self.all_booted = asyncio.Event()

    def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        self.booted.add(gateway_id)
        if self.w4_target and len(self.booted) >= self.w4_target:
            self.all_booted.set()
        return core.BootNotificationConfirmation(
            status=core.RegistrationStatus.ACCEPTED,
            current_time=datetime.now(UTC),
            interval=300,
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        return core.HeartbeatConfirmation(current_time=datetime.now(UTC))

    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        return core.MeterValuesConfirmation()


async def run_w4(
    cc: ControlCenter, handler: Handler, warmup: float, duration: float, wait: float
) -> None:
    try:
        await asyncio.wait_for(handler.all_booted.wait(), wait)
    except TimeoutError:
        emit("result", error=f"only {len(handler.booted)} of {handler.w4_target} booted")
        return
    state = {"counting": False, "calls": 0, "errors": 0, "running": True}

    async def caller(gateway_id: str) -> None:
        while state["running"]:
            try:
                await cc.get_configuration(gateway_id)
            except Exception:  # counted; the loop goes on
                state["errors"] += 1
                await asyncio.sleep(0.01)
                continue
            if state["counting"]:
                state["calls"] += 1

    tasks = [asyncio.ensure_future(caller(gw)) for gw in sorted(handler.booted)]
    await asyncio.sleep(warmup)
    state["counting"] = True
    t0 = time.monotonic()
    emit("window_start")
    await asyncio.sleep(duration)
    state["counting"] = False
    elapsed = time.monotonic() - t0
    emit("window_end")
    state["running"] = False
    n = state["calls"]
    emit("result", calls=n, seconds=elapsed, calls_per_s=n / elapsed, errors=state["errors"])
    await asyncio.wait(tasks, timeout=2.0)
    for t in tasks:
        t.cancel()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--w4-gateways", type=int, default=0)
    ap.add_argument("--w4-warmup", type=float, default=1.0)
    ap.add_argument("--w4-duration", type=float, default=10.0)
    ap.add_argument("--w4-wait", type=float, default=60.0)
    ap.add_argument("--max-runtime", type=float, default=3600.0)
    args = ap.parse_args()
    handler = Handler(args.w4_gateways)
    cc = ControlCenter()
    cc.set_core_handler(handler)
    await cc.start(host=args.host, port=args.port, path="/ntxcp")
    print(f"READY {cc.port}", flush=True)
    w4 = None
    if args.w4_gateways:
        w4 = asyncio.ensure_future(
            run_w4(cc, handler, args.w4_warmup, args.w4_duration, args.w4_wait)
        )
    await asyncio.sleep(args.max_runtime)
    if w4 is not None:
        w4.cancel()
    await cc.stop()


if __name__ == "__main__":
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    uvloop.run(main())
