"""HAProxy (Debian's ``haproxy``) in front of control-center nodes, on a free loopback port.

:func:`haproxy_config` writes the configuration of the gateways' front door, the
recipe of ``docs/deployment.md``; :class:`HAProxy` runs it as a child process (master-
worker mode, so :meth:`HAProxy.reload` swaps the configuration without dropping the
established connections) for the local cluster demo and the tests.

Two modes:

* ``tcp`` (the default): pass-through. HAProxy forwards the bytes; TLS (``wss://``,
  security profiles 2/3, client certificates) and HTTP Basic auth terminate on the
  nodes, which see the gateway's own TLS session.
* ``http``: HAProxy reads the upgrade request (plain ``ws://`` only) and then tunnels
  the WebSocket; ``timeout tunnel`` keeps idle gateways connected.

Either way HAProxy checks each node's ``GET /healthz`` on its API port and sends new
connections only to nodes that answer 200 (a node that cannot reach the database
answers 503: it could not store a new gateway's data). Established connections are
left alone when a node is marked down: the connections of a node that died close with
it, and a gateway whose node hangs finds out by its own pings (spec §1) and reconnects
through the front door to a node that is up.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from ntxcp.localservers._process import ChildServer

__all__ = ["Backend", "HAProxy", "HAProxyMissing", "find_binary", "haproxy_config"]

START_TIMEOUT = 15.0  # s
Mode = Literal["tcp", "http"]


class HAProxyMissing(RuntimeError):
    """No ``haproxy`` binary could be found."""


def find_binary() -> Path:
    """The ``haproxy`` binary on ``PATH`` (or ``/usr/sbin``, where Debian installs it).

    Raises:
        HAProxyMissing: none found (the message says what to install).
    """
    found = shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if found is None:
        raise HAProxyMissing("haproxy not found: install Debian's haproxy package")
    return Path(found)


@dataclass(frozen=True, slots=True)
class Backend:
    """One control-center node behind the front door.

    Attributes:
        name: the server's name in HAProxy (letters, digits, ``-_.``).
        host: the node's address.
        port: the node's gateway (WebSocket) port.
        health_port: the node's HTTP API port, where ``/healthz`` is served.
    """

    name: str
    host: str
    port: int
    health_port: int


def haproxy_config(
    backends: Sequence[Backend],
    *,
    bind: str,
    mode: Mode = "tcp",
    health_path: str = "/healthz",
    check_interval: float = 1.0,
    tunnel_timeout: float = 3600.0,
    admin_socket: str | None = None,
    max_connections: int | None = None,
) -> str:
    """The HAProxy configuration of the gateways' front door.

    Args:
        backends: the nodes.
        bind: ``address:port`` to listen on for gateways.
        mode: ``tcp`` (pass-through, TLS on the nodes) or ``http`` (plain ``ws://``).
        health_path: the nodes' health endpoint (answers 200 when the node serves).
        check_interval: seconds between health checks; a node is down after 2 failed
            checks in a row and up again after 1 good one.
        tunnel_timeout: seconds an established connection may stay silent. Gateways
            ping every 30 s by default (spec §1), so an hour never cuts a live one.
        admin_socket: path of the runtime API socket (``None``: none).
        max_connections: the process's connection limit (``maxconn``; each gateway
            holds one). ``None``: HAProxy derives it from the file-descriptor limit
            (``ulimit -n``), which must then allow two descriptors per gateway.

    Returns:
        The configuration text.

    Raises:
        ValueError: no backend, a bad name, port or mode, or a timing not positive.
    """
    if not backends:
        raise ValueError("the front door needs at least one node")
    if mode not in ("tcp", "http"):
        raise ValueError(f"mode must be 'tcp' or 'http', not {mode!r}")
    if check_interval <= 0 or tunnel_timeout <= 0:
        raise ValueError("check_interval and tunnel_timeout must be positive")
    for backend in backends:
        if not backend.name or not all(c.isalnum() or c in "-_." for c in backend.name):
            raise ValueError(f"bad node name {backend.name!r}: letters, digits, '-_.' only")
        if not all(0 < port < 65536 for port in (backend.port, backend.health_port)):
            raise ValueError(f"bad port of node {backend.name!r}: 1..65535")
    check_ms = max(1, round(check_interval * 1000))
    tunnel_s = max(1, round(tunnel_timeout))
    lines = [
        "global",
        *([f"    maxconn {max_connections}"] if max_connections else []),
        *([f"    stats socket {admin_socket} mode 600 level admin"] if admin_socket else []),
        "",
        "defaults",
        f"    mode {mode}",
        "    timeout connect 5s",
        # tcp: client/server timeouts cover the whole connection; http: the upgrade
        # request, then "timeout tunnel" takes over for the WebSocket.
        f"    timeout client {tunnel_s if mode == 'tcp' else 30}s",
        f"    timeout server {tunnel_s if mode == 'tcp' else 30}s",
        f"    timeout tunnel {tunnel_s}s",
        "    timeout client-fin 10s",
        "",
        "frontend gateways",
        f"    bind {bind}",
        "    default_backend nodes",
        "",
        "backend nodes",
        # leastconn: a node back after a failure gets the reconnecting gateways first
        "    balance leastconn",
        f"    option httpchk GET {health_path}",
        "    http-check expect status 200",
        f"    default-server inter {check_ms}ms fall 2 rise 1",
        # A connection to a node that died but is not yet marked down is tried again
        # on another node at once, instead of three times on the dead one, 1 s apart.
        "    retries 3",
        "    option redispatch 1",
        *(f"    server {b.name} {b.host}:{b.port} check port {b.health_port}" for b in backends),
    ]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HAProxy(ChildServer):
    """HAProxy in front of ``backends``, listening on a free port of 127.0.0.1.

    Args:
        backends: the nodes.
        mode: ``tcp`` (pass-through) or ``http`` (plain ``ws://``); see the module docs.
        port: the port to listen on (0: a free one).
        check_interval: seconds between health checks.
        binary: the ``haproxy`` executable (default: :func:`find_binary`).

    Attributes:
        port: the gateways' port.
        directory: the temporary directory (configuration, admin socket, log).
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        mode: Mode = "tcp",
        port: int = 0,
        check_interval: float = 0.5,
        binary: Path | None = None,
    ) -> None:
        self._binary = binary or find_binary()
        self.backends = tuple(backends)
        self.mode: Mode = mode
        self.check_interval = check_interval
        self.port = port or _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="ntxcp-haproxy-"))
        self._config = self.directory / "haproxy.cfg"
        self._socket = self.directory / "admin.sock"
        self._log = self.directory / "haproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()  # fails now for bad backends or mode

    def url(self, path: str = "/ntxcp", scheme: str = "ws") -> str:
        """The URL gateways connect to (``<scheme>://127.0.0.1:<port><path>``)."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def config(self) -> str:
        """The configuration in use."""
        return self._config.read_text()

    def _write_config(self) -> None:
        self._config.write_text(
            haproxy_config(
                self.backends,
                bind=f"127.0.0.1:{self.port}",
                mode=self.mode,
                check_interval=self.check_interval,
                admin_socket=str(self._socket),
            )
        )

    def check_config(self) -> None:
        """Have ``haproxy -c`` check the configuration.

        Raises:
            RuntimeError: HAProxy refuses it (the message has its explanation).
        """
        result = subprocess.run(
            [str(self._binary), "-c", "-q", "-f", str(self._config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"haproxy refuses the configuration:\n{result.stderr}")

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start HAProxy and wait until it accepts connections and answers its socket.

        Raises:
            RuntimeError: HAProxy exited or did not come up in time (with its log).
        """
        if self.running:
            raise RuntimeError("HAProxy is already running")
        with self._log.open("ab") as log:
            # -W: master-worker (SIGUSR2 reloads); -db: stay in the foreground.
            self._proc = subprocess.Popen(
                [str(self._binary), "-W", "-db", "-f", str(self._config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            self._announce()
            self._wait(lambda: self._listening() and self._admin_answers(), timeout, "start")
        except BaseException:
            self.kill()
            raise
        return self

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"haproxy exited at {what}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not {what} in time:\n{self.log()}")
            time.sleep(0.02)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _admin(self, command: str) -> str:
        """Send one command to the runtime API; returns its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self._socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _admin_answers(self) -> bool:
        try:
            return bool(self._admin("show info"))
        except OSError:
            return False

    def server_states(self) -> dict[str, str]:
        """Each node's state as HAProxy's health checks see it: ``UP``, ``DOWN``, ...

        Raises:
            OSError: HAProxy does not answer on its runtime API socket.
        """
        text = self._admin("show stat").lstrip("# ")
        states: dict[str, str] = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == "nodes" and row.get("svname") not in ("BACKEND", None):
                states[row["svname"]] = row["status"].split(" ")[0]
        return states

    def wait_states(self, wanted: dict[str, str], timeout: float = START_TIMEOUT) -> None:
        """Wait until the nodes named in ``wanted`` are in those states (``UP``/``DOWN``).

        Raises:
            TimeoutError: not reached in time (the message has the last states).
        """
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while True:
            with contextlib.suppress(OSError):
                states = self.server_states()
                if all(states.get(name) == state for name, state in wanted.items()):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy nodes {states}, wanted {wanted}")
            time.sleep(0.05)

    def reload(self, backends: Sequence[Backend] | None = None) -> None:
        """Write the configuration again (with new ``backends``) and reload without a cut.

        The master starts a new worker with the new configuration; established
        connections stay with the old worker until they close.

        Raises:
            RuntimeError: HAProxy is not running, or refuses the new configuration
                (then the old one stays in force).
        """
        if self._proc is None or not self.running:
            raise RuntimeError("HAProxy is not running")
        old = self.backends
        if backends is not None:
            self.backends = tuple(backends)
        self._write_config()
        try:
            self.check_config()
        except RuntimeError:
            self.backends = old
            self._write_config()
            raise
        names = {b.name for b in self.backends}
        self._proc.send_signal(signal.SIGUSR2)
        self._wait(lambda: self._shows(names), START_TIMEOUT, "reload")

    def _shows(self, names: set[str]) -> bool:
        try:
            return set(self.server_states()) == names
        except OSError:
            return False
