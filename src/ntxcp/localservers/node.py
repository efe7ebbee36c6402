"""A control-center node as a child process (``python -m ntxcp control-center``).

:class:`NodeProcess` starts the service with the arguments given, on ports it chooses
(``--port 0 --api-port 0`` unless given), and reads the ready line the service prints
once it listens (``ntxcp control center ready: gateways <ws URL>/<id>  api <URL>``)
to learn its URLs. Standard error goes to a file, so a chatty node never blocks on a
full pipe.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["READY", "NodeProcess"]

READY = re.compile(r"^ntxcp control center ready: gateways (\S+)/<id>  api (\S+)$")
"""The line ``ntxcp control-center`` prints on standard output once it listens."""


class NodeProcess:
    """``ntxcp control-center`` in a child process.

    Args:
        args: the command-line arguments after ``control-center``.
        stderr_path: the file that receives the node's standard error (its log).
        new_session: start the node in a session of its own, so that a Ctrl-C at the
            terminal reaches only the parent (which then stops the node in order).
        spawned: called with the process id as soon as the process exists, before its
            ready line (e.g. a :class:`~ntxcp.localservers.reaper.Reaper`'s
            ``watch_pid``: a parent killed while the node starts must not leave it).
        env: environment variables to set (a ``None`` value removes the variable) on
            top of this process's environment, e.g. ``SSL_CERT_FILE`` for a private CA.

    Attributes:
        proc: the process, once started.
        ws_url: the gateways' base URL (``ws://host:port/path``), once started.
        api_url: the HTTP API's URL, once started.
        ready_line: the ready line as printed.
    """

    def __init__(
        self,
        args: Sequence[str],
        stderr_path: Path,
        *,
        new_session: bool = False,
        spawned: Callable[[int], object] | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws_url = ""
        self.api_url = ""
        self.ready_line = ""
        self._stderr_path = stderr_path
        self._new_session = new_session
        self._spawned = spawned
        self._env = dict(env or {})

    def command(self) -> list[str]:
        """The command line run."""
        base = [sys.executable, "-m", "ntxcp", "control-center"]
        if "--port" not in self.args:
            base += ["--port", "0"]
        if "--api-port" not in self.args:
            base += ["--api-port", "0"]
        return base + self.args

    def start(self, timeout: float = 20.0) -> NodeProcess:
        """Start and wait for the ready line.

        Raises:
            RuntimeError: no ready line within ``timeout`` (the message has the
                node's standard error); the process is killed.
        """
        with self._stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self._environment(),
                start_new_session=self._new_session,
            )
        if self._spawned is not None:
            self._spawned(self.proc.pid)
        line = self._read_line(timeout)
        match = READY.match(line)
        if match is None:
            self.kill()
            raise RuntimeError(f"no ready line (got {line!r}); stderr:\n{self.stderr()}")
        self.ready_line = line
        self.ws_url, self.api_url = match[1], match[2]
        return self

    def _environment(self) -> dict[str, str]:
        """This process's environment with the overrides given (unbuffered output)."""
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name, value in self._env.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\n", 1)[0].decode("utf-8", "replace")

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        """What the process wrote to standard error so far."""
        try:
            return self._stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the exit status (killing the process after ``timeout``).

        Raises:
            subprocess.TimeoutExpired: it had not exited in time (it is killed).
        """
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (the node closes its gateways with 1001), then wait for the exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """End the process at once (SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
