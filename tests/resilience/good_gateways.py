"""Well-behaved gateways for the hostile-neighbours test.

``--count`` gateways connect, print ``READY`` once all are connected, then each
calls Heartbeat and DataTransfer in turn every ``--interval`` seconds for
``--duration`` seconds, recording ``(wall-clock time, latency)`` of every call and
every error. The results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import time

from ntxcp import Backoff, Gateway


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--password-prefix", help="Basic auth: password = prefix + id")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    disconnects = 0

    def lost() -> None:
        nonlocal disconnects
        disconnects += 1

    gateways = []
    for i in range(args.count):
        gateway_id = f"GOOD-{i:03d}"
        password = None if args.password_prefix is None else args.password_prefix + gateway_id
        gw = Gateway(
            gateway_id,
            password=password,
            call_timeout=10.0,
            ping_interval=5.0,
            ping_timeout=5.0,
            backoff=Backoff(initial=0.2, maximum=1.0),
        )
        gw.set_disconnected_handler(lost)
        gateways.append(gw)
    await asyncio.gather(*(gw.start(args.url, retry=True) for gw in gateways))
    print("READY", flush=True)
    deadline = time.monotonic() + args.duration

    async def run(index: int, gw: Gateway) -> None:
        await asyncio.sleep(args.interval * index / args.count)  # spread the calls
        n = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                if n % 2:
                    await gw.data_transfer("ding", message_id="m", data="hello")
                else:
                    await gw.heartbeat()
            except Exception as exc:
                errors.append(f"{gw.gateway_id}: {exc!r}")
            else:
                samples.append((time.time(), time.perf_counter() - start))
            n += 1
            await asyncio.sleep(args.interval)

    await asyncio.gather(*(run(i, gw) for i, gw in enumerate(gateways)))
    still_connected = sum(gw.is_connected for gw in gateways)
    await asyncio.gather(*(gw.stop() for gw in gateways))
    with open(args.out, "w") as fh:
        json.dump(
            {
                "samples": samples,
                "errors": errors,
                "disconnects_before_stop": disconnects - args.count,
                "connected_at_end": still_connected,
            },
            fh,
        )
    print("DONE", flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
