"""Keeps the benchmark scripts working: each runs once in its short smoke mode.

Nothing here asserts a timing; the numbers are printed by the scripts themselves and
belong in docs/performance.md (measured by ``python bench/run.py`` on a quiet machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _run(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A temporary directory of the benchmark's own (its ``TMPDIR``), to see what it
    leaves. Short (PostgreSQL's socket path is limited) and readable by all (the
    server may run as the ``postgres`` user)."""
    with tempfile.TemporaryDirectory(prefix="ntxcp-smoke-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def _users_of(directory: Path) -> list[str]:
    """Command lines of the processes that name a path under ``directory``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if any(str(directory).encode() in word for word in words):
            found.append(" ".join(w.decode(errors="replace") for w in words))
    return found


def _cluster_bench(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "bench/cluster.py", "--smoke", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def _nodes_starting(tmp: Path) -> bool:
    """Whether the benchmark has PostgreSQL, NATS and a node starting (its log open)."""
    return any(tmp.glob("ntxcp-bench-cluster-*/node1-0.log"))


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


def test_cluster_benchmark_runs_one_and_two_nodes(own_tmp: Path) -> None:
    result = _run(
        "bench/cluster.py", "--smoke", timeout=240, env={**os.environ, "TMPDIR": str(own_tmp)}
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith('{"kind": "cluster"')]
    assert len(rows) == 2, result.stdout
    assert "cross_node" in rows[1] and "kb_per_gateway" in rows[1]
    # Nothing left: the work directory (node logs, server key) and the servers' own.
    assert list(own_tmp.iterdir()) == []
    assert _users_of(own_tmp) == []


def test_cluster_benchmark_interrupted_stops_its_children_and_keeps_only_with_keep(
    own_tmp: Path,
) -> None:
    bench = _cluster_bench(own_tmp, "--keep")
    try:
        wait_until(lambda: _nodes_starting(own_tmp), 60, what="a node starting")
        bench.send_signal(signal.SIGINT)  # Ctrl-C: the exception path
        out, err = bench.communicate(timeout=60)
    finally:
        bench.kill()
    assert bench.returncode != 0, out + err
    (work,) = own_tmp.iterdir()  # the servers' directories are gone, the kept one stays
    assert work.name.startswith("ntxcp-bench-cluster-") and (work / "node1-0.log").exists()
    assert f"work directory kept: {work}" in out
    assert _users_of(own_tmp) == []


def test_cluster_benchmark_killed_leaves_nothing(own_tmp: Path) -> None:
    bench = _cluster_bench(own_tmp)
    try:
        wait_until(lambda: _nodes_starting(own_tmp), 60, what="a node starting")
        bench.kill()  # SIGKILL: no cleanup of its own; the guardian process does it
        bench.communicate(timeout=10)
    finally:
        bench.kill()
    try:
        wait_until(lambda: not any(own_tmp.iterdir()) and not _users_of(own_tmp), 30)
    except AssertionError:
        left = sorted(str(p) for p in own_tmp.rglob("*"))
        raise AssertionError(f"left after 30 s: {left} {_users_of(own_tmp)}") from None
