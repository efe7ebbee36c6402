"""100 good gateways keep calling while 500 hostile connections attack the server.

The attackers send garbage, oversized frames, never finish their handshake, or
connect and disconnect in a loop (two rounds, see ``hostile_process.py``). The good
gateways see no error and no disconnect, the server survives and still stops
gracefully, its memory (RSS) comes most of the way back to its level before the
attack, and a second attack does not add to what the first left (no leak).
Latency percentiles and memory are printed, not asserted.
"""

from __future__ import annotations

import json
import re
import resource
import sqlite3
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from resilience_helpers import Proc, free_port, percentile, rss_kib, spawn

from ntxcp.errors import ErrorCode
from ntxcp.v10.registry import ACTIONS
from service_process import ServiceProcess

GOOD = 100
HOSTILE = 500
BASELINE_S = 5.0
ATTACK_S = 8.0
RECOVERY_S = 4.0
ROUNDS = 2
HANDSHAKE_TIMEOUT = 2.0
MIB = 1024  # RSS is in KiB
SETTLED_ALLOWANCE = 24 * MIB


def _attack(tmp_path: Path, port: int, server: Proc, n: int) -> tuple[float, float, int, dict]:
    """One attack round; returns (start, end, peak RSS, counters)."""
    attack = spawn(
        f"attack{n}",
        "hostile_process.py",
        ["--port", str(port), "--connections", str(HOSTILE), "--duration", str(ATTACK_S)],
        tmp_path,
    )
    try:
        attack.wait_line("ATTACK", 15)
        start = time.time()
        peak = 0
        while attack.popen.poll() is None and time.time() < start + ATTACK_S + 25:
            assert server.popen.poll() is None, server.tail()
            peak = max(peak, server.rss_kib())
            time.sleep(0.2)
        end = time.time()
        counters = json.loads(attack.wait_line("DONE", 5).split(" ", 1)[1])
    finally:
        attack.kill()
    return start, end, peak, counters


def _settled_rss(server: Proc) -> int:
    time.sleep(RECOVERY_S)
    samples = []
    for _ in range(3):
        samples.append(server.rss_kib())
        time.sleep(0.2)
    return min(samples)


@pytest.mark.timeout(120)
def test_hostile_neighbours(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    port = free_port()
    server = spawn(
        "server",
        "cc_process.py",
        ["--port", str(port), "--handshake-timeout", str(HANDSHAKE_TIMEOUT)],
        tmp_path,
    )
    server.wait_line("READY", 15)
    out = tmp_path / "good.json"
    duration = 1.0 + BASELINE_S + ROUNDS * (ATTACK_S + 2.0 + RECOVERY_S + 1.0) + 2.0
    good = spawn(
        "good",
        "good_gateways.py",
        [
            f"--url=ws://127.0.0.1:{port}/ntxcp",
            f"--count={GOOD}",
            f"--duration={duration}",
            f"--out={out}",
        ],
        tmp_path,
    )
    rounds = []
    try:
        good.wait_line("READY", 30)
        time.sleep(1.0)  # warm up
        base_start = time.time()
        time.sleep(BASELINE_S)
        base_end = time.time()
        rss_before = server.rss_kib()
        for n in range(ROUNDS):
            start, end, peak, counters = _attack(tmp_path, port, server, n)
            rounds.append((start, end, peak, _settled_rss(server), counters))
        good.wait_line("DONE", duration + 30)
        assert good.popen.wait(20) == 0, good.tail()
        assert server.popen.poll() is None, server.tail()
        assert server.terminate() == 0, server.tail()  # graceful stop still works
    finally:
        good.kill()
        server.kill()

    result = json.loads(out.read_text())
    samples = result["samples"]
    assert result["errors"] == [], result["errors"][:10]
    assert result["disconnects_before_stop"] == 0
    assert result["connected_at_end"] == GOOD
    for *_, counters in rounds:
        assert counters["attacker-crashes"] == 0, counters
        for kind in ("garbage", "oversized", "slowloris"):
            assert counters[f"{kind}-sessions"] > 0
            assert counters[f"{kind}-closed-by-server"] > 0
        assert counters["churn-connections"] > 0
        # The server, not the attacker, ends a handshake that never completes: a silent
        # attacker gives up only at the end of the attack (ATTACK_S), so a hold well
        # below that is the handshake timeout at work, with room for a loaded machine.
        assert HANDSHAKE_TIMEOUT + 4 < ATTACK_S
        assert counters["slowloris-silent-max-held-ms"] <= (HANDSHAKE_TIMEOUT + 4) * 1000

    def window(lo: float, hi: float) -> list[float]:
        return [lat for t, lat in samples if lo <= t <= hi]

    before = window(base_start, base_end)
    during = [lat for start, end, *_ in rounds for lat in window(start, end)]
    after = window(rounds[-1][1] + 1, float("inf"))
    lines = [
        f"\n[hostile] {GOOD} good gateways calling every 0.1 s; {ROUNDS} rounds of {HOSTILE} "
        f"attackers x {ATTACK_S:.0f} s",
        f"  good calls: {len(before)} before / {len(during)} during / {len(after)} after; "
        "0 errors, 0 disconnects",
        f"  latency p50 before {percentile(before, 50) * 1000:.1f} ms, during "
        f"{percentile(during, 50) * 1000:.1f} ms, after {percentile(after, 50) * 1000:.1f} ms",
        f"  latency p99 before {percentile(before, 99) * 1000:.1f} ms, during "
        f"{percentile(during, 99) * 1000:.1f} ms, after {percentile(after, 99) * 1000:.1f} ms",
        f"  server RSS before {rss_before / MIB:.1f} MiB",
    ]
    for n, (_, _, peak, settled, counters) in enumerate(rounds, start=1):
        lines.append(
            f"  round {n}: RSS peak {peak / MIB:.1f} MiB, {RECOVERY_S:.0f} s later "
            f"{settled / MIB:.1f} MiB; attack {counters}"
        )
    print("\n".join(lines))

    for n, (_, _, peak, settled, _) in enumerate(rounds, start=1):
        # Back near the level before: what is still held is at most half of what the
        # attack added at its peak, or SETTLED_ALLOWANCE when that is more. The floor
        # keeps a small peak (little garbage made by the attack) from shrinking the
        # bound below what the allocator keeps of freed small objects: the library
        # returns no heap to the system itself (the service does, every 10 s), and
        # 13-20 MiB stays here after 500 attackers whatever the peak was (34-59 MiB).
        # A leak shows in the second round (below).
        allowed = max(SETTLED_ALLOWANCE, (peak - rss_before) // 2)
        assert settled - rss_before <= allowed, (n, rss_before, peak, settled)
    # No leak: a second attack reuses that memory instead of adding to it.
    assert rounds[-1][3] <= rounds[0][3] + 12 * MIB, [r[:4] for r in rounds]


# --- the service under attack -------------------------------------------------------------

SERVICE_GOOD = 50
EVIL = 4
FRAME_LOG_BUDGET = 4 * 1024 * 1024
WAL_LIMIT = 64 * 1024 * 1024  # the service's journal_size_limit (docs/resilience.md §8)
SERVICE_ATTACK_S = 8.0
RSS_RECOVERY_S = 30.0
# Memory must come back after the attack, within 20 % of its level before (issue:
# hostile peers). Before the fixes it stayed at 3.8 times the baseline (the allocator
# kept freed pages), then at 1.32-1.37: every refused handshake left a reference cycle
# (a refusal kept with its traceback) for the full garbage collection that the service
# holds back during storms, and SQLite kept the pages of the frames it wrote in its
# 64 MiB page cache. It now settles at about 1.08 (bench/hostile_service.py prints it).
RSS_SETTLED_FACTOR = 1.2
_LABEL = re.compile(r'(action|code)="((?:[^"\\]|\\.)*)"')


def _post(api_url: str, path: str, body: dict[str, str]) -> int:
    request = urllib.request.Request(
        api_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def _get(api_url: str, path: str) -> str:
    with urllib.request.urlopen(api_url.rstrip("/") + path, timeout=30) as response:
        return str(response.read().decode())


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


@pytest.mark.timeout(150)
def test_hostile_neighbours_of_the_service(tmp_path: Path) -> None:
    """Good gateways of the service are served while it is attacked from every side.

    Wrong-password flood, garbage and invented labels from gateways that know their
    password, unread event streams, idle API connections — all at once. The good
    gateways see no error or disconnect, ``/metrics`` holds only known labels, the
    frame log stays within its budget, the server's memory comes back
    within 20 % of its level before the attack, and it still stops cleanly.
    Latencies are printed (bench/hostile_service.py measures them), not asserted.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    service = ServiceProcess(
        tmp_path,
        "--auth", "basic",
        "--unknown-gateways", "reject",
        "--frame-log-budget", str(FRAME_LOG_BUDGET),
        "--log-level", "error",
    ).start()  # fmt: skip
    good = attack = None
    try:
        for i in range(SERVICE_GOOD):
            gateway_id = f"GOOD-{i:03d}"
            assert (
                _post(
                    service.api_url,
                    "/api/gateways",
                    {"id": gateway_id, "password": "pw " + gateway_id},
                )
                == 201
            )
        for i in range(EVIL):
            gateway_id = f"EVIL-{i}"
            assert (
                _post(
                    service.api_url,
                    "/api/gateways",
                    {"id": gateway_id, "password": "evil " + gateway_id},
                )
                == 201
            )
        assert service.proc is not None
        pid = service.proc.pid
        out = tmp_path / "good.json"
        duration = 1.0 + BASELINE_S + SERVICE_ATTACK_S + 4.0
        good = spawn(
            "good",
            "good_gateways.py",
            [
                f"--url={service.ws_url}",
                f"--count={SERVICE_GOOD}",
                f"--duration={duration}",
                f"--out={out}",
                "--password-prefix=pw ",
            ],
            tmp_path,
        )
        good.wait_line("READY", 60)
        time.sleep(1.0)
        base_start = time.time()
        time.sleep(BASELINE_S)
        base_end = time.time()
        rss_before = rss_kib(pid)
        db_before = _db_bytes(service.db)
        api_port = urllib.parse.urlsplit(service.api_url).port
        ws_port = urllib.parse.urlsplit(service.ws_url).port
        attack = spawn(
            "attack",
            "service_attacks.py",
            [
                f"--port={ws_port}",
                f"--api-port={api_port}",
                f"--duration={SERVICE_ATTACK_S}",
                f"--known={SERVICE_GOOD}",
                f"--garbage={EVIL}",
            ],
            tmp_path,
        )
        attack.wait_line("ATTACK", 15)
        start = time.time()
        peak = rss_before
        while attack.popen.poll() is None and time.time() < start + SERVICE_ATTACK_S + 30:
            assert service.proc.poll() is None, service.stderr()
            peak = max(peak, rss_kib(pid))
            time.sleep(0.2)
        end = time.time()
        counters = json.loads(attack.wait_line("DONE", 5).split(" ", 1)[1])
        good.wait_line("DONE", duration + 30)
        assert good.popen.wait(20) == 0, good.tail()
        # Memory comes back (the service returns freed heap every 10 s).
        recovered = time.time() + RSS_RECOVERY_S
        settled = rss_kib(pid)
        while settled > rss_before * RSS_SETTLED_FACTOR and time.time() < recovered:
            time.sleep(0.5)
            settled = rss_kib(pid)
        recovery_s = time.time() - end
        metrics = _get(service.api_url, "/metrics")
        db_growth = _db_bytes(service.db) - db_before
        assert service.proc.poll() is None, service.stderr()
        assert service.stop() == 0, service.stderr()
    finally:
        for proc in (good, attack):
            if proc is not None:
                proc.kill()
        service.kill()

    result = json.loads(out.read_text())
    assert result["errors"] == [], result["errors"][:10]
    assert result["disconnects_before_stop"] == 0
    assert result["connected_at_end"] == SERVICE_GOOD
    assert counters["attacker-crashes"] == 0, counters
    assert counters.get("password-401", 0) > 0, counters
    assert counters.get("password-500", 0) == 0, counters
    assert counters.get("garbage-sessions", 0) > 0, counters
    assert counters.get("sse-closed-by-server", 0) > 0, counters
    assert counters.get("idle-closed-by-server", 0) > 0, counters
    known = set(ACTIONS) | {code.value for code in ErrorCode} | {"", "other"}
    invented = {value for _, value in _LABEL.findall(metrics)} - known
    assert not invented, sorted(invented)[:10]
    with sqlite3.connect(service.db) as conn:
        logged = conn.execute("SELECT coalesce(sum(length(raw)), 0) FROM frames").fetchone()[0]
    # The frame log keeps to its budget (a bucket that starts full and refills over an
    # hour: at most a few kB more during the test); the files also hold the rows'
    # overhead, the good gateways' data and a write-ahead log of up to 64 MiB.
    assert logged <= FRAME_LOG_BUDGET * 1.01, logged
    assert db_growth < FRAME_LOG_BUDGET + WAL_LIMIT + 8 * 1024 * 1024, db_growth
    assert settled <= rss_before * RSS_SETTLED_FACTOR, (rss_before, peak, settled)

    samples = result["samples"]

    def window(lo: float, hi: float) -> list[float]:
        return [lat for t, lat in samples if lo <= t <= hi]

    before, during = window(base_start, base_end), window(start, end)
    print(
        f"\n[hostile service] {SERVICE_GOOD} good gateways (Basic auth) calling every 0.1 s; "
        f"attacks for {SERVICE_ATTACK_S:.0f} s: {counters}\n"
        f"  latency p50 before {percentile(before, 50) * 1000:.1f} ms, during "
        f"{percentile(during, 50) * 1000:.1f} ms; p99 before "
        f"{percentile(before, 99) * 1000:.1f} ms, during {percentile(during, 99) * 1000:.1f} ms\n"
        f"  RSS before {rss_before / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, "
        f"{settled / MIB:.1f} MiB {recovery_s:.0f} s after; database and WAL grew "
        f"{db_growth / 1e6:.1f} MB, frame log {logged / 1e6:.1f} MB"
    )
