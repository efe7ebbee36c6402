"""A control center process for the resilience tests.

Every MeterValues it receives is appended as ``<uniqueId> <seq>`` to ``--log`` and
fsync'ed *before* the handler returns its confirmation, so what the log holds is
exactly what the control center acknowledged (or was about to) when it was killed.

Prints ``READY <port>`` once listening and ``BOOT <gateway id> <status>`` for every
BootNotification it answers; stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import sys

from ntxcp import ControlCenter, current_call
from ntxcp.v10 import core


class Handler(core.ControlCenterHandler):
    def __init__(self, log_path: str | None, status: core.RegistrationStatus) -> None:
        self.fd = (
            os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if log_path else None
        )
        self.status = status

    def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        print(f"BOOT {gateway_id} {self.status.value}", flush=True)  # tests count them
        return core.BootNotificationConfirmation(
            status=self.status, current_time=dt.datetime.now(dt.UTC), interval=1
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        return core.HeartbeatConfirmation(current_time=dt.datetime.now(dt.UTC))

    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        return core.DataTransferConfirmation(
            status=core.DataTransferStatus.ACCEPTED, data=request.data
        )

    def on_status_notification(
        self, gateway_id: str, request: core.StatusNotificationRequest
    ) -> core.StatusNotificationConfirmation:
        return core.StatusNotificationConfirmation()

    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        call = current_call()
        assert call is not None
        if self.fd is not None:
            seq = request.meter_value[0].sampled_value[0].value
            os.write(self.fd, f"{call.unique_id} {seq}\n".encode())
            os.fsync(self.fd)  # durable before the confirmation leaves
        return core.MeterValuesConfirmation()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--boot", choices=["accept", "pending"], default="accept")
    parser.add_argument("--handshake-timeout", type=float, default=10.0)
    parser.add_argument("--max-message-size", type=int, default=1024 * 1024)
    parser.add_argument("--ping-interval", type=float, default=30.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    status = (
        core.RegistrationStatus.ACCEPTED
        if args.boot == "accept"
        else core.RegistrationStatus.PENDING
    )
    cc = ControlCenter(
        handshake_timeout=args.handshake_timeout,
        max_message_size=args.max_message_size,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_interval,
    )
    cc.set_core_handler(Handler(args.log, status))
    await cc.start(args.port, "/ntxcp")
    print(f"READY {cc.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def drain_errors() -> None:  # keep the error stream read (bounded anyway)
        async for _ in cc.errors():
            pass

    reader = asyncio.ensure_future(drain_errors())
    await stop.wait()
    await cc.stop(grace=2.0)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    print("STOPPED", flush=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
