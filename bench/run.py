"""Runs the ntxcp benchmark suite: every server x workload, several repetitions.

Servers: ntxcp (ControlCenter), ocpp-rpc (Node) in strict and non-strict mode, ocpp
(Python, on websockets), and the null server (fixed pre-encoded answers, the harness
ceiling). Workloads W1-W5 are described in bench/README.md and docs/performance.md.

The server runs on core 0 and the load generator on core 1 (``taskset``). Each run
gets a fresh server process; both processes get their own process group and are
killed at the end of the run, whatever happens.

Usage (from the repository root, with the project venv active):
    bench/setup.sh                     # once: installs the peers
    python bench/run.py                # full suite (about 25 minutes), writes docs
    python bench/run.py --smoke        # < 20 s, tiny counts, no docs
    python bench/run.py --workloads w1,w2 --servers ntxcp,null --reps 5
    python bench/run.py --report bench/results/<file>.jsonl   # docs from old results
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
PEERS_PY = BENCH / ".venv-peers" / "bin" / "python"
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "performance.md"
DOC_RESULTS = ROOT / "docs" / "performance.jsonl"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVER_ORDER = (
    "ntxcp",
    "service",
    "service-process",
    "service-pg",
    "ocpp-rpc-strict",
    "ocpp-rpc",
    "ocpp",
    "null",
)
WORKLOAD_ORDER = ("w1", "w2", "w3", "w3-10k", "w4", "w5")
LABELS = {
    "ntxcp": "ntxcp ControlCenter (strict)",
    "service": "ntxcp control-center service (SQLite, stored, durability disk)",
    "service-process": "ntxcp control-center service (SQLite, stored, durability process)",
    "service-pg": "ntxcp control-center service (PostgreSQL, stored, durability disk)",
    "ocpp-rpc-strict": "ocpp-rpc, strict mode",
    "ocpp-rpc": "ocpp-rpc, strict off",
    "ocpp": "ocpp (Python) on websockets",
    "null": "null server (harness ceiling)",
    "ntxcp-async": "ntxcp Gateway (async, uvloop)",
    "ntxcp-sync": "ntxcp.sync.Gateway (blocking)",
    "ocpp-rpc-strict-gw": "ocpp-rpc RPCClient, strict mode",
    "ocpp-rpc-gw": "ocpp-rpc RPCClient, strict off",
    "ocpp-gw": "ocpp ChargePoint client on websockets",
}
W5_ORDER = ("ntxcp-async", "ntxcp-sync", "ocpp-rpc-strict-gw", "ocpp-rpc-gw", "ocpp-gw")

# ----------------------------------------------------------------------------- servers


def _ok_import(python: Path | str, code: str) -> tuple[bool, str]:
    if not Path(python).exists():
        return False, f"{python} missing (run bench/setup.sh)"
    try:
        r = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["import failed"])[-1]
        return False, tail
    return True, ""


def _node_ok() -> tuple[bool, str]:
    if shutil.which("node") is None:
        return False, "node not found"
    if not (NODE_DIR / "node_modules" / "ocpp-rpc").is_dir():
        return False, "bench/node/node_modules missing (run bench/setup.sh)"
    return True, ""


@dataclass
class Server:
    name: str
    argv: list[str]
    flavor: str  # wire flavour the load generator speaks: ntxcp | ocpp16
    path: str
    check: Callable[[], tuple[bool, str]]
    cwd: Path = ROOT
    workloads: tuple[str, ...] | None = None  # None: every workload


SERVERS = {
    "ntxcp": Server(
        "ntxcp",
        [PY, str(BENCH / "servers" / "ntxcp_server.py")],
        "ntxcp",
        "/ntxcp",
        lambda: _ok_import(PY, "from ntxcp import ControlCenter; import uvloop"),
    ),
    # The whole service: every MeterValues is committed to SQLite (with the frame log)
    # before it is answered. Measured on W1/W2 only (it has no W4 mode; W3 is the
    # library's connection handling, the same code).
    "service": Server(
        "service",
        [PY, str(BENCH / "servers" / "service_server.py"), "--durability", "disk"],
        "ntxcp",
        "/ntxcp",
        lambda: _ok_import(PY, "from ntxcp.service import Service; import uvloop"),
        workloads=("w1", "w2"),
    ),
    "service-process": Server(
        "service-process",
        [PY, str(BENCH / "servers" / "service_server.py"), "--durability", "process"],
        "ntxcp",
        "/ntxcp",
        lambda: _ok_import(PY, "from ntxcp.service import Service; import uvloop"),
        workloads=("w1", "w2"),
    ),
    # The same service on PostgreSQL (a throw-away server on this machine, its defaults:
    # synchronous_commit on), measured in the same run as the SQLite rows.
    "service-pg": Server(
        "service-pg",
        [PY, str(BENCH / "servers" / "service_server.py"), "--backend", "postgresql"],
        "ntxcp",
        "/ntxcp",
        lambda: _ok_import(PY, "from ntxcp.service import Service; import uvloop, asyncpg"),
        workloads=("w1", "w2"),
    ),
    "ocpp-rpc-strict": Server(
        "ocpp-rpc-strict",
        ["node", str(NODE_DIR / "rpc_server.js"), "--strict", "1"],
        "ocpp16",
        "/ocpp",
        _node_ok,
        NODE_DIR,
    ),
    "ocpp-rpc": Server(
        "ocpp-rpc",
        ["node", str(NODE_DIR / "rpc_server.js"), "--strict", "0"],
        "ocpp16",
        "/ocpp",
        _node_ok,
        NODE_DIR,
    ),
    "ocpp": Server(
        "ocpp",
        [str(PEERS_PY), str(BENCH / "servers" / "ocpp_server.py")],
        "ocpp16",
        "/ocpp",
        lambda: _ok_import(PEERS_PY, "import ocpp.v16, websockets"),
    ),
    "null": Server(
        "null",
        [PY, str(BENCH / "servers" / "null_server.py")],
        "ntxcp",
        "/ntxcp",
        lambda: _ok_import(PY, "import picows, uvloop"),
    ),
}


@dataclass
class GatewayClient:
    """A W5 client: one gateway of some library, talking to the null server."""

    name: str
    argv: list[str]
    server: str  # the server entry whose availability this client shares
    check: Callable[[], tuple[bool, str]]
    cwd: Path = ROOT


W5_CLIENTS = {
    "ntxcp-async": GatewayClient(
        "ntxcp-async",
        [PY, str(BENCH / "clients" / "ntxcp_gateway.py"), "--kind", "async"],
        "ntxcp",
        lambda: _ok_import(PY, "from ntxcp import Gateway"),
    ),
    "ntxcp-sync": GatewayClient(
        "ntxcp-sync",
        [PY, str(BENCH / "clients" / "ntxcp_gateway.py"), "--kind", "sync"],
        "ntxcp",
        lambda: _ok_import(PY, "from ntxcp.sync import Gateway"),
    ),
    "ocpp-rpc-strict-gw": GatewayClient(
        "ocpp-rpc-strict-gw",
        ["node", str(NODE_DIR / "rpc_client.js"), "--strict", "1"],
        "ocpp-rpc-strict",
        _node_ok,
        NODE_DIR,
    ),
    "ocpp-rpc-gw": GatewayClient(
        "ocpp-rpc-gw",
        ["node", str(NODE_DIR / "rpc_client.js"), "--strict", "0"],
        "ocpp-rpc",
        _node_ok,
        NODE_DIR,
    ),
    "ocpp-gw": GatewayClient(
        "ocpp-gw",
        [str(PEERS_PY), str(BENCH / "clients" / "ocpp_client.py")],
        "ocpp",
        lambda: _ok_import(PEERS_PY, "import ocpp.v16, websockets"),
    ),
}

# --------------------------------------------------------------------------- workloads


def workload_params(smoke: bool, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    if smoke:
        # W1/W2 warm up for a second: on a busy machine a service's first commits (a
        # PostgreSQL server's above all) can take longer than the measured window.
        return {
            "w1": {"conns": 10, "warmup": 1.0, "duration": 0.25},
            "w2": {"conns": 1, "warmup": 1.0, "duration": 0.25},
            "w3": {"conns": 50, "hold": 0.25, "settle": 0.05, "pause": 0.05},
            "w4": {"conns": 10, "warmup": 0.05, "duration": 0.25},
            "w5": {"warmup": 0.05, "duration": 0.25},
        }
    d = args.duration
    return {
        "w1": {"conns": 100, "warmup": 2.0, "duration": d},
        "w2": {"conns": 1, "warmup": 1.0, "duration": d},
        "w3": {"conns": 5000, "hold": args.hold, "settle": 2.0, "pause": 1.0},
        "w3-10k": {"conns": 10000, "hold": args.hold, "settle": 2.0, "pause": 1.0},
        "w4": {"conns": 100, "warmup": 1.0, "duration": d},
        "w5": {"warmup": 1.0, "duration": d},
    }


# ----------------------------------------------------------------------- process utils

CHILDREN: list[Child] = []


class Child:
    """A child process in its own process group, its stdout lines fed to a queue."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        q: queue.Queue[tuple[str, str | None]],
        cpu: int | None,
        cwd: Path,
        log: Path,
    ) -> None:
        self.name = name
        if cpu is not None and PIN:
            argv = ["taskset", "-c", str(cpu), *argv]
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            cwd=cwd,
            start_new_session=True,
        )
        self.grace = 3.0
        """Seconds between SIGTERM and SIGKILL in :meth:`kill`."""
        CHILDREN.append(self)
        self.thread = threading.Thread(target=self._pump, args=(q,), daemon=True)
        self.thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self, q: queue.Queue[tuple[str, str | None]]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            q.put((self.name, line.rstrip("\n")))
        q.put((self.name, None))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Ask the process group to stop (SIGTERM), without waiting."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 3.0)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
        # the group may hold grandchildren even after the leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.thread.join(2.0)
        self.log.close()
        if self in CHILDREN:
            CHILDREN.remove(self)


def kill_all_children(*_: object) -> None:
    for c in list(CHILDREN):
        c.kill()


def cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def busy_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy, (v[7] if len(v) > 7 else 0)


def wait_for_quiet(limit_s: float, threshold_pct: float = 10.0) -> float | None:
    """Wait (at most ``limit_s``) until the machine is nearly idle; returns the last load.

    Other processes on the machine (test suites, builds) distort every number; the
    load seen in the last second is returned and recorded with the run.
    """
    deadline = time.monotonic() + limit_s
    load = None
    while True:
        b0, _ = busy_ticks()
        time.sleep(0.5)
        b1, _ = busy_ticks()
        load = 100.0 * (b1 - b0) / CLK_TCK / 0.5 / (os.cpu_count() or 1)
        if load <= threshold_pct or time.monotonic() >= deadline:
            return load


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


PIN = True
DISTURBED_PCT = 15.0  # other CPU load (percent of one core) above which a run is disturbed

# ------------------------------------------------------------------------------- runs


@dataclass
class Run:
    workload: str
    server: str
    rep: int
    record: dict[str, Any] = field(default_factory=dict)


def _events(q: queue.Queue[tuple[str, str | None]], deadline: float) -> Iterable[tuple[str, Any]]:
    while time.monotonic() < deadline:
        try:
            src, line = q.get(timeout=0.2)
        except queue.Empty:
            yield "", None
            continue
        if line is None:
            yield src, {"event": "eof"}
            continue
        if line.startswith("READY "):
            yield src, {"event": "ready", "port": int(line.split()[1])}
        elif line.startswith("{"):
            try:
                yield src, json.loads(line)
            except json.JSONDecodeError:
                continue


def run_one(
    server: Server,
    wl: str,
    p: dict[str, Any],
    rep: int,
    logdir: Path,
    smoke: bool,
    quiet_s: float = 0.0,
) -> dict[str, Any]:
    """One repetition of one workload against one server; returns a flat record."""
    q: queue.Queue[tuple[str, str | None]] = queue.Queue()
    rec: dict[str, Any] = {"workload": wl, "server": server.name, "rep": rep, "ok": False}
    tag = f"{wl}-{server.name}-{rep}"
    server_argv = [*server.argv, "--port", "0", "--max-runtime", "900"]
    conns = p.get("conns", 1)
    if wl != "w5":
        rec["conns"] = conns
    if wl == "w4":
        server_argv += [
            *("--w4-gateways", str(conns)),
            *("--w4-warmup", str(p["warmup"])),
            *("--w4-duration", str(p["duration"])),
            *("--w4-wait", "60"),
        ]
    if quiet_s > 0:
        rec["load_before_pct"] = wait_for_quiet(quiet_s)
    srv = Child("server", server_argv, q, 0, server.cwd, logdir / f"{tag}-server.log")
    if server.name == "service-pg":
        srv.grace = 30.0  # it removes its PostgreSQL server (not in its process group)
    client: Child | None = None
    snaps: dict[str, tuple[float, int | None, int | None, int, int]] = {}
    try:
        port = None
        for src, ev in _events(q, time.monotonic() + 60):
            if src == "server" and ev and ev.get("event") == "ready":
                port = ev["port"]
                break
            if src == "server" and ev and ev.get("event") == "eof":
                break
        if port is None:
            rec["error"] = f"server did not start (see {srv.log.name})"
            return rec
        time.sleep(0.2 if smoke else 0.5)
        rec["server_rss_start_kb"] = rss_kb(srv.pid)
        url = f"ws://127.0.0.1:{port}{server.path}"
        client_cwd = ROOT
        if wl == "w5":
            gw = W5_CLIENTS[server.name]
            client_cwd = gw.cwd
            client_argv = [
                *gw.argv,
                *("--url", url),
                *("--warmup", str(p["warmup"]), "--duration", str(p["duration"])),
            ]
        else:
            mode = {"w1": "calls", "w2": "calls", "w4": "answer"}.get(wl, "idle")
            client_argv = [
                PY,
                str(BENCH / "loadgen.py"),
                *("--mode", mode, "--flavor", server.flavor, "--url", url),
                *("--conns", str(conns), "--max-runtime", "600"),
            ]
            if mode == "calls":
                client_argv += ["--warmup", str(p["warmup"]), "--duration", str(p["duration"])]
            elif mode == "idle":
                client_argv += [
                    *("--hold", str(p["hold"]), "--settle", str(p["settle"])),
                    *("--pause", str(p["pause"]), "--hb-ms", "10"),
                    *("--source-ips", "1" if conns <= 5000 else "4"),
                ]
            else:
                client_argv += ["--hold", str(p["warmup"] + p["duration"] + 70)]
        client = Child("client", client_argv, q, 1, client_cwd, logdir / f"{tag}-client.log")
        budget = 900.0 if not smoke else 30.0
        need_server_result = wl == "w4"
        stores = wl == "w1" and server.name.startswith("service")  # bytes per sample
        got_client = got_server = False
        for src, ev in _events(q, time.monotonic() + budget):
            if ev is None:
                # Dead and every line of its output queued (the pump thread ended):
                # a result still in the pipe when the process exits is not lost.
                if (
                    not client.alive()
                    and not client.thread.is_alive()
                    and not need_server_result
                    and q.empty()
                ):
                    rec.setdefault("error", f"client exited early (see {client.log.name})")
                    break
                if not srv.alive() and not srv.thread.is_alive() and q.empty():
                    rec.setdefault("error", f"server died (see {srv.log.name})")
                    break
                continue
            name = ev.get("event")
            if name in ("window_start", "hold_start"):
                snaps["start"] = (
                    time.monotonic(),
                    cpu_ticks(srv.pid),
                    cpu_ticks(client.pid),
                    *busy_ticks(),
                )
            elif name in ("window_end", "hold_end"):
                snaps["end"] = (
                    time.monotonic(),
                    cpu_ticks(srv.pid),
                    cpu_ticks(client.pid),
                    *busy_ticks(),
                )
                if name == "hold_end":
                    rec["server_rss_hold_kb"] = rss_kb(srv.pid)
            elif name == "baseline":
                rec["server_rss_base_kb"] = rss_kb(srv.pid)
            elif name == "connected":
                rec["connect_seconds"] = ev.get("seconds")
            elif name == "result":
                body = {k: v for k, v in ev.items() if k != "event"}
                if src == "server":
                    got_server = True
                    rec.update({f"server_{k}": v for k, v in body.items()})
                else:
                    got_client = True
                    rec.update(body)
            elif name == "eof" and src == "server" and not got_server and need_server_result:
                rec["error"] = f"server exited early (see {srv.log.name})"
                break
            if got_server if need_server_result else got_client:
                if got_client and stores and not got_server:
                    # The service reports its database's growth once stopped (SIGTERM).
                    srv.stop()
                    need_server_result = True
                    continue
                break
        else:
            rec["error"] = "run budget exceeded"
        if "start" in snaps and "end" in snaps:
            (t0, s0, c0, b0, st0), (t1, s1, c1, b1, st1) = snaps["start"], snaps["end"]
            wall = max(t1 - t0, 1e-9)
            own = 0.0
            if s0 is not None and s1 is not None:
                rec["server_cpu_pct"] = 100.0 * (s1 - s0) / CLK_TCK / wall
                own += rec["server_cpu_pct"]
            if c0 is not None and c1 is not None:
                rec["client_cpu_pct"] = 100.0 * (c1 - c0) / CLK_TCK / wall
                own += rec["client_cpu_pct"]
            # CPU used by everything else on the machine (percent of one core)
            rec["other_cpu_pct"] = max(0.0, 100.0 * (b1 - b0) / CLK_TCK / wall - own)
            rec["steal_pct"] = 100.0 * (st1 - st0) / CLK_TCK / wall
        finish(rec, wl)
        return rec
    finally:
        if client is not None:
            client.kill()
        srv.kill()


def finish(rec: dict[str, Any], wl: str) -> None:
    """Derive the headline numbers of a run and decide whether it is valid."""
    if "error" in rec:
        return
    errors = sum(
        int(rec.get(k) or 0)
        for k in ("call_errors", "timeouts", "unexpected_closes", "connect_failed", "errors")
    )
    rec["errors_total"] = errors + int(rec.get("server_errors") or 0)
    if wl == "w4":
        rec["calls_per_s"] = rec.get("server_calls_per_s")
        rec["ok"] = "server_calls_per_s" in rec
    elif wl.startswith("w3"):
        base, hold = rec.get("server_rss_base_kb"), rec.get("server_rss_hold_kb")
        n = rec.get("connected") or 0
        if base is not None and hold is not None and n:
            rec["rss_per_conn_kb"] = (hold - base) / n
        rec["held_without_error"] = (
            rec.get("connected") == rec.get("conns")
            and rec.get("still_open") == rec.get("conns")
            and rec["errors_total"] == 0
        )
        rec["ok"] = "rss_per_conn_kb" in rec
    else:
        rec["ok"] = bool(rec.get("calls"))


# --------------------------------------------------------------------------- summaries


def med(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def summarize(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["workload"], r["server"]), []).append(r)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    keys = (
        "calls_per_s",
        "p50_ms",
        "p99_ms",
        "server_cpu_pct",
        "client_cpu_pct",
        "rss_per_conn_kb",
        "server_rss_hold_kb",
        "server_rss_base_kb",
        "connect_seconds",
        "errors_total",
        "connected",
        "still_open",
        "other_cpu_pct",
        "steal_pct",
        "server_bytes_per_sample",
    )
    for key, rs in groups.items():
        good = [r for r in rs if r.get("ok")]
        # Runs disturbed by other processes on the machine are set aside when enough
        # undisturbed ones exist.
        clean = [r for r in good if (r.get("other_cpu_pct") or 0.0) <= DISTURBED_PCT]
        if clean:
            good = clean
        s: dict[str, Any] = {k: med(r.get(k) for r in good) for k in keys}
        s["runs"] = len(rs)
        s["valid_runs"] = len(good)
        s["all_disturbed"] = not clean and bool(good)
        s["errors_max"] = max((int(r.get("errors_total") or 0) for r in good), default=None)
        s["held_all"] = all(r.get("held_without_error") for r in good) if good else None
        s["conns"] = rs[0].get("conns")
        s["failures"] = sorted({str(r["error"]) for r in rs if r.get("error")})
        out[key] = s
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if digits == 0:
            return f"{v:,.0f}"
        return f"{v:,.{digits}f}"
    return str(v)


def runs_cell(s: dict[str, Any]) -> str:
    cell = f"{s['valid_runs']}/{s['runs']}"
    return cell + " (disturbed)" if s.get("all_disturbed") else cell


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def tables(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Markdown tables (also printed to the terminal)."""
    lines: list[str] = []

    def conns_of(wl: str) -> str:
        n = next((s["conns"] for (w, _), s in summary.items() if w == wl), None)
        return f"{n:,}" if isinstance(n, int) else "?"

    def rows(wl: str) -> list[tuple[str, dict[str, Any]]]:
        names = [*SERVER_ORDER, *W5_ORDER]
        return [(n, summary[(wl, n)]) for n in names if (wl, n) in summary]

    if any(k[0] == "w1" for k in summary):
        lines += [
            f"### W1 — {conns_of('w1')} gateways, MeterValues back to back "
            "(one outstanding per connection)",
            "",
            "| server | calls/s | p50 ms | p99 ms | server CPU | load gen CPU | other load "
            "| errors | runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, s in rows("w1"):
            lines.append(
                f"| {LABELS[n]} | {fmt(s['calls_per_s'])} | {fmt(s['p50_ms'], 3)} "
                f"| {fmt(s['p99_ms'], 3)} | {fmt(s['server_cpu_pct'])} % "
                f"| {fmt(s['client_cpu_pct'])} % | {fmt(s['other_cpu_pct'])} % "
                f"| {fmt(s['errors_max'])} | {runs_cell(s)} |"
            )
        lines.append("")
    if any(k[0] == "w2" for k in summary):
        lines += [
            "### W2 — 1 gateway, MeterValues back to back",
            "",
            "| server | calls/s | p50 ms | p99 ms | server CPU | load gen CPU | other load "
            "| runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, s in rows("w2"):
            lines.append(
                f"| {LABELS[n]} | {fmt(s['calls_per_s'])} | {fmt(s['p50_ms'], 3)} "
                f"| {fmt(s['p99_ms'], 3)} | {fmt(s['server_cpu_pct'])} % "
                f"| {fmt(s['client_cpu_pct'])} % | {fmt(s['other_cpu_pct'])} % "
                f"| {runs_cell(s)} |"
            )
        lines.append("")
    stored = [(n, s) for n, s in rows("w1") if s.get("server_bytes_per_sample") is not None]
    if stored:
        lines += [
            "### The service's database: bytes on disk per stored sample (after W1)",
            "",
            "Growth of the database during the W1 runs (from the empty schema; SQLite: the "
            "file after its final checkpoint, PostgreSQL: `pg_database_size` after a "
            "`CHECKPOINT`), frame log included, divided by the sampled values stored.",
            "",
            "| server | bytes per sample |",
            "|---|---:|",
        ]
        for n, s in stored:
            lines.append(f"| {LABELS[n]} | {fmt(s['server_bytes_per_sample'], 1)} |")
        lines.append("")
    for wl in ("w3", "w3-10k"):
        if not any(k[0] == wl for k in summary):
            continue
        n_conns = next(s["conns"] for (w, _), s in summary.items() if w == wl)
        lines += [
            f"### {wl.upper()} — {fmt(float(n_conns or 0))} idle gateways (each booted), "
            "one more sends Heartbeat every 10 ms",
            "",
            "| server | RSS per idle gateway KB | server RSS MB (idle+N) | Heartbeat p50 ms "
            "| Heartbeat p99 ms | connect+boot s | held without error | other load | runs |",
            "|---|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for n, s in rows(wl):
            rss_mb = s["server_rss_hold_kb"] / 1024 if s["server_rss_hold_kb"] else None
            lines.append(
                f"| {LABELS[n]} | {fmt(s['rss_per_conn_kb'], 1)} | {fmt(rss_mb, 1)} "
                f"| {fmt(s['p50_ms'], 3)} | {fmt(s['p99_ms'], 3)} "
                f"| {fmt(s['connect_seconds'], 1)} | {fmt(s['held_all'])} "
                f"| {fmt(s['other_cpu_pct'])} % | {runs_cell(s)} |"
            )
        lines.append("")
    if any(k[0] == "w4" for k in summary):
        lines += [
            f"### W4 — the server calls GetConfiguration on {conns_of('w4')} gateways "
            "(one outstanding per gateway)",
            "",
            "| server | server-side calls/s | server CPU | load gen CPU | other load | errors "
            "| runs |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for n, s in rows("w4"):
            lines.append(
                f"| {LABELS[n]} | {fmt(s['calls_per_s'])} | {fmt(s['server_cpu_pct'])} % "
                f"| {fmt(s['client_cpu_pct'])} % | {fmt(s['other_cpu_pct'])} % "
                f"| {fmt(s['errors_max'])} | {runs_cell(s)} |"
            )
        lines.append("")
    if any(k[0] == "w5" for k in summary):
        lines += [
            "### W5 — one gateway (client side) sending MeterValues back to back "
            "to the null server",
            "",
            "| gateway | calls/s | p50 ms | p99 ms | gateway CPU | null server CPU "
            "| other load | runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, s in rows("w5"):
            lines.append(
                f"| {LABELS[n]} | {fmt(s['calls_per_s'])} | {fmt(s['p50_ms'], 3)} "
                f"| {fmt(s['p99_ms'], 3)} | {fmt(s['client_cpu_pct'])} % "
                f"| {fmt(s['server_cpu_pct'])} % | {fmt(s['other_cpu_pct'])} % "
                f"| {runs_cell(s)} |"
            )
        lines.append("")
    return lines


def targets(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    def get(wl: str, srv: str, key: str) -> Any:
        s = summary.get((wl, srv))
        return None if s is None else s.get(key)

    def verdict(ok: bool | None, *rows: tuple[str, str]) -> str:
        if ok is None:
            return "not measured"
        text = "met" if ok else "**not met**"
        if any(summary.get(r, {}).get("all_disturbed") for r in rows):
            text += " (disturbed runs: indicative only)"
        return text

    def check(v: float | None, ok: Callable[[float], bool]) -> bool | None:
        return None if v is None else ok(v)

    w1_rpc = ratio(get("w1", "ntxcp", "calls_per_s"), get("w1", "ocpp-rpc-strict", "calls_per_s"))
    w1_ocpp = ratio(get("w1", "ntxcp", "calls_per_s"), get("w1", "ocpp", "calls_per_s"))
    w2 = get("w2", "ntxcp", "p50_ms")
    w3_rss = get("w3", "ntxcp", "rss_per_conn_kb")
    w3_p99 = get("w3", "ntxcp", "p99_ms")
    w3k = get("w3-10k", "ntxcp", "held_all")
    w3k_rss = get("w3-10k", "ntxcp", "rss_per_conn_kb")
    w4 = ratio(get("w4", "ntxcp", "calls_per_s"), get("w4", "ocpp-rpc-strict", "calls_per_s"))
    w5 = get("w5", "ntxcp-async", "calls_per_s")
    sv1 = get("w1", "service", "calls_per_s")
    sv1_p99 = get("w1", "service", "p99_ms")
    sv_ratio = ratio(sv1, get("w1", "ntxcp", "calls_per_s"))
    sv2 = get("w2", "service", "calls_per_s")
    sv2_p50 = get("w2", "service", "p50_ms")
    sv2_process_p50 = get("w2", "service-process", "p50_ms")

    def at_least(goal: float) -> Callable[[float], bool]:
        return lambda v: v >= goal

    def at_most(goal: float) -> Callable[[float], bool]:
        return lambda v: v <= goal

    w1n, w1r, w1o = ("w1", "ntxcp"), ("w1", "ocpp-rpc-strict"), ("w1", "ocpp")
    w3n, w3k_n = ("w3", "ntxcp"), ("w3-10k", "ntxcp")
    w4n, w4r = ("w4", "ntxcp"), ("w4", "ocpp-rpc-strict")
    rows = [
        (
            "W1 calls/s vs ocpp-rpc strict",
            ">= 1.0x",
            fmt_ratio(w1_rpc),
            verdict(check(w1_rpc, at_least(1)), w1n, w1r),
        ),
        (
            "W1 calls/s vs ocpp (Python)",
            ">= 15x",
            fmt_ratio(w1_ocpp),
            verdict(check(w1_ocpp, at_least(15)), w1n, w1o),
        ),
        (
            "W2 p50 latency",
            "<= 0.1 ms",
            f"{fmt(w2, 3)} ms",
            verdict(check(w2, at_most(0.1)), ("w2", "ntxcp")),
        ),
        (
            "W3 RSS per idle gateway (5,000)",
            "<= 16 KB",
            f"{fmt(w3_rss, 1)} KB",
            verdict(check(w3_rss, at_most(16)), w3n),
        ),
        (
            "W3 RSS per idle gateway (10,000)",
            "<= 16 KB",
            f"{fmt(w3k_rss, 1)} KB",
            verdict(check(w3k_rss, at_most(16)), w3k_n),
        ),
        (
            "W3 Heartbeat p99 under 5,000 idle",
            "<= 2 ms",
            f"{fmt(w3_p99, 3)} ms",
            verdict(check(w3_p99, at_most(2)), w3n),
        ),
        ("W3 10,000 gateways held without error", "yes", fmt(w3k), verdict(w3k, w3k_n)),
        (
            "W4 server-side calls/s vs ocpp-rpc strict",
            ">= 2x",
            fmt_ratio(w4),
            verdict(check(w4, at_least(2)), w4n, w4r),
        ),
        (
            "W5 async gateway calls/s",
            ">= 10,000",
            fmt(w5),
            verdict(check(w5, at_least(10_000)), ("w5", "ntxcp-async")),
        ),
    ]
    sw1, sw2, sw2p = ("w1", "service"), ("w2", "service"), ("w2", "service-process")
    rows += [
        (
            "service W1 stored MeterValues/s (durability disk)",
            ">= 15,000",
            fmt(sv1),
            verdict(check(sv1, at_least(15_000)), sw1),
        ),
        (
            "service W1 p99 (durability disk)",
            "<= 25 ms",
            f"{fmt(sv1_p99, 3)} ms",
            verdict(check(sv1_p99, at_most(25)), sw1),
        ),
        (
            "service ÷ library on W1",
            ">= 0.3x",
            fmt_ratio(sv_ratio),
            verdict(check(sv_ratio, at_least(0.3)), sw1, w1n),
        ),
        (
            "service W2 stored MeterValues/s (durability disk)",
            ">= 5,000",
            fmt(sv2),
            verdict(check(sv2, at_least(5_000)), sw2),
        ),
        (
            "service W2 p50 (durability disk)",
            "<= 0.5 ms",
            f"{fmt(sv2_p50, 3)} ms",
            verdict(check(sv2_p50, at_most(0.5)), sw2),
        ),
        (
            "service W2 p50 (durability process)",
            "<= 0.2 ms",
            f"{fmt(sv2_process_p50, 3)} ms",
            verdict(check(sv2_process_p50, at_most(0.2)), sw2p),
        ),
    ]
    lines = ["| target | goal | ntxcp | verdict |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def ratios_text(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    out = []
    for wl in ("w1", "w4"):
        nt = summary.get((wl, "ntxcp"), {}).get("calls_per_s")
        for peer in ("ocpp-rpc-strict", "ocpp-rpc", "ocpp", "null"):
            pv = summary.get((wl, peer), {}).get("calls_per_s")
            r = ratio(nt, pv)
            if r is not None:
                out.append(f"{wl.upper()} ntxcp / {peer}: {r:.2f}x")
    for service in ("service", "service-process"):
        r = ratio(
            summary.get(("w1", service), {}).get("calls_per_s"),
            summary.get(("w1", "ntxcp"), {}).get("calls_per_s"),
        )
        if r is not None:
            out.append(f"W1 {service} / ntxcp library: {r:.2f}x")
    return out


# ------------------------------------------------------------------------ environment


def _run_text(argv: list[str], cwd: Path = ROOT) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip()


def machine() -> dict[str, Any]:
    model = ""
    for line in _run_text(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    versions: dict[str, str] = {}
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    for py, names in (
        (PY, ["ntxcp", "picows", "uvloop", "msgspec"]),
        (str(PEERS_PY), ["ocpp", "websockets", "jsonschema"]),
    ):
        if Path(py).exists():
            with contextlib.suppress(json.JSONDecodeError):
                versions.update(json.loads(_run_text([py, "-c", code, *names]) or "{}"))
    for pkg in ("ocpp-rpc", "ws"):
        pj = NODE_DIR / "node_modules" / pkg / "package.json"
        if pj.exists():
            versions[pkg] = json.loads(pj.read_text())["version"]
    return {
        "cpu_model": model or platform.processor(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _run_text(["node", "--version"]).lstrip("v") or None,
        "versions": versions,
    }


def disturbance_note(records: list[dict[str, Any]]) -> list[str]:
    measured = [r for r in records if "other_cpu_pct" in r]
    bad = [r for r in measured if r["other_cpu_pct"] > DISTURBED_PCT]
    if not bad:
        return []
    worst = max(r["other_cpu_pct"] for r in bad)
    return [
        f"> **Disturbed measurement.** During {len(bad)} of {len(measured)} runs other",
        f"> processes on the machine used more than {DISTURBED_PCT:.0f} % of a core (up to",
        f"> {worst:.0f} %), so these numbers, and the ratios most of all, are indicative",
        "> only. Re-run `python bench/run.py` on a quiet machine before quoting them.",
        "",
    ]


EXTRA_KINDS = ("storage", "api", "load")


def run_service_extras(
    args: argparse.Namespace, smoke: bool, servers: list[Server], fh_path: Path
) -> list[dict[str, Any]]:
    """The service's storage and API benchmarks, recorded in the same results file."""
    names = [s.name for s in servers]
    backends = [b for b, n in (("sqlite", "service"), ("postgresql", "service-pg")) if n in names]
    if not backends:
        return []
    samples = args.storage_samples
    if samples is None:
        samples = 20_000 if smoke else 10_000_000
    commands: list[list[str]] = []
    if samples > 0:
        repeat = "3" if smoke else "20"
        # The smoke run keeps to SQLite (the PostgreSQL fill is the same script).
        for backend in [b for b in backends if not smoke or b == "sqlite"]:
            commands.append(
                [
                    PY,
                    str(BENCH / "service_storage.py"),
                    *("--samples", str(samples), "--repeat", repeat, "--backend", backend),
                ]
            )
    if not args.no_api:
        duration = "1" if smoke else str(min(args.duration, 10.0))
        for backend in backends:
            commands.append(
                [PY, str(BENCH / "service_api.py"), "--duration", duration, "--backend", backend]
            )
    extras: list[dict[str, Any]] = []
    for argv in commands:
        name = Path(argv[1]).stem
        print(f"running {name} ...", flush=True)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=3600, cwd=ROOT, check=False
            )
        except subprocess.TimeoutExpired:
            extras.append({"kind": "api" if "api" in name else "storage", "error": "timeout"})
            continue
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        if done.returncode or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            lines.append({"kind": "api" if "api" in name else "storage", "error": tail})
        extras += lines
    with fh_path.open("a") as fh:
        for extra in extras:
            fh.write(json.dumps(extra) + "\n")
    return extras


def _storage_text(title: str, extras: list[dict[str, Any]]) -> list[str]:
    """The database benchmark's tables for one backend."""
    out: list[str] = []
    fill = next((e for e in extras if e.get("item") == "fill"), None)
    size = next((e for e in extras if e.get("item") == "size"), None)
    queries = [e for e in extras if e.get("item") == "query"]
    if fill is not None and size is not None:
        out += [
            f"### The service's database ({title}) with {fill['samples']:,} sampled values",
            "",
            f"{fill['messages']:,} MeterValues messages of {size['gateways']} gateways (4 "
            f"sampled values each, one per gateway per minute) and {fill['frames']:,} frames "
            "in the frame log (each CALL and its answer, a Heartbeat every 5 minutes, a "
            "StatusNotification every hour), written with the service's own layout "
            "(`bench/service_storage.py`).",
            "",
            "| | bytes |",
            "|---|---:|",
            f"| database on disk per sampled value | {size['bytes_per_sample']:.1f} |",
            f"| of which the meter data | {size['data_bytes_per_sample']:.1f} |",
            f"| of which the frame log | {size['frame_log_bytes_per_sample']:.1f} |",
            "| growth per gateway per day at 1 MeterValues/min, data only | "
            f"{size['growth_per_gateway_day_data']:,.0f} |",
            f"| the same with the frame log | {size['growth_per_gateway_day_total']:,.0f} |",
            "",
        ]
    if queries:
        out += [
            f"Every query of the HTTP API and the dashboard on {title}, run through the "
            "service's read path against random gateways (target: 20 ms each):",
            "",
            "| query | p50 ms | max ms | rows | runs |",
            "|---|---:|---:|---:|---:|",
        ]
        for q in queries:
            out.append(
                f"| {q['query']} | {q['p50_ms']:.2f} | {q['max_ms']:.2f} | {q['rows']} "
                f"| {q['runs']} |"
            )
        out.append("")
    return out


def extras_text(extras: list[dict[str, Any]]) -> list[str]:
    """Markdown sections for the service's storage and API benchmarks."""
    out: list[str] = []
    errors = [e["error"] for e in extras if e.get("error")]
    apis = [e for e in extras if e.get("kind") == "api" and not e.get("error")]
    # A storage item belongs to the backend of the fill before it (older results name
    # no backend: SQLite).
    by_backend: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": []}
    backend = "sqlite"
    for extra in extras:
        if extra.get("kind") == "storage":
            if extra.get("item") == "fill":
                backend = extra.get("backend", "sqlite")
            by_backend.setdefault(backend, []).append(extra)
    for backend, title in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        out += _storage_text(title, by_backend[backend])
    if apis:
        out += [
            "### The service's HTTP API: command round trip",
            "",
            "`POST /api/gateways/{id}/calls/GetConfiguration` one after the other "
            "(`bench/service_api.py`; durability disk: the command log is committed "
            "before and after the call).",
            "",
            "| database | | round trips | p50 ms | p99 ms | ingest MeterValues/s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for api in apis:
            backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(
                api.get("backend", "sqlite"), "?"
            )
            out += [
                f"| {backend} | idle | {api['idle']['calls']} | {fmt(api['idle']['p50_ms'], 2)} "
                f"| {fmt(api['idle']['p99_ms'], 2)} | - |",
                f"| {backend} | during W1 ingest ({api['ingest_conns']} gateways) "
                f"| {api['loaded']['calls']} | {fmt(api['loaded']['p50_ms'], 2)} "
                f"| {fmt(api['loaded']['p99_ms'], 2)} | {fmt(api['ingest_calls_per_s'])} |",
            ]
        out.append("")
    if errors:
        out += ["Service benchmarks that failed: " + "; ".join(errors) + ".", ""]
    return out


def _load_lines(meta: dict[str, Any], extras: list[dict[str, Any]]) -> list[str]:
    """The machine's load average (1, 5, 15 minutes) at the start and the end of the run."""
    start = meta.get("load_average")
    end = next((e["load_average"] for e in extras if e.get("kind") == "load"), None)
    if start is None:
        return []
    text = f"- Load average (1/5/15 min) at the start: {' / '.join(f'{x:.2f}' for x in start)}"
    if end is not None:
        text += f"; at the end: {' / '.join(f'{x:.2f}' for x in end)}"
    busy = max(start[0], end[0] if end else 0.0) > 0.5 * int(meta["machine"].get("cpus") or 1)
    return [text + (" (a loaded machine: compare ratios within the run)" if busy else "")]


def write_doc(
    records: list[dict[str, Any]],
    meta: dict[str, Any],
    extras: list[dict[str, Any]],
    results: Path,
) -> None:
    """Write docs/performance.md and, beside it, the raw results it was made from."""
    DOC.write_text(render_doc(records, meta, extras))
    if results.resolve() != DOC_RESULTS.resolve():
        shutil.copyfile(results, DOC_RESULTS)
    print("wrote", DOC.relative_to(ROOT), "and", DOC_RESULTS.relative_to(ROOT))


def render_doc(
    records: list[dict[str, Any]],
    meta: dict[str, Any],
    extras: Sequence[dict[str, Any]] = (),
) -> str:
    summary = summarize(records)
    m = meta["machine"]
    v = m["versions"]
    reps = max((r["rep"] for r in records), default=0) + 1
    lib = ", ".join(f"{k} {v[k]}" for k in sorted(v))
    skipped = meta.get("skipped") or {}
    out = [
        "# Performance",
        "",
        "How fast ntxcp is next to the libraries one would otherwise pick for OCPP-style",
        "JSON-RPC over WebSocket: `ocpp` (Python) and `ocpp-rpc` (Node). This file is",
        "written by `bench/run.py` from one recorded run, whose raw results are kept",
        "beside it in `performance.jsonl` (`python bench/run.py --report",
        "docs/performance.jsonl` writes this page again); do not edit it by hand. See",
        "`bench/README.md` to reproduce it.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu_model']}, {m['cpus']} cores (server pinned to core 0, load "
        "generator to core 1 with `taskset`)",
        f"- Linux {m['kernel']}, Python {m['python']}, Node {m['node'] or '-'}",
        f"- Libraries: {lib}",
        f"- Run: {meta['started']} UTC, {reps} repetition(s) per server x workload, "
        "medians shown; command `" + meta["command"] + "`",
        *_load_lines(meta, extras),
        "",
        "## Method",
        "",
        "- Every server answers the same workloads. ntxcp speaks `ntxcp1.0` at",
        "  `ws://127.0.0.1:PORT/ntxcp/<gatewayId>`; the peers speak `ocpp1.6` with the",
        "  OCPP 1.6 equivalents of the payloads (`connectorId` for `serviceId`,",
        "  `chargePointModel`/`chargePointVendor` in BootNotification).",
        "- MeterValues payload: one meter value with four sampled values (energy Wh,",
        "  power W, current A, voltage V).",
        "- ntxcp runs with its defaults (strict validation, uvloop). `ocpp` runs as its",
        "  documentation shows (a `ChargePoint` subclass with `@on(Action...)` handlers,",
        "  `websockets.serve`, default asyncio loop, schema validation on). `ocpp-rpc`",
        "  runs as its README shows, with `strictMode` on and off.",
        "- The load generator (`bench/loadgen.py`, picows on uvloop) pre-encodes every",
        "  message and checks answers by type and uniqueId only. Each gateway boots",
        "  (BootNotification) before the measured part. Its CPU use and the server's are",
        "  read from `/proc/<pid>/stat` over the measured window (100 % = one core).",
        "- The null server (`bench/servers/null_server.py`, picows on uvloop) answers",
        "  with fixed pre-encoded messages and no validation: its row is the ceiling of",
        "  the harness on this machine, not a competitor.",
        '- "other load" is the CPU time used by every other process on the machine',
        "  during the window (from `/proc/stat`, percent of one core). Runs with more",
        f"  than {DISTURBED_PCT:.0f} % are set aside when undisturbed runs of the same row",
        '  exist; "runs" counts the runs behind the medians / the runs made, and',
        '  "(disturbed)" marks rows where every run was disturbed.',
        "- W3: RSS per idle gateway = (server VmRSS after N gateways connected and",
        "  booted - VmRSS with only the heartbeat gateway) / N, read from",
        "  `/proc/<pid>/status` at the end of the hold.",
        "",
        *disturbance_note(records),
        "## Targets",
        "",
        *targets(summary),
        "",
        "## Results",
        "",
        *tables(summary),
    ]
    ratios = ratios_text(summary)
    if ratios:
        out += ["Ratios of medians: " + "; ".join(ratios) + ".", ""]
    out += extras_text(list(extras))
    if skipped:
        out += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + ".", ""]
    failures = [
        f"{wl}/{srv}: {', '.join(s['failures'])}"
        for (wl, srv), s in sorted(summary.items())
        if s["failures"]
    ]
    if failures:
        out += ["Failed runs: " + "; ".join(failures) + ".", ""]
    out += ["## Limits of the harness", "", *LIMITS, ""]
    return "\n".join(out)


LIMITS = [
    "- Two cores only: the server gets one core and the load generator the other, so",
    "  a result close to the null server's row is bounded by the load generator, not",
    "  by the server. The machine is a virtual machine (KVM) shared with other work:",
    '  the "other load" column says how much CPU other processes took.',
    "- An idle virtual CPU wakes up slowly: the W3 Heartbeat tail (p99 of a few ms)",
    "  shows even against the null server, so it bounds what W3 can resolve.",
    "- Loopback only: no network latency or bandwidth limit; latencies are lower than",
    "  on a real network and favour the fastest implementation.",
    "- The load generator is Python (picows on uvloop); its per-message cost is small",
    "  but not zero. Its CPU use is reported next to each row.",
    "- Node runs single-threaded like the Python servers (no cluster).",
]

# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    global PIN
    ap = argparse.ArgumentParser(description="ntxcp benchmark suite")
    ap.add_argument("--smoke", action="store_true", help="tiny run (< 20 s), no docs")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    ap.add_argument("--workloads", default=None, help="comma list of " + ",".join(WORKLOAD_ORDER))
    ap.add_argument("--servers", default=None, help="comma list of " + ",".join(SERVER_ORDER))
    ap.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    ap.add_argument("--hold", type=float, default=15.0, help="W3 idle hold, seconds")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/performance.md")
    ap.add_argument("--report", type=Path, default=None, help="render docs from a jsonl file")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument(
        "--storage-samples",
        type=int,
        default=None,
        help="sampled values in the service's database benchmark (default 10,000,000; "
        "smoke 20,000; 0: skip it)",
    )
    ap.add_argument(
        "--no-api", action="store_true", help="skip the service's API round-trip benchmark"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run wait up to this many seconds for other CPU load to drop "
        "(default 15, smoke 0)",
    )
    args = ap.parse_args(argv)

    if args.report is not None:
        records, meta, extras = [], None, []
        for line in args.report.read_text().splitlines():
            obj = json.loads(line)
            if obj.get("kind") == "meta":
                meta = obj
            elif obj.get("kind") in EXTRA_KINDS:
                extras.append(obj)
            else:
                records.append(obj)
        if meta is None:
            print("no meta line in", args.report, file=sys.stderr)
            return 2
        write_doc(records, meta, extras, args.report)
        return 0

    PIN = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    smoke = args.smoke
    reps = args.reps if args.reps is not None else (1 if smoke else 3)
    quiet_s = args.quiet_wait if args.quiet_wait is not None else (0.0 if smoke else 15.0)
    params = workload_params(smoke, args)
    wls = [w for w in (args.workloads.split(",") if args.workloads else WORKLOAD_ORDER)]
    wls = [w for w in wls if w in params]
    wanted = args.servers.split(",") if args.servers else list(SERVER_ORDER)
    started = time.monotonic()

    servers: list[Server] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        if name not in SERVERS:
            print(f"unknown server {name}", file=sys.stderr)
            return 2
        good, why = SERVERS[name].check()
        if good:
            servers.append(SERVERS[name])
        else:
            skipped[name] = why
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if hard < 20_000 and any(w == "w3-10k" for w in wls):
        print(f"warning: file descriptor hard limit is {hard}; W3-10k may fail")

    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = RESULTS / f"{'smoke-' if smoke else ''}{stamp}.jsonl"
    logdir = RESULTS / "logs" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": "meta",
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "skipped": skipped,
        "smoke": smoke,
        "params": params,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    records: list[dict[str, Any]] = []
    null_ok = "null" in [s.name for s in servers] or SERVERS["null"].check()[0]
    plan: list[tuple[str, Server]] = []
    for wl in wls:
        if wl == "w5":
            if not null_ok:
                skipped["w5"] = "the null server is not available"
                continue
            null = SERVERS["null"]
            for gw in W5_CLIENTS.values():
                if gw.server not in wanted or (smoke and not gw.name.startswith("ntxcp")):
                    continue
                good, why = gw.check()
                if not good:
                    skipped[gw.name] = why
                    continue
                plan.append((wl, Server(gw.name, null.argv, "ntxcp", "/ntxcp", null.check)))
            continue
        # The smoke run keeps the peers to W1 and W4 (the ratio workloads) to stay short.
        peers_here = not smoke or wl in ("w1", "w4")
        plan += [
            (wl, s)
            for s in servers
            if (s.workloads is None or wl in s.workloads)
            and (peers_here or s.name in ("ntxcp", "null"))
        ]
    extras: list[dict[str, Any]] = []
    try:
        with out_path.open("w") as fh:
            fh.write(json.dumps(meta) + "\n")
            for rep in range(reps):
                for wl, srv in plan:
                    t = time.monotonic()
                    rec = run_one(srv, wl, params[wl], rep, logdir, smoke, quiet_s)
                    rec["wall_s"] = round(time.monotonic() - t, 2)
                    records.append(rec)
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    print(one_line(rec), flush=True)
        extras = run_service_extras(args, smoke, servers, fh_path=out_path)
        with out_path.open("a") as fh:  # the load average at the end, beside the start's
            end = {"kind": "load", "load_average": [round(x, 2) for x in os.getloadavg()]}
            fh.write(json.dumps(end) + "\n")
            extras.append(end)
    finally:
        kill_all_children()

    summary = summarize(records)
    print()
    print("\n".join(tables(summary)))
    for line in ratios_text(summary):
        print(line)
    if skipped:
        print("peers skipped: " + ", ".join(f"{k} ({v})" for k, v in skipped.items()))
    print(f"results: {out_path.relative_to(ROOT)}  ({time.monotonic() - started:.1f} s)")
    for line in extras_text(extras):
        print(line)
    if not smoke and not args.no_docs:
        write_doc(records, meta, extras, out_path)
    bad = [r for r in records if not r.get("ok")]
    if smoke and (bad or not records):
        print(f"smoke: {len(bad)} failed run(s) of {len(records)}", file=sys.stderr)
        return 1
    return 0


def one_line(rec: dict[str, Any]) -> str:
    parts = [f"{rec['workload']:7} {rec['server']:16} rep {rec['rep']}"]
    if rec.get("error"):
        return parts[0] + "  ERROR " + str(rec["error"])
    if rec["workload"].startswith("w3"):
        parts.append(
            f"rss/conn {fmt(rec.get('rss_per_conn_kb'), 1)} KB  hb p50 {fmt(rec.get('p50_ms'), 3)}"
            f" p99 {fmt(rec.get('p99_ms'), 3)} ms  open {rec.get('still_open')}/{rec.get('conns')}"
        )
    else:
        parts.append(f"{fmt(rec.get('calls_per_s'))} calls/s")
        if rec.get("p50_ms") is not None:
            parts.append(f"p50 {fmt(rec.get('p50_ms'), 3)} p99 {fmt(rec.get('p99_ms'), 3)} ms")
    parts.append(
        f"cpu srv {fmt(rec.get('server_cpu_pct'))}% gen {fmt(rec.get('client_cpu_pct'))}%"
        f" other {fmt(rec.get('other_cpu_pct'))}%  errors {rec.get('errors_total')}"
    )
    return "  ".join(parts)


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        kill_all_children()
