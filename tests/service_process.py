"""The control center service as a real subprocess, shared by the service and dashboard tests.

:class:`ServiceProcess` runs ``python -m ntxcp control-center`` on free ports with a
SQLite file in a temporary directory and reads the ready line it prints
(:class:`ntxcp.localservers.node.NodeProcess` with the tests' defaults).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ntxcp.localservers.node import READY, NodeProcess

__all__ = ["READY", "ServiceProcess", "run_cli"]


class ServiceProcess(NodeProcess):
    """``ntxcp control-center`` in a subprocess.

    Args:
        directory: where the database and the captured standard error go.
        args: more command-line arguments.
        db: the database file or ``postgresql://`` URL (default ``<directory>/cc.sqlite``).
        env: environment variables to set or (``None``) remove in the service's process.
    """

    def __init__(
        self,
        directory: Path,
        *args: str,
        db: Path | str | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> None:
        self.directory = directory
        self.db = db or directory / "cc.sqlite"
        super().__init__(
            ["--db", str(self.db), *args],
            directory / f"stderr-{time.monotonic_ns()}.log",
            env=env,
        )

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        """Start and wait for the ready line; fail the test with the stderr if none."""
        try:
            super().start(timeout)
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None
        return self


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
