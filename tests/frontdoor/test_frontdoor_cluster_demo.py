"""``ntxcp cluster-demo`` as a real process: it starts every part, serves a gateway through
its front door, and leaves nothing behind after SIGTERM, nor after SIGKILL of itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from ntxcp import Gateway
from ntxcp.v10 import core
from waiting import WAIT, eventually

STARTUP = 90.0  # s: NATS, initdb, the nodes and HAProxy on a loaded machine
pytestmark = pytest.mark.timeout(240)
READY = "cluster demo ready"


@dataclass
class Demo:
    """The running demo and what it printed."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def value(self, pattern: str) -> str:
        for line in self.lines:
            match = re.search(pattern, line)
            if match:
                return match[1]
        raise AssertionError(f"{pattern!r} not in the output:\n" + "\n".join(self.lines))

    def pids(self) -> list[int]:
        return [int(p) for line in self.lines for p in re.findall(r"\bpid (\d+)", line)]

    def directories(self) -> list[Path]:
        return [Path(self.value(r"^logs\s+(\S+)"))]


def _read_until_ready(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        if lines[-1].startswith(READY):
            return


def _start_demo(nodes: int) -> Demo:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ntxcp", "cluster-demo", "--nodes", str(nodes)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    demo = Demo(proc)
    assert proc.stdout is not None
    reader = threading.Thread(target=_read_until_ready, args=(proc.stdout, demo.lines))
    reader.start()
    reader.join(STARTUP)  # bounded: a demo that never gets ready is killed below
    if not demo.lines or not demo.lines[-1].startswith(READY):
        proc.kill()
        proc.wait(10)
        reader.join(10)
        raise AssertionError("the demo did not start:\n" + "\n".join(demo.lines))
    return demo


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def demo() -> Iterator[Demo]:
    started = _start_demo(2)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.send_signal(signal.SIGTERM)
            started.proc.wait(60)


def _healthz(api_url: str) -> dict[str, object]:
    with urllib.request.urlopen(api_url.rstrip("/") + "/healthz", timeout=5) as answer:
        body: dict[str, object] = json.load(answer)
        return body


async def test_the_demo_serves_a_gateway_and_stops_cleanly_on_sigterm(demo: Demo) -> None:
    front_door = demo.value(r"front door, HAProxy\)\s+(\S+)")
    nodes = [demo.value(rf"^node-{n}\s+API and dashboard (\S+)") for n in (1, 2)]
    assert demo.value(r"^NATS\s+(nats://127\.0\.0\.1:\d+)")
    assert demo.value(r"^PostgreSQL\s+(postgresql://\S+@127\.0\.0\.1:\d+/\S+)")
    gw = Gateway("GW-DEMO")
    try:
        await gw.start(front_door)
        assert isinstance(await gw.heartbeat(timeout=WAIT), core.HeartbeatConfirmation)
        counts = [await asyncio.to_thread(_healthz, url) for url in nodes]
        assert sum(int(str(c["connectedGateways"])) for c in counts) == 1
    finally:
        await gw.stop()
    pids = demo.pids()
    assert len(pids) == 5  # 2 nodes, NATS, PostgreSQL, HAProxy
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(60) == 0
    assert not any(_alive(pid) for pid in pids)
    assert not any(path.exists() for path in demo.directories())


async def test_sigkill_of_the_demo_leaves_nothing_behind() -> None:
    demo = _start_demo(1)
    pids = demo.pids()
    assert len(pids) == 4  # 1 node, NATS, PostgreSQL, HAProxy
    directories = demo.directories()
    demo.proc.kill()  # SIGKILL: the demo cannot clean up; its guardian does
    demo.proc.wait(10)
    await eventually(lambda: not any(_alive(pid) for pid in pids), 30, what="all ended")
    await eventually(lambda: not any(p.exists() for p in directories), 30, what="files gone")


def test_a_bad_node_count_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ntxcp", "cluster-demo", "--nodes", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--nodes: must be 1..16" in result.stderr
