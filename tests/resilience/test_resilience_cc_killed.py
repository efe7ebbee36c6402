"""The control center process is SIGKILLed twice while a gateway process sends 10,000 messages.

Nothing is lost, everything arrives in order, and a message seen twice is a re-send
with the same uniqueId (spec §6.2).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from resilience_helpers import Proc, check_in_order, count_lines, free_port, read_log, spawn

COUNT = 10_000
KILL_AT = (2_500, 6_000)


def _start_cc(tmp_path: Path, port: int, log: Path, n: int) -> Proc:
    cc = spawn(f"cc{n}", "cc_process.py", ["--port", str(port), "--log", str(log)], tmp_path)
    cc.wait_line("READY", 15)
    return cc


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["queue", "await"])
def test_control_center_killed_twice(tmp_path: Path, mode: str) -> None:
    port = free_port()
    log = tmp_path / "received.log"
    count = COUNT if mode == "queue" else 3_000
    kill_at = KILL_AT if mode == "queue" else (700, 1_800)
    cc = _start_cc(tmp_path, port, log, 0)
    gateway = spawn(
        "gateway",
        "gateway_process.py",
        [
            f"--url=ws://127.0.0.1:{port}/ntxcp",
            f"--store={tmp_path / 'outbox.db'}",
            f"--count={count}",
            f"--mode={mode}",
        ],
        tmp_path,
    )
    kills = []
    try:
        for n, threshold in enumerate(kill_at, start=1):
            deadline = time.monotonic() + 60
            while count_lines(log) < threshold:
                assert time.monotonic() < deadline, cc.tail() + gateway.tail()
                assert gateway.popen.poll() is None, gateway.tail()
                time.sleep(0.01)
            cc.kill()  # SIGKILL: no close frame, no goodbye
            kills.append(count_lines(log))
            time.sleep(0.3)
            cc = _start_cc(tmp_path, port, log, n)  # same port
        line = gateway.wait_line("DONE", 120)
        assert gateway.popen.wait(20) == 0, gateway.tail()
    finally:
        gateway.kill()
        cc.kill()
    stats = json.loads(line.split(" ", 1)[1])
    result = check_in_order(read_log(log), count)
    assert stats["dead_letters"] == 0
    assert stats["connects"] >= 3
    print(
        f"\n[cc-killed/{mode}] {count} messages, CC killed at {kills} received; "
        f"{result['duplicates']} re-sent duplicates (same uniqueId); "
        f"enqueue {stats['enqueue_per_s']}/s (SQLite FULL), "
        f"end to end {count / stats['total_s']:.0f}/s including 2 kills; stats {stats}"
    )
