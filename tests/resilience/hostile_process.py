"""Hostile clients for the hostile-neighbours test (127.0.0.1 only, bounded in time).

``--connections`` attackers in four equal groups, each looping until ``--duration``:

* ``garbage``: completes the upgrade (own gateway id), sends bursts of garbage text
  frames (bad JSON, bad types, unknown ids, invalid UTF-8) until closed for the
  bad-message limit; half of them never read what the server answers.
* ``oversized``: completes the upgrade, then announces a frame larger than the
  limit, or sends fragments that add up past it.
* ``slowloris``: never finishes the handshake (a trickle of header bytes, or
  nothing, or headers larger than the server accepts).
* ``churn``: connects and disconnects in a loop (after the upgrade or before it,
  with FIN or RST).

Prints ``ATTACK`` when it starts and ``DONE <json counters>`` when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import socket
import struct
import time
from collections import Counter

from resilience_helpers import client_frame, frame_header, garbage, upgrade_request

counters: Counter[str] = Counter()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)


async def _upgrade(port: int, gateway_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _open(port)
    writer.write(upgrade_request(port, f"/ntxcp/{gateway_id}"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.transport.abort()
        raise ConnectionError(head[:40])
    return reader, writer


async def _drain_reads(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while await reader.read(65536):
            pass


async def _closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await _drain_reads(reader)
        return True
    except TimeoutError:
        return False


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def garbage_attacker(i: int, port: int, deadline: float) -> None:
    rng = random.Random(i)
    reads = i % 2 == 0
    while time.monotonic() < deadline:
        try:
            reader, writer = await _upgrade(port, f"EVIL-G{i}")
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            counters["garbage-connect-failed"] += 1
            await asyncio.sleep(0.2)
            continue
        counters["garbage-sessions"] += 1
        drainer = asyncio.ensure_future(_drain_reads(reader)) if reads else None
        try:
            for n in range(80):  # more than the bad-message limit (50 per minute)
                payload = garbage(rng)
                if n % 7 == 0:
                    payload = b"\xff\xfe" + payload  # invalid UTF-8
                writer.write(client_frame(payload))
                counters["garbage-frames"] += 1
                if n % 10 == 9:
                    await asyncio.wait_for(writer.drain(), 2)
                    await asyncio.sleep(0.02)
                if writer.transport.is_closing():
                    break
            if drainer is not None:  # the server closes it (1008, bad-message limit)
                await asyncio.wait_for(asyncio.shield(drainer), 3)
                counters["garbage-closed-by-server"] += 1
            else:
                await asyncio.sleep(0.5)  # never reads: just walk away later
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            counters["garbage-closed-by-server"] += 1
        finally:
            if drainer is not None:
                drainer.cancel()
            _abort(writer)
        await asyncio.sleep(rng.uniform(0.05, 0.2))


async def oversized_attacker(i: int, port: int, deadline: float, limit: int) -> None:
    rng = random.Random(1000 + i)
    while time.monotonic() < deadline:
        try:
            reader, writer = await _upgrade(port, f"EVIL-O{i}")
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            counters["oversized-connect-failed"] += 1
            await asyncio.sleep(0.2)
            continue
        counters["oversized-sessions"] += 1
        try:
            if i % 3:
                # announce a huge frame, send a little of it
                writer.write(frame_header(limit * 4) + b"x" * 1024)
            else:
                # fragments that add up past the limit (each one small)
                chunk = b"y" * 32768
                writer.write(client_frame(chunk, opcode=0x1, fin=False))
                for _ in range(limit // len(chunk) + 2):
                    writer.write(client_frame(chunk, opcode=0x0, fin=False))
                    await asyncio.wait_for(writer.drain(), 2)
                    if writer.transport.is_closing():
                        break
            await asyncio.wait_for(writer.drain(), 2)
            if await _closed_within(reader, 3):
                counters["oversized-closed-by-server"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            counters["oversized-closed-by-server"] += 1
        finally:
            _abort(writer)
        await asyncio.sleep(rng.uniform(0.1, 0.3))


async def slowloris_attacker(i: int, port: int, deadline: float) -> None:
    rng = random.Random(2000 + i)
    while time.monotonic() < deadline:
        try:
            reader, writer = await _open(port)
        except (OSError, TimeoutError):
            counters["slowloris-connect-failed"] += 1
            await asyncio.sleep(0.2)
            continue
        counters["slowloris-sessions"] += 1
        request = upgrade_request(port, f"/ntxcp/EVIL-S{i}")
        try:
            if i % 3 == 0:
                pass  # say nothing at all
            elif i % 3 == 1:
                writer.write(request[:20])  # a trickle that never ends the headers
            else:
                writer.write(request[:-4] + b"\r\nX-Pad: " + b"a" * 20000)  # headers too big
            start = time.monotonic()
            closed = False
            while time.monotonic() < deadline + 15 and not closed:
                if i % 3 == 1:
                    writer.write(b"X")
                closed = await _closed_within(reader, 0.5)
            if closed:
                variant = ("silent", "trickle", "big-headers")[i % 3]
                held = int((time.monotonic() - start) * 1000)
                counters["slowloris-closed-by-server"] += 1
                counters[f"slowloris-{variant}-max-held-ms"] = max(
                    counters[f"slowloris-{variant}-max-held-ms"], held
                )
        except OSError:
            counters["slowloris-closed-by-server"] += 1
        finally:
            _abort(writer)
        await asyncio.sleep(rng.uniform(0.0, 0.1))


async def churn_attacker(i: int, port: int, deadline: float) -> None:
    rng = random.Random(3000 + i)
    while time.monotonic() < deadline:
        try:
            if i % 2:
                _, writer = await _upgrade(port, f"EVIL-C{i}")
            else:
                _, writer = await _open(port)
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            counters["churn-connect-failed"] += 1
            await asyncio.sleep(0.2)
            continue
        counters["churn-connections"] += 1
        if rng.random() < 0.5:
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _abort(writer)  # RST
        else:
            writer.close()  # FIN
        await asyncio.sleep(rng.uniform(0.02, 0.1))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=1024 * 1024)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deadline = time.monotonic() + args.duration
    group = args.connections // 4
    attackers = []
    for i in range(group):
        attackers.append(garbage_attacker(i, args.port, deadline))
        attackers.append(oversized_attacker(i, args.port, deadline, args.limit))
        attackers.append(slowloris_attacker(i, args.port, deadline))
        attackers.append(churn_attacker(i, args.port, deadline))
    print("ATTACK", flush=True)
    results = await asyncio.gather(*attackers, return_exceptions=True)
    crashed = [repr(r) for r in results if isinstance(r, BaseException)]
    counters["attackers"] = len(attackers)
    counters["attacker-crashes"] = len(crashed)
    print("DONE " + json.dumps({**counters, "crashes": crashed[:5]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
