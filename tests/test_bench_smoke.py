"""Keeps the benchmark scripts working: each runs once in its short smoke mode.

Nothing here asserts a timing; the numbers are printed by the scripts themselves and
belong in docs/performance.md (measured by ``python bench/run.py`` on a quiet machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_core_micro_benchmark_runs_and_prints_both_messages() -> None:
    result = _run("bench/core_micro.py", "--quick", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MeterValues(4)" in result.stdout
    assert "BootNotification" in result.stdout


def test_benchmark_suite_smoke_mode_measures_ntxcp() -> None:
    result = _run("bench/run.py", "--smoke", timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ntxcp" in result.stdout


def test_fleet_admission_benchmark_runs_a_small_fleet() -> None:
    result = _run(
        "bench/fleet_admission.py", "--gateways", "20", "--modes", "none,generated",
        "--timeout", "60", timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = result.stdout.split("p50 ms")[-1]
    assert "generated" in table and "not all" not in table, result.stdout


def test_token_check_benchmark_runs_each_kind() -> None:
    result = _run("bench/token_checks.py", "--rounds", "50", "--tokens", "3", timeout=120)
    assert result.returncode == 0, result.stderr
    for kind in ("valid token", "wrong secret", "unknown name", "--api-token"):
        assert kind in result.stdout


def test_cluster_benchmark_runs_one_and_two_nodes() -> None:
    result = _run("bench/cluster.py", "--smoke", timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith('{"kind": "cluster"')]
    assert len(rows) == 2, result.stdout
    assert "cross_node" in rows[1] and "kb_per_gateway" in rows[1]
