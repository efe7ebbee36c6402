"""Peer server: the ``ocpp`` Python library (OCPP 1.6) on ``websockets``.

Written the way the library's documentation shows a central system: one
``ocpp.v16.ChargePoint`` subclass with ``@on(Action...)`` handlers per connection,
served by ``websockets.serve`` with the ``ocpp1.6`` subprotocol, on the default asyncio
event loop. Schema validation stays on (the library's default).

Runs from ``bench/.venv-peers`` (created by ``bench/setup.sh``), never from the project
environment. With ``--w4-gateways N`` it also plays the server side of W4: once N
gateways have booted, it calls GetConfiguration on each of them, one outstanding per
gateway, and counts the answers.

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

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, RegistrationStatus

CONNECTED: dict[str, ChargePoint] = {}
BOOTED = asyncio.Event()
W4_TARGET = 0


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class ChargePoint(Cp):
    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        if W4_TARGET and len(CONNECTED) >= W4_TARGET:
            BOOTED.set()
        return call_result.BootNotification(
            current_time=datetime.now(UTC).isoformat(),
            interval=300,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()


async def on_connect(websocket):
    if "Sec-WebSocket-Protocol" not in websocket.request.headers or not websocket.subprotocol:
        return await websocket.close()
    charge_point_id = websocket.request.path.strip("/").split("/")[-1]
    cp = ChargePoint(charge_point_id, websocket)
    CONNECTED[charge_point_id] = cp
    try:
        await cp.start()
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        CONNECTED.pop(charge_point_id, None)


async def run_w4(warmup: float, duration: float, wait: float) -> None:
    try:
        await asyncio.wait_for(BOOTED.wait(), wait)
    except TimeoutError:
        emit("result", error=f"only {len(CONNECTED)} of {W4_TARGET} connected")
        return
    state = {"counting": False, "calls": 0, "errors": 0, "running": True}

    async def caller(cp: ChargePoint) -> None:
        while state["running"]:
            try:
                await cp.call(call.GetConfiguration())
            except Exception:  # counted; the loop goes on
                state["errors"] += 1
                await asyncio.sleep(0.01)
                continue
            if state["counting"]:
                state["calls"] += 1

    tasks = [asyncio.ensure_future(caller(cp)) for cp in list(CONNECTED.values())]
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
    for t in tasks:
        t.cancel()


async def main() -> None:
    global W4_TARGET
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--w4-gateways", type=int, default=0)
    ap.add_argument("--w4-warmup", type=float, default=1.0)
    ap.add_argument("--w4-duration", type=float, default=10.0)
    ap.add_argument("--w4-wait", type=float, default=60.0)
    ap.add_argument("--max-runtime", type=float, default=3600.0)
    args = ap.parse_args()
    W4_TARGET = args.w4_gateways
    server = await websockets.serve(
        on_connect, args.host, args.port, subprotocols=["ocpp1.6"], backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    w4 = None
    if W4_TARGET:
        w4 = asyncio.ensure_future(run_w4(args.w4_warmup, args.w4_duration, args.w4_wait))
    await asyncio.sleep(args.max_runtime)
    if w4 is not None:
        w4.cancel()
    server.close()


if __name__ == "__main__":
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    asyncio.run(main())
