"""Measure how much memory a control center needs per connected gateway.

Starts a :class:`ntxcp.ControlCenter` in a child process, connects N bare WebSocket
clients (picows) from this process, each of which sends one BootNotification, waits for
the answer and then stays idle. The child's resident memory (``VmRSS`` from ``/proc``)
is read before and after; the difference divided by N is the cost of one idle, booted
gateway connection. Linux only. Nothing is asserted: it prints a report.

Usage::

    python scripts/measure_connections.py [--gateways 2000] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

BOOT = json.dumps(
    [2, "boot", "BootNotification", {"dingxGatewayModel": "DX-100", "dingxGatewayVendor": "Ding"}]
).encode()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- the child: a control center ------------------------------------------------------------


async def serve() -> None:
    """Run a control center; print its port; answer "count" lines on stdin; exit on EOF."""
    import ntxcp
    from ntxcp.v10 import core

    class Handler(core.ControlCenterHandler):
        def on_boot_notification(self, gateway_id: str, request: Any) -> Any:
            now = datetime.now(UTC)
            return core.BootNotificationConfirmation(
                status=core.RegistrationStatus.ACCEPTED, current_time=now, interval=300
            )

    cc = ntxcp.ControlCenter(ping_interval=None)
    cc.set_core_handler(Handler())
    await cc.start(0)
    print(json.dumps({"port": cc.port, "loop": type(asyncio.get_running_loop()).__name__}))
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        print(json.dumps({"connected": len(cc.gateways())}))
        sys.stdout.flush()
    await cc.stop()


# --- the parent: many idle gateways ---------------------------------------------------------


class IdleGateway(WSListener):  # type: ignore[misc]
    """Sends one BootNotification when connected and then only listens."""

    def __init__(self, booted: asyncio.Future[None]) -> None:
        self.booted = booted

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Boot right away."""
        transport.send(WSMsgType.TEXT, BOOT)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Check the answer to the boot; ignore anything later."""
        if frame.msg_type is WSMsgType.TEXT and not self.booted.done():
            answer = json.loads(frame.get_payload_as_bytes())
            if answer[0] == 3 and answer[2]["status"] == "Accepted":
                self.booted.set_result(None)
            else:
                self.booted.set_exception(RuntimeError(f"boot not accepted: {answer}"))


async def connect_all(port: int, count: int, batch: int) -> list[WSTransport]:
    """Connect ``count`` gateways, ``batch`` at a time; each is booted when this returns."""
    loop = asyncio.get_running_loop()
    transports: list[WSTransport] = []

    async def one(n: int) -> None:
        booted: asyncio.Future[None] = loop.create_future()
        transport, _ = await ws_connect(
            lambda: IdleGateway(booted),
            f"ws://127.0.0.1:{port}/ntxcp/GW-{n:06d}",
            extra_headers={"Sec-WebSocket-Protocol": "ntxcp1.0"},
            websocket_handshake_timeout=30,
        )
        await asyncio.wait_for(booted, 30)
        transports.append(transport)

    for start in range(0, count, batch):
        await asyncio.gather(*(one(n) for n in range(start, min(count, start + batch))))
    return transports


async def measure(count: int, batch: int, use_uvloop: bool) -> dict[str, Any]:
    """Start the child, connect the gateways, read the child's memory."""
    command = [sys.executable, __file__, "--serve"] + (["--uvloop"] if use_uvloop else [])
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        hello = json.loads(child.stdout.readline())
        await asyncio.sleep(0.5)
        before = rss_kib(child.pid)
        started = time.monotonic()
        transports = await connect_all(hello["port"], count, batch)
        took = time.monotonic() - started
        await asyncio.sleep(1.0)  # let the child settle
        child.stdin.write("count\n")
        child.stdin.flush()
        connected = json.loads(child.stdout.readline())["connected"]
        after = rss_kib(child.pid)
        for transport in transports:
            transport.disconnect()
        return {
            "gateways": count,
            "connected_at_server": connected,
            "event_loop": hello["loop"],
            "connect_and_boot_seconds": round(took, 2),
            "server_rss_before_mib": round(before / 1024, 1),
            "server_rss_after_mib": round(after / 1024, 1),
            "kib_per_connection": round((after - before) / count, 1),
        }
    finally:
        child.stdin.close()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    """Parse the options and run either side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gateways", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="connections opened at once")
    parser.add_argument("--uvloop", action="store_true", help="run the control center on uvloop")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _raise_fd_limit()
    if args.serve:
        if args.uvloop:
            import uvloop

            uvloop.run(serve())
        else:
            asyncio.run(serve())
        return 0
    report = asyncio.run(asyncio.wait_for(measure(args.gateways, args.batch, args.uvloop), 300))
    print(json.dumps(report, indent=2))
    return 0 if report["connected_at_server"] == args.gateways else 1


if __name__ == "__main__":
    sys.exit(main())
