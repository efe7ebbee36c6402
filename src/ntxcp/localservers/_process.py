"""What every throw-away server of :mod:`ntxcp.localservers` shares.

:class:`LocalServer`: a temporary directory with a log file, ``with`` support, and
:meth:`~LocalServer.remove` (stop, then delete the directory). :class:`ChildServer`
adds the child process the server runs in and how it ends: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["STOP_TIMEOUT", "ChildServer", "LocalServer"]

STOP_TIMEOUT = 5.0  # s: after SIGTERM, before SIGKILL


class LocalServer:
    """A server with its files in ``directory`` and its log in ``_log``.

    Subclasses set both in their constructor and implement :meth:`start`,
    :meth:`stop` and :attr:`running`.
    """

    directory: Path
    _log: Path

    @property
    def running(self) -> bool:
        """Whether the server runs."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server; returns it."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (its files stay)."""
        raise NotImplementedError

    def log(self) -> str:
        """The server's log (for error and assertion messages)."""
        with contextlib.suppress(OSError):
            return self._log.read_text(errors="replace")
        return ""

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


class ChildServer(LocalServer):
    """A server that runs as one child process (``_proc`` while it runs).

    Attributes:
        spawned: called with the process id as soon as the process exists, before
            the server is ready (``None``: nothing). Set it to hand the process to a
            :class:`~ntxcp.localservers.reaper.Reaper`: a parent killed while the
            server starts must not leave it running.
    """

    _proc: subprocess.Popen[bytes] | None = None
    spawned: Callable[[int], object] | None = None

    def _announce(self) -> None:
        """Tell :attr:`spawned` the new process's id."""
        if self.spawned is not None and self._proc is not None:
            self.spawned(self._proc.pid)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self.running else None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: the server disappears without a goodbye, like a crashed machine."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(STOP_TIMEOUT)
        self._proc = None
