"""Shared pieces of the resilience tests: payloads, processes, a cutting TCP proxy.

Everything here talks to 127.0.0.1 only, and every loop is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ntxcp.v10 import core
from payloads import meter_values as meter_values  # re-exported
from payloads import seq_of as seq_of  # re-exported

HERE = Path(__file__).resolve().parent
# The helper scripts import the modules shared by the tests (tests/payloads.py).
_TESTS_PATH = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p)
PYTHON = sys.executable


# --- payloads -----------------------------------------------------------------------


def boot_request() -> core.BootNotificationRequest:
    return core.BootNotificationRequest(dingx_gateway_model="DX-Test", dingx_gateway_vendor="Ding")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- checking what a control center received ---------------------------------------


def check_in_order(received: Iterable[tuple[str, int]], count: int) -> dict[str, int]:
    """Check that ``received`` holds 0..count-1 in order, duplicates only as re-sends.

    One forwarder sends one message at a time and removes it only after its
    CALLRESULT, so a message is re-sent only before the next one is ever sent: the
    sequence numbers must never go down, each must appear, and a repeated number must
    carry the same uniqueId as its first copy (spec §6.2).

    Returns:
        ``{"received": n, "duplicates": d}``.
    """
    first_id: dict[int, str] = {}
    last = -1
    total = 0
    for unique_id, seq in received:
        total += 1
        assert seq >= last, f"order broken: {seq} after {last}"
        if seq in first_id:
            assert first_id[seq] == unique_id, f"seq {seq} re-sent with a new uniqueId"
        else:
            assert seq == last + 1, f"gap: {seq} after {last}"
            first_id[seq] = unique_id
        last = seq
    assert len(first_id) == count, f"received {len(first_id)} distinct messages of {count}"
    return {"received": total, "duplicates": total - count}


def read_log(path: Path) -> list[tuple[str, int]]:
    """Read a control center log (``uniqueId seq`` per line; a torn last line is skipped)."""
    if not path.exists():
        return []
    out: list[tuple[str, int]] = []
    for line in path.read_bytes().split(b"\n"):
        parts = line.split()
        if len(parts) == 2:
            out.append((parts[0].decode(), int(parts[1])))
    return out


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A child process whose output goes to files (a full pipe never blocks it)."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def lines(self) -> list[str]:
        return self.stdout.read_text(errors="replace").splitlines()

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if line.startswith(prefix):
                    return line
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"{self.name}: no line {prefix!r} within {timeout} s (exit {self.popen.poll()})\n"
            f"stdout: {self.stdout.read_text()[-2000:]}\nstderr: {self.stderr.read_text()[-4000:]}"
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def rss_kib(self) -> int:
        return rss_kib(self.popen.pid)

    def tail(self) -> str:
        return (
            f"--- {self.name} stdout\n{self.stdout.read_text()[-3000:]}\n"
            f"--- {self.name} stderr\n{self.stderr.read_text()[-3000:]}"
        )


def spawn(name: str, script: str, args: list[str], workdir: Path) -> Proc:
    """Start ``tests/resilience/<script>`` with the test's Python."""
    stdout = workdir / f"{name}.out"
    stderr = workdir / f"{name}.err"
    with stdout.open("ab") as out, stderr.open("ab") as err:
        popen = subprocess.Popen(
            [PYTHON, str(HERE / script), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _TESTS_PATH},
        )
    return Proc(name, popen, stdout, stderr)


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- a TCP proxy that cuts connections -------------------------------------------------


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    blackholed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, abort: bool) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if abort:
                writer.transport.abort()
            else:
                writer.close()


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 that can cut every connection through it.

    ``cut("rst")`` aborts both sides (RST), ``cut("fin")`` closes them, and
    ``cut("blackhole")`` keeps both sockets open but silently drops everything, the
    way a dead NAT or a pulled cable looks: only a ping or call timeout notices.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.pairs: set[_Pair] = set()
        self.connections = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self.pairs):
            pair.close(abort=True)
        await asyncio.sleep(0)

    def cut(self, mode: str) -> int:
        """Cut every live connection; returns how many were cut."""
        cut = 0
        for pair in list(self.pairs):
            if pair.blackholed:
                continue
            cut += 1
            if mode == "blackhole":
                pair.blackholed = True
            else:
                self.pairs.discard(pair)
                pair.close(abort=mode == "rst")
        if cut:
            self.cuts += 1
        return cut

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pair = _Pair(writer)
        self.pairs.add(pair)
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.pairs.discard(pair)
            writer.transport.abort()
            return
        pair.upstream = up_writer
        if pair not in self.pairs:  # cut while connecting upstream
            pair.close(abort=True)
            return
        tasks = [
            asyncio.ensure_future(self._pipe(pair, reader, up_writer)),
            asyncio.ensure_future(self._pipe(pair, up_reader, writer)),
        ]
        pair.tasks = tasks
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        self.pairs.discard(pair)
        pair.close(abort=False)
        for task in tasks:
            task.cancel()

    @staticmethod
    async def _pipe(
        pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if pair.blackholed:
                    continue
                writer.write(data)
                await writer.drain()


# --- a raw WebSocket client for hostile connections ------------------------------------


def upgrade_request(port: int, path: str, subprotocol: str | None = "ntxcp1.0") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if length < 4096 else None
    if masked is None:  # large: mask with an all-zero key (still a valid masked frame)
        mask = b"\0\0\0\0"
        masked = payload
    return head + mask + masked


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """Only the header of a masked frame announcing ``length`` payload bytes."""
    return bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", length) + b"\0\0\0\0"


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return b'[2, "x", "MeterValues", {"serviceId": "not a number"}]'
    if kind == 2:
        return b"{" * rng.randrange(1, 300)
    if kind == 3:
        return json.dumps([9, "id", rng.random()]).encode()
    return b'[3, "no-such-call", {}]'
