#!/usr/bin/env python3
"""Cost of listing many gateways through the HTTP API: one page against the whole list.

Starts ``ntxcp control-center`` (loopback, free ports, a temporary database), registers
``--gateways`` gateways through the API, then times ``GET /api/gateways`` for one page
(the default 500, what the dashboard's first request costs) and for the whole list
read page by page at the largest page size (10,000), and prints the bytes and the
median time of each. Both are measured in the same run, so the ratio holds on a loaded
machine even when the absolute numbers do not.

Usage: python bench/api_paging.py [--gateways 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

READY = re.compile(r"^ntxcp control center ready: gateways (\S+)/<id>  api (\S+)$")


async def _register(session: aiohttp.ClientSession, api: str, count: int) -> None:
    semaphore = asyncio.Semaphore(32)

    async def one(n: int) -> None:
        body = {"id": f"B-{n:06d}"}
        async with semaphore, session.post(f"{api}api/gateways", json=body) as answer:
            assert answer.status == 201, await answer.text()

    await asyncio.gather(*(one(n) for n in range(count)))


async def _list(session: aiohttp.ClientSession, api: str, limit: int, pages: bool) -> int:
    size = 0
    after: str | None = None
    while True:
        params = {"limit": str(limit)} | ({} if after is None else {"after": after})
        async with session.get(f"{api}api/gateways", params=params) as answer:
            body = await answer.read()
            page = await answer.json()
        size += len(body)
        after = page["next"]
        if not pages or after is None:
            return size


async def _measure(api: str, gateways: int, repeat: int) -> None:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await _register(session, api, gateways)
        print(f"registered {gateways} gateways in {time.perf_counter() - started:.1f} s")
        for label, limit, pages in (
            ("one page (limit 500)", 500, False),
            ("whole list (pages of 10000)", 10_000, True),
        ):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                size = await _list(session, api, limit, pages)
                times.append(time.perf_counter() - started)
            print(
                f"{label:30s} {size / 1e6:8.2f} MB  median {statistics.median(times) * 1e3:8.1f} ms"
            )


def main() -> int:
    """Run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ntxcp", "control-center", "--port", "0", "--api-port", "0",
             "--db", str(Path(directory) / "cc.sqlite"), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            match = READY.match(proc.stdout.readline().decode().strip())
            if match is None:
                print("the control center did not start", file=sys.stderr)
                return 1
            asyncio.run(_measure(match[2], args.gateways, args.repeat))
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
