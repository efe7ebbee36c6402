"""The control center on 1 and 2 nodes: ingest, command round trips, idle gateways.

Starts a throw-away PostgreSQL and NATS (``ntxcp.localservers``), then for 1 and for
2 nodes (``ntxcp control-center --cluster``, a fresh database each time; HAProxy in
front of 2 nodes):

* **ingest**: ``bench/loadgen.py --mode calls`` (``--conns`` gateways sending
  MeterValues back to back, one outstanding each) through the front door (the node
  itself for 1 node); a node answers a MeterValues only after its commit, so answered
  calls/s are stored MeterValues/s. The rows in PostgreSQL are counted afterwards as a
  check, and the CPU time each part spent (nodes, PostgreSQL's processes, HAProxy,
  NATS; from ``/proc``) is divided by them: the cost of a stored message by part;
* **command round trip**: one library gateway answering ``GetConfiguration`` is
  connected to node 1; ``POST /api/gateways/BENCH-GW/calls/GetConfiguration`` on
  node 1 (same node) and, with 2 nodes, on node 2 (cross node: NATS request-reply to
  node 1), one of each per round in a shuffled order, so that both kinds share the
  same period and the same load of the machine: p50/p99 ms;
* **idle gateways** (2 nodes only): ``--idle`` gateways held, half connected straight
  to each node by ``loadgen.py --mode idle``; each node's RSS before and while they
  are held gives the memory per gateway per node.

The 1-node figures are the baseline of the 2-node ones in the same run. Prints one
JSON line per measurement and a table. ``--smoke``: tiny and short (for CI).

Everything it starts (servers, nodes, load generators) is stopped and its work
directory (node logs, the nodes' shared server key) deleted on every way out: a
normal end, an exception, Ctrl-C, and, through the guardian process of
``ntxcp.localservers.reaper``, the benchmark's own SIGTERM or SIGKILL. ``--keep``
keeps the work directory and prints where it is.

    python bench/cluster.py [--duration 10] [--conns 100] [--calls 500] [--idle 10000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
from service_api import Answering, round_trip, summary

import ntxcp
from ntxcp.localservers.haproxy import Backend, HAProxy
from ntxcp.localservers.nats import NatsServer
from ntxcp.localservers.node import NodeProcess
from ntxcp.localservers.postgres import PostgresServer
from ntxcp.localservers.reaper import Reaper

BENCH = Path(__file__).resolve().parent
PY = sys.executable
Server = TypeVar("Server", NatsServer, PostgresServer, HAProxy)


class Parts:
    """What the benchmark starts, stopped newest first on every way out.

    :meth:`close` runs on a normal end, an exception and Ctrl-C. If the benchmark is
    killed instead (SIGTERM, SIGKILL, the smoke test's timeout), the guardian process
    (:class:`~ntxcp.localservers.reaper.Reaper`) ends the same children and deletes
    the same directories once its pipe closes.

    Args:
        keep: keep the work directory (node logs, the nodes' server key) and say where.
    """

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix="ntxcp-bench-cluster-"))
        self.reaper = Reaper()
        self.stops = contextlib.ExitStack()
        if not keep:
            self.reaper.watch_dir(self.work)
            self.stops.callback(shutil.rmtree, self.work, ignore_errors=True)

    def start(self, server: Server, stops: contextlib.ExitStack | None = None) -> Server:
        """Start a local server, removed (stopped, its files deleted) with ``stops``."""
        self.reaper.watch_dir(server.directory)
        if isinstance(server, PostgresServer):
            self.reaper.watch_postmaster(server.data_directory)
        else:  # told of the process as soon as it exists: a kill during the start
            server.spawned = self.reaper.watch_pid
        (stops or self.stops).callback(server.remove)
        server.start()
        return server

    def start_node(self, node: NodeProcess, stops: contextlib.ExitStack) -> None:
        """Start a node (made with ``spawned=reaper.watch_pid``), stopped with ``stops``."""
        stops.callback(stop_node, node)
        node.start(timeout=60)

    def loadgen(self, *args: str, budget: float) -> subprocess.Popen[str]:
        """``bench/loadgen.py`` with ``args``, ended after ``budget`` s at the latest."""
        proc = subprocess.Popen(
            [PY, str(BENCH / "loadgen.py"), *args, "--max-runtime", str(budget)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.stops.callback(end_process, proc)
        self.reaper.watch_pid(proc.pid)
        return proc

    def close(self) -> None:
        """Stop everything, newest first, then dismiss the guardian."""
        try:
            self.stops.close()
        finally:
            self.reaper.done()
            if self.keep:
                print(f"work directory kept: {self.work}", flush=True)


def stop_node(node: NodeProcess) -> None:
    if node.running:
        node.stop(15)


def end_process(proc: subprocess.Popen[str]) -> None:
    """Kill a load generator still running (an error cut the benchmark short)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def family(pid: int) -> list[int]:
    """A process and its children (PostgreSQL's postmaster and its backends)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return [pid, *children]


class CpuWatch:
    """The CPU time each part of the cluster spends over a window, in seconds."""

    def __init__(self, parts: dict[str, list[int]]) -> None:
        self.parts = parts
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.parts.items()}

    def spent(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self.start[name] for name in self.parts}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


class Cluster:
    """``count`` nodes on a fresh database, with HAProxy in front of 2 or more.

    A context manager: whatever started is stopped on leaving, also when a node or
    HAProxy fails to start.
    """

    def __init__(self, parts: Parts, postgres: PostgresServer, nats: NatsServer, count: int):
        self.parts = parts
        self.postgres = postgres
        self.nats = nats
        self.database = postgres.create_database(f"bench_cluster_{count}")
        self.nodes = [
            NodeProcess(
                [
                    "--db", self.database, "--cluster", nats.url, "--node-id", f"node{n}",
                    "--server-key-file", str(parts.work / "server.key"),
                    "--unknown-gateways", "accept", "--log-level", "warning",
                ],
                parts.work / f"node{count}-{n}.log",
                spawned=parts.reaper.watch_pid,
            )
            for n in range(count)
        ]  # fmt: skip
        self.proxy: HAProxy | None = None
        self._stops = contextlib.ExitStack()

    def __enter__(self) -> Cluster:
        with self._stops as stops:  # closed here only if a start fails
            for node in self.nodes:
                self.parts.start_node(node, stops)
            if len(self.nodes) > 1:
                backends = [
                    Backend(f"node{n}", "127.0.0.1", port_of(node.ws_url), port_of(node.api_url))
                    for n, node in enumerate(self.nodes)
                ]
                self.proxy = self.parts.start(HAProxy(backends), stops)
                self.proxy.wait_states({b.name: "UP" for b in backends}, timeout=60)
            self._stops = stops.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stops.close()

    @property
    def front_door(self) -> str:
        return self.proxy.url() if self.proxy is not None else self.nodes[0].ws_url


def result_of(proc: subprocess.Popen[str], budget: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=budget + 30)
    for line in out.splitlines():
        event = json.loads(line)
        if event.get("event") == "result":
            return dict(event)
    raise RuntimeError(f"loadgen printed no result:\n{out[-2000:]}")


async def ingest(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    budget = args.duration * 3 + 60
    postmaster = cluster.postgres.postmaster()
    proxy = None if cluster.proxy is None else cluster.proxy.pid
    parts = {
        "nodes": [node.pid for node in cluster.nodes if node.pid is not None],
        "postgresql": [] if postmaster is None else family(postmaster),
        "haproxy": [] if proxy is None else family(proxy),
        "nats": [] if cluster.nats.pid is None else [cluster.nats.pid],
    }
    watch = CpuWatch(parts)
    proc = cluster.parts.loadgen(
        "--mode", "calls", "--url", cluster.front_door, "--prefix", f"ING{len(cluster.nodes)}",
        "--conns", str(args.conns), "--warmup", "2", "--duration", str(args.duration),
        budget=budget,
    )  # fmt: skip
    result = await asyncio.to_thread(result_of, proc, budget)
    spent = watch.spent()
    connection = await asyncpg.connect(cluster.database)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM meter_messages")
    finally:
        await connection.close()
    return {
        "stored_per_s": round(result["calls_per_s"]),
        # CPU per stored message (warm-up included: every row counted), by part
        "cpu_us_per_message": {
            name: round(seconds / max(rows, 1) * 1e6, 1) for name, seconds in spent.items()
        },
        "connected": result["connected"],
        "rows_after": rows,
        "call_p50_ms": result.get("p50_ms"),
        "call_p99_ms": result.get("p99_ms"),
    }


async def commands(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    """Command round trips on the node holding the gateway and, with 2 nodes, the other."""
    gateway = ntxcp.Gateway("BENCH-GW", reconnect=False)
    gateway.set_core_handler(Answering())
    await gateway.start(cluster.nodes[0].ws_url)
    urls = {
        where: f"{node.api_url}api/gateways/BENCH-GW/calls/GetConfiguration"
        for where, node in zip(("same_node", "cross_node"), cluster.nodes, strict=False)
    }
    try:
        async with aiohttp.ClientSession() as http:
            await interleaved(http, urls, 2.0, 20)  # warm-up
            times = await interleaved(http, urls, args.duration, args.calls)
    finally:
        await gateway.stop()
    return {where: summary(kind) for where, kind in times.items()}


async def interleaved(
    http: aiohttp.ClientSession, urls: dict[str, str], seconds: float, most: int
) -> dict[str, list[float]]:
    """Round trips to every URL in rounds, one of each per round in a shuffled order.

    Measured in the same period, the kinds see the same load of the machine (one after
    the other, a change of load between them passes for a difference between them);
    the shuffle keeps one kind from always following the other.

    Returns:
        The round trips (ms) of each URL: up to ``most`` each, for ``seconds``.
    """
    times: dict[str, list[float]] = {where: [] for where in urls}
    order = list(urls)
    shuffle = random.Random(0).shuffle
    deadline = time.monotonic() + seconds
    for _ in range(most):
        if time.monotonic() >= deadline:
            break
        shuffle(order)
        for where in order:
            times[where].append(await round_trip(http, urls[where]))
    return times


def wait_event(proc: subprocess.Popen[str], name: str) -> list[dict[str, Any]]:
    """Read loadgen's events up to ``name`` (bounded by its --max-runtime)."""
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1].get("event") == name:
            return seen
    raise RuntimeError(f"loadgen ended before {name!r}: {seen[-3:]}")


async def idle(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    share = args.idle // len(cluster.nodes)
    pids = [node.pid for node in cluster.nodes if node.pid is not None]
    before = [rss_kb(pid) for pid in pids]
    budget = args.hold + 300
    procs = [
        cluster.parts.loadgen(
            "--mode",
            "idle",
            "--url",
            node.ws_url,
            "--prefix",
            f"IDLE{n}",
            "--conns",
            str(share),
            "--hold",
            str(args.hold),
            "--settle",
            "3",
            "--hb-ms",
            "1000",
            "--ramp",
            "200",
            budget=budget,
        )
        for n, node in enumerate(cluster.nodes)
    ]
    for proc in procs:  # both hold their gateways from here on
        await asyncio.to_thread(wait_event, proc, "hold_start")
    held_rss = [rss_kb(pid) for pid in pids]
    held = [int(str(await asyncio.to_thread(connected, node.api_url))) for node in cluster.nodes]
    results = [await asyncio.to_thread(result_of, proc, budget) for proc in procs]
    return {
        "gateways_per_node": held,
        "connect_failed": sum(int(r.get("connect_failed", 0)) for r in results),
        "rss_before_kb": before,
        "rss_held_kb": held_rss,
        "kb_per_gateway": [
            round((after - b) / max(1, n), 2)
            for after, b, n in zip(held_rss, before, held, strict=True)
        ],
    }


def connected(api_url: str) -> object:
    """The node's count of connected gateways (``/healthz``)."""
    with urllib.request.urlopen(f"{api_url}healthz", timeout=10) as answer:
        return json.load(answer)["connectedGateways"]


async def run(args: argparse.Namespace, parts: Parts) -> int:
    postgres = parts.start(PostgresServer())
    nats = parts.start(NatsServer())
    rows: list[dict[str, Any]] = []
    for count in (1, 2):
        with Cluster(parts, postgres, nats, count) as cluster:
            row: dict[str, Any] = {"kind": "cluster", "nodes": count}
            row["ingest"] = await ingest(cluster, args)
            row["commands"] = await commands(cluster, args)
            if count == 2 and args.idle:
                row["idle"] = await idle(cluster, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print_table(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = Parts(args.keep)
    try:
        return asyncio.run(run(args, parts))
    finally:
        parts.close()


def latency(commands: dict[str, Any], where: str) -> str:
    """``p50 / p99`` ms of one kind of round trip, ``-`` when not measured."""
    if where not in commands:
        return "-"
    return f"{commands[where]['p50_ms']:.1f} / {commands[where]['p99_ms']:.1f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    base = rows[0]["ingest"]["stored_per_s"] or 1
    print(
        "\nnodes | stored MeterValues/s (vs 1 node) | same-node p50/p99 ms | cross-node | "
        "CPU µs per stored message"
    )
    for row in rows:
        stored = row["ingest"]["stored_per_s"]
        cpu = ", ".join(f"{k} {v}" for k, v in row["ingest"]["cpu_us_per_message"].items())
        print(
            f"{row['nodes']} | {stored} ({stored / base:.2f}x) | "
            f"{latency(row['commands'], 'same_node')} | "
            f"{latency(row['commands'], 'cross_node')} | {cpu}"
        )
    for row in rows:
        if "idle" in row:
            idle_row = row["idle"]
            print(
                f"idle: {sum(idle_row['gateways_per_node'])} gateways held "
                f"({idle_row['gateways_per_node']} per node), "
                f"KiB per gateway per node {idle_row['kb_per_gateway']}"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each window")
    ap.add_argument("--conns", type=int, default=100, help="ingesting gateways")
    ap.add_argument("--calls", type=int, default=500, help="most command round trips")
    ap.add_argument("--idle", type=int, default=10_000, help="idle gateways on 2 nodes")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds the idle ones stay")
    ap.add_argument("--smoke", action="store_true", help="tiny and short, for CI")
    ap.add_argument(
        "--keep", action="store_true", help="keep the work directory (node logs) and say where"
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.conns, args.calls, args.idle, args.hold = 1.0, 5, 20, 20, 2.0
    return args


if __name__ == "__main__":
    sys.exit(main())
