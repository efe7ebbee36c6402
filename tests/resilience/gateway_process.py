"""A gateway process for the resilience tests: store-and-forward through a SQLite file.

Queues ``--count`` MeterValues (sequence numbers from ``--first``) with
``queue_request`` (returns once the message is committed) or awaited sends, then
waits until the outbox is empty and prints ``DONE <json stats>``. With ``--hold``
it prints ``QUEUED`` after queuing and keeps running (to be killed) for at most
``--max-time`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from resilience_helpers import boot_request, meter_values

from ntxcp import Backoff, CallTimeoutError, Gateway
from ntxcp.endpoints.store import SqliteStore


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", default="GW-R1")
    parser.add_argument("--store", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--mode", choices=["queue", "await"], default="queue")
    parser.add_argument("--boot", action="store_true")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--max-time", type=float, default=120.0)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    store = SqliteStore(args.store, synchronous=args.synchronous)
    gw = Gateway(
        args.id,
        store=store,
        backoff=Backoff(initial=0.1, maximum=0.5, reset_after=1.0),
        call_timeout=5.0,
        connect_timeout=2.0,
        ping_interval=1.0,
        ping_timeout=1.0,
        boot=boot_request() if args.boot else None,
    )
    print(f"START queued={gw.queued}", flush=True)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    starter = asyncio.ensure_future(gw.start(args.url, retry=True))
    queued_timeouts = 0
    for i in range(args.count):
        seq = args.first + i
        if args.mode == "queue":
            gw.queue_request(meter_values(seq))
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the forwarder and the socket run
        else:
            try:
                await gw.meter_values(1, meter_values(seq).meter_value, timeout=2.0)
            except CallTimeoutError as exc:
                assert exc.queued
                queued_timeouts += 1
    t_queued = loop.time()
    print(f"QUEUED {args.count} queued={gw.queued}", flush=True)
    if args.hold:
        await asyncio.sleep(args.max_time)
        return
    await asyncio.wait_for(starter, args.max_time)
    await gw.flush(args.max_time)
    t_done = loop.time()
    stats = {
        "count": args.count,
        "enqueue_s": round(t_queued - t0, 3),
        "enqueue_per_s": round(args.count / max(t_queued - t0, 1e-9)),
        "total_s": round(t_done - t0, 3),
        "connects": gw.connect_count,
        "dead_letters": len(store.dead_letters()),
        "queued_timeouts": queued_timeouts,
        "errors_reported": gw.error_stream.reported,
    }
    await gw.stop()
    store.close()
    print("DONE " + json.dumps(stats), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
