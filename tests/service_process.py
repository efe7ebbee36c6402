"""The control center service as a real subprocess, shared by the service and dashboard tests.

:class:`ServiceProcess` runs ``python -m ntxcp control-center`` on free ports with a
SQLite file in a temporary directory and reads the ready line it prints.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

READY = re.compile(r"^ntxcp control center ready: gateways (\S+)/<id>  api (\S+)$")


class ServiceProcess:
    """``ntxcp control-center`` in a subprocess.

    Args:
        directory: where the database and the captured standard error go.
        args: more command-line arguments.
        db: the database file or ``postgresql://`` URL (default ``<directory>/cc.sqlite``).
    """

    def __init__(self, directory: Path, *args: str, db: Path | str | None = None) -> None:
        self.directory = directory
        self.db = db or directory / "cc.sqlite"
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws_url = ""
        self.api_url = ""
        self.ready_line = ""
        self._stderr_path = directory / f"stderr-{time.monotonic_ns()}.log"

    def command(self) -> list[str]:
        """The command line run."""
        base = [sys.executable, "-m", "ntxcp", "control-center", "--db", str(self.db)]
        if "--port" not in self.args:
            base += ["--port", "0"]
        if "--api-port" not in self.args:
            base += ["--api-port", "0"]
        return base + self.args

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        """Start and wait for the ready line; raise with the process's stderr if none."""
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_path.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self._read_line(timeout)
        match = READY.match(line)
        if match is None:
            self.kill()
            raise AssertionError(f"no ready line (got {line!r}); stderr:\n{self.stderr()}")
        self.ready_line = line
        self.ws_url, self.api_url = match[1], match[2]
        return self

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

    def stderr(self) -> str:
        """What the process wrote to standard error so far."""
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the exit status (killing the process after ``timeout``)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """End the process at once (cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def run_cli(args: Sequence[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ntxcp ARGS`` to completion (for commands that must fail fast)."""
    return subprocess.run(
        [sys.executable, "-m", "ntxcp", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
