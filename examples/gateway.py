"""A small Ding.X Gateway: boots, sends a heartbeat, a status and meter values, answers Reset."""

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime

import ntxcp
from ntxcp.v10 import core, types


class Handler(core.GatewayHandler):
    def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
        print(f"{request.type} reset requested: accepted", flush=True)
        return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)


async def main(args: argparse.Namespace) -> None:
    gw = ntxcp.Gateway(args.id)
    gw.set_core_handler(Handler())
    await gw.start(args.url)
    try:
        boot = await gw.boot_notification("DX-100", dingx_gateway_vendor="Ding")
        print(f"boot {boot.status}, heartbeat interval {boot.interval} s", flush=True)
        heartbeat = await gw.heartbeat()
        print(f"control center time {heartbeat.current_time:%H:%M:%S}", flush=True)
        await gw.status_notification("0", "NoError", "Available")
        energy = types.SampledValue(value="1234.5", unit=types.UnitOfMeasure.KWH)
        now = datetime.now(UTC)
        await gw.meter_values(1, [types.MeterValue(timestamp=now, sampled_value=[energy])])
        print("status and meter values delivered", flush=True)
        if not args.once:  # stay connected, answering the control center's requests
            await (asyncio.sleep(args.duration) if args.duration else asyncio.Event().wait())
    finally:
        await gw.stop()  # closes the connection with 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:8887/ntxcp", help="control center")
    parser.add_argument("--id", default="GW-1", help="the gateway id")
    parser.add_argument("--once", action="store_true", help="exit once everything is sent")
    parser.add_argument("--duration", type=float, default=0, help="seconds (default: forever)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
