"""Measure store-and-forward throughput (not a test; numbers for docs/resilience.md).

One gateway and one control center in this process, on 127.0.0.1, for each outbox:
memory, SQLite ``synchronous="NORMAL"`` and SQLite ``"FULL"`` (the default). Reports
messages per second for

* ``enqueue``: ``queue_request`` alone (validation + durable append),
* ``drain``: delivering a queued backlog (one CALL at a time, delete after CALLRESULT),
* ``awaited``: ``await gw.meter_values(...)`` one after the other (append, send,
  CALLRESULT, delete, wake the caller),
* ``direct``: ``await gw.data_transfer(...)`` (not stored) for comparison.

Usage: ``python tests/resilience/measure_store.py [count]``
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from resilience_helpers import meter_values

from ntxcp import ControlCenter, Gateway
from ntxcp.endpoints.store import MemoryStore, MessageStore, SqliteStore
from ntxcp.v10 import core


class Sink(core.ControlCenterHandler):
    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        return core.MeterValuesConfirmation()

    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        return core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED)


async def measure(kind: str, count: int, directory: Path) -> dict[str, float]:
    cc = ControlCenter()
    cc.set_core_handler(Sink())
    await cc.start()
    store: MessageStore
    if kind == "memory":
        store = MemoryStore()
    else:
        store = SqliteStore(directory / f"{kind}.db", synchronous=kind)  # type: ignore[arg-type]
    gw = Gateway("GW-MEASURE", store=store)
    await gw.start(cc.url)
    requests = [meter_values(i) for i in range(count)]
    rates: dict[str, float] = {}

    t0 = time.perf_counter()
    for _ in range(count):
        await gw.data_transfer("ding")
    rates["direct"] = count / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for request in requests:
        await gw.meter_values(1, request.meter_value)
    rates["awaited"] = count / (time.perf_counter() - t0)

    await gw.stop()  # nothing flows while queuing: measure the append alone
    t0 = time.perf_counter()
    for request in requests:
        gw.queue_request(request)
    rates["enqueue"] = count / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    await gw.start(cc.url)
    await gw.flush(120)
    rates["drain"] = count / (time.perf_counter() - t0)
    await gw.stop()
    await cc.stop()
    store.close()
    return rates


async def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{count} MeterValues per measurement, messages/s")
        print(f"{'outbox':<8} {'enqueue':>9} {'drain':>9} {'awaited':>9} {'direct':>9}")
        for kind in ("memory", "NORMAL", "FULL"):
            r = await measure(kind, count, Path(tmp))
            print(
                f"{kind:<8} {r['enqueue']:>9.0f} {r['drain']:>9.0f} "
                f"{r['awaited']:>9.0f} {r['direct']:>9.0f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
