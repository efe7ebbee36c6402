"""The gateway process is SIGKILLed with messages queued; its successor delivers them all.

1. Control center down: the gateway queues 2,000 messages and is killed.
2. Control center up but answering BootNotification ``Pending`` (spec §4.1: nothing
   but BootNotification may be sent): a new gateway process on the same file finds
   the 2,000, queues 1,000 more, sends none of them, and is killed too.
3. Control center accepting: a third process on the same file delivers all 3,000,
   in order.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from resilience_helpers import (
    Proc,
    check_in_order,
    count_lines,
    free_port,
    read_log,
    spawn,
)

from waiting import wait_until


def boots(cc: Proc) -> int:
    """How many BootNotifications the control center process has answered."""
    return sum(line.startswith("BOOT ") for line in cc.lines())


@pytest.mark.timeout(90)
def test_gateway_killed_with_messages_queued(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ntxcp"
    outbox = tmp_path / "outbox.db"
    log = tmp_path / "received.log"
    common = ["--url", url, "--store", str(outbox), "--boot"]

    # 1. nobody listening
    first = spawn("gw1", "gateway_process.py", [*common, "--count", "2000", "--hold"], tmp_path)
    try:
        assert first.wait_line("START", 15) == "START queued=0"
        first.wait_line("QUEUED", 30)
    finally:
        first.kill()

    # 2. control center up, boot Pending: everything stays queued
    args = ["--port", str(port), "--log", str(log), "--boot", "pending"]
    cc = spawn("cc-pending", "cc_process.py", args, tmp_path)
    try:
        cc.wait_line("READY", 15)
        second = spawn(
            "gw2",
            "gateway_process.py",
            [*common, "--count", "1000", "--first", "2000", "--hold"],
            tmp_path,
        )
        try:
            assert second.wait_line("START", 15) == "START queued=2000"
            assert second.wait_line("QUEUED", 30) == "QUEUED 1000 queued=3000"
            # spec §4.1: Pending, retried after `interval` (1 s). A boot answered after
            # everything was queued proves the retry happened and nothing was sent before.
            boots_when_queued = boots(cc)
            wait_until(
                lambda: boots(cc) > max(boots_when_queued, 1),
                15,
                what="a Pending BootNotification retried after the messages were queued",
            )
            assert count_lines(log) == 0, "sent before BootNotification was Accepted"
        finally:
            second.kill()
    finally:
        cc.kill()

    # 3. control center accepting: the third process delivers everything
    cc = spawn("cc-accept", "cc_process.py", ["--port", str(port), "--log", str(log)], tmp_path)
    try:
        cc.wait_line("READY", 15)
        t0 = time.monotonic()
        third = spawn("gw3", "gateway_process.py", common, tmp_path)
        try:
            assert third.wait_line("START", 15) == "START queued=3000"
            line = third.wait_line("DONE", 60)
            elapsed = time.monotonic() - t0
            assert third.popen.wait(20) == 0, third.tail()
        finally:
            third.kill()
    finally:
        assert cc.terminate() == 0, cc.tail()
    stats = json.loads(line.split(" ", 1)[1])
    result = check_in_order(read_log(log), 3000)
    assert stats["dead_letters"] == 0
    print(
        f"\n[gateway-killed] 3000 queued over two killed processes, delivered in order by a "
        f"third in {stats['total_s']:.2f} s ({3000 / stats['total_s']:.0f} msg/s from the SQLite "
        f"outbox, process start included {elapsed:.2f} s), {result['duplicates']} duplicates"
    )
