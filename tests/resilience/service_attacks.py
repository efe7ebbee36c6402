"""Hostile clients of the control center *service* (127.0.0.1 only, bounded in time).

Runs every attack at once until ``--duration`` (each loop also bounded in count):

* ``password``: Basic-auth upgrades with wrong passwords, for registered and made-up
  ids, as fast as the server answers (counts 401, 429 and 503 answers);
* ``garbage``: gateways that know their password (``EVIL-n``) send bursts of garbage
  frames, frames of invented actions and CALLERRORs with invented codes (label and
  frame-log flood);
* ``sse``: ``/api/events`` streams that are never read;
* ``idle``: API connections that send nothing, or half a request head.

Prints ``ATTACK`` when it starts and ``DONE <json counters>`` when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import socket
import time
from collections import Counter

from resilience_helpers import client_frame, garbage

counters: Counter[str] = Counter()


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _upgrade(port: int, gateway_id: str, password: str) -> bytes:
    return (
        f"GET /ntxcp/{gateway_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: ntxcp1.0\r\nAuthorization: {_auth(gateway_id, password)}\r\n"
        "\r\n"
    ).encode()


async def _handshake(
    port: int, gateway_id: str, password: str
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(_upgrade(port, gateway_id, password))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return int(head.split(b" ", 2)[1]), reader, writer


async def password_flood(port: int, deadline: float, known: int) -> None:
    rng = random.Random(1)
    for n in range(1_000_000):
        if time.monotonic() > deadline:
            return
        gateway_id = f"GOOD-{rng.randrange(known):03d}" if n % 2 else f"NOBODY-{n}"
        try:
            status, _, writer = await _handshake(port, gateway_id, f"guess-{n}")
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            counters["password-errors"] += 1
            continue
        counters[f"password-{status}"] += 1
        writer.transport.abort()


async def garbage_flood(port: int, deadline: float, index: int) -> None:
    rng = random.Random(index)
    gateway_id = f"EVIL-{index}"
    for n in range(100_000):
        if time.monotonic() > deadline:
            return
        try:
            status, reader, writer = await _handshake(port, gateway_id, f"evil {gateway_id}")
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            counters["garbage-errors"] += 1
            await asyncio.sleep(0.1)
            continue
        if status != 101:
            counters[f"garbage-refused-{status}"] += 1
            writer.transport.abort()
            await asyncio.sleep(0.1)
            continue
        counters["garbage-sessions"] += 1
        drain = asyncio.ensure_future(_read_until_closed(reader))
        try:
            for burst in range(40):
                frames = []
                for k in range(10):
                    choice = (burst + k) % 3
                    if choice == 0:
                        frames.append(garbage(rng))
                    elif choice == 1:  # an action nobody defined
                        frames.append(b'[2, "a%d", "Invented%d", {}]' % (n, rng.randrange(10**9)))
                    else:  # an error code nobody defined
                        frames.append(b'[4, "e%d", "Code%d", "", {}]' % (n, rng.randrange(10**9)))
                writer.write(b"".join(client_frame(frame) for frame in frames))
                counters["garbage-frames"] += len(frames)
                await asyncio.wait_for(writer.drain(), 5)
                if drain.done() or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
        except (OSError, TimeoutError):
            pass
        if drain.done():
            counters["garbage-closed-by-server"] += 1
        drain.cancel()
        writer.transport.abort()


async def _read_until_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


async def slow_sse(api_port: int, deadline: float, index: int) -> None:
    """One event stream, never read until the end; then: did the server end it?"""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", api_port)), 5)
        await loop.sock_sendall(sock, b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        counters["sse-streams"] += 1
        await asyncio.sleep(max(deadline - time.monotonic(), 0))
        # Read what the server managed to send: a dropped stream ends soon after;
        # one still served never ends.
        async with asyncio.timeout(3):
            while await loop.sock_recv(sock, 65536):
                pass
        counters["sse-closed-by-server"] += 1
    except ConnectionError:
        counters["sse-closed-by-server"] += 1
    except TimeoutError:
        counters["sse-still-open"] += 1
    except OSError:
        counters["sse-errors"] += 1
    finally:
        sock.close()


async def idle_api(api_port: int, deadline: float, index: int) -> None:
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", api_port), 5
            )
        except (OSError, TimeoutError):
            counters["idle-errors"] += 1
            await asyncio.sleep(0.2)
            continue
        if index % 2:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        counters["idle-connections"] += 1
        try:
            left = deadline - time.monotonic()
            data = await asyncio.wait_for(reader.read(65536), max(left, 0.01))
            if data.startswith(b"HTTP/1.1 503"):
                counters["idle-refused-503"] += 1
            else:
                counters["idle-closed-by-server"] += 1
        except TimeoutError:
            pass
        except OSError:
            counters["idle-closed-by-server"] += 1
        finally:
            writer.transport.abort()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--known", type=int, default=50, help="GOOD-000.. ids registered")
    parser.add_argument("--password-flooders", type=int, default=8)
    parser.add_argument("--garbage", type=int, default=4, help="EVIL-0.. gateways")
    parser.add_argument("--sse", type=int, default=50)
    parser.add_argument("--idle", type=int, default=300)
    args = parser.parse_args()
    deadline = time.monotonic() + args.duration
    print("ATTACK", flush=True)
    attacks = [
        password_flood(args.port, deadline, args.known) for _ in range(args.password_flooders)
    ]
    attacks += [garbage_flood(args.port, deadline, i) for i in range(args.garbage)]
    attacks += [slow_sse(args.api_port, deadline, i) for i in range(args.sse)]
    attacks += [idle_api(args.api_port, deadline, i) for i in range(args.idle)]
    results = await asyncio.gather(*attacks, return_exceptions=True)
    counters["attacker-crashes"] = sum(isinstance(r, BaseException) for r in results)
    for result in results:
        if isinstance(result, BaseException):
            print(f"attack crashed: {result!r}", flush=True)
    print("DONE " + json.dumps(dict(counters), sort_keys=True), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
