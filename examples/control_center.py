"""A small Ding.X Control Center: prints what gateways report, resets each after its boot."""

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime

import ntxcp
from ntxcp.v10 import core

cc = ntxcp.ControlCenter()
tasks: set[asyncio.Task[None]] = set()


async def reset(gateway_id: str) -> None:
    confirmation = await cc.reset(gateway_id, core.ResetType.SOFT)
    print(f"{gateway_id}: soft reset {confirmation.status}", flush=True)


class Handler(core.ControlCenterHandler):
    def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        print(f"{gateway_id}: boot, model {request.dingx_gateway_model}", flush=True)
        tasks.add(task := asyncio.ensure_future(reset(gateway_id)))  # sent after this answer
        task.add_done_callback(tasks.discard)
        now = datetime.now(UTC)
        return core.BootNotificationConfirmation(
            status=core.RegistrationStatus.ACCEPTED, current_time=now, interval=60
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        print(f"{gateway_id}: heartbeat", flush=True)
        return core.HeartbeatConfirmation(current_time=datetime.now(UTC))

    def on_status_notification(
        self, gateway_id: str, request: core.StatusNotificationRequest
    ) -> core.StatusNotificationConfirmation:
        print(f"{gateway_id}: service {request.service_id} is {request.status}", flush=True)
        return core.StatusNotificationConfirmation()

    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        for sample in (s for value in request.meter_value for s in value.sampled_value):
            print(f"{gateway_id}: meter {sample.value} {sample.unit or 'Wh'}", flush=True)
        return core.MeterValuesConfirmation()


async def main(args: argparse.Namespace) -> None:
    cc.set_core_handler(Handler())
    await cc.start(args.port)
    print(f"listening on {cc.url}", flush=True)
    try:
        await (asyncio.sleep(args.duration) if args.duration else cc.serve_forever())
    finally:
        await cc.stop()  # closes every gateway connection with 1001


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8887, help="0 picks a free port")
    parser.add_argument("--duration", type=float, default=0, help="seconds (default: forever)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
