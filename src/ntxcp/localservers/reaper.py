"""A guardian process that cleans up after a parent that was killed (SIGKILL).

A parent that starts servers (the local cluster demo) cannot clean up when it is
killed with SIGKILL. :class:`Reaper` starts ``python -m ntxcp.localservers.reaper``
in a session of its own (a Ctrl-C at the terminal does not reach it) with a pipe on
its standard input, and tells it, line by line, what to clean up:

* ``pid <n>``: a child process. The reaper records its command line at once and, at
  cleanup, sends SIGTERM and then SIGKILL only if the same command still runs under
  that id (a recycled id is left alone);
* ``postmaster <data directory>``: a PostgreSQL server, stopped with SIGQUIT (an
  immediate shutdown) and then SIGKILL, found by its ``postmaster.pid``;
* ``dir <path>``: a directory to delete. Before it goes, every process of the
  parent's session that names a path under it in its command line or holds a file
  open under it is ended as above: a child the parent started but was killed
  before it could report (a node whose log is already open there) must not go on
  writing into a directory that was just deleted;
* ``done``: the parent cleaned up by itself; exit without doing anything.

When its standard input ends without ``done`` (the parent died: the kernel closes the
pipe whatever killed it), the reaper cleans up everything it was told, newest first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["Reaper", "main"]

_GRACE = 5.0  # s between SIGTERM/SIGQUIT and SIGKILL


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _alive(pid: int, cmdline: bytes | None) -> bool:
    """Whether ``pid`` still runs the command recorded (a zombie counts as gone)."""
    current = _cmdline(pid)
    return bool(current) and (cmdline is None or current == cmdline)


def _end(pid: int, cmdline: bytes | None, first: signal.Signals) -> None:
    """Send ``first``, then SIGKILL after the grace period if it still runs."""
    if not _alive(pid, cmdline):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, first)
    deadline = time.monotonic() + _GRACE
    while _alive(pid, cmdline) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid, cmdline):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _postmaster(data_directory: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
    return None


def _session(pid: int) -> int | None:
    """The session id of a process (``None`` once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _users(directory: str, session: int | None) -> list[int]:
    """Processes of ``session`` that name a path under ``directory`` or hold one open."""
    if session is None:
        return []
    inside = directory.rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _session(int(entry.name)) != session:
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(inside in word or word == directory for word in words) or any(
                os.readlink(fd).startswith(inside) for fd in (entry / "fd").iterdir()
            ):
                found.append(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to look into
            continue
    return found


def clean(orders: list[tuple[str, str, bytes | None]], session: int | None = None) -> None:
    """Carry out the orders, newest first (servers stop before their files go).

    Args:
        orders: what the parent asked for, in the order it asked.
        session: the parent's session: its processes still using a directory to be
            deleted are ended first.
    """
    for kind, value, cmdline in reversed(orders):
        if kind == "pid":
            _end(int(value), cmdline, signal.SIGTERM)
        elif kind == "postmaster":
            pid = _postmaster(value)
            if pid is not None:
                _end(pid, _cmdline(pid), signal.SIGQUIT)
        elif kind == "dir":
            for pid in _users(value, session):
                _end(pid, _cmdline(pid), signal.SIGTERM)
            shutil.rmtree(value, ignore_errors=True)


def main(stdin: TextIO = sys.stdin) -> int:
    """Read orders until ``done`` or the end of input; clean up in the second case."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the end of input counts
    session = _session(os.getppid())  # the parent's, while it is alive to read
    orders: list[tuple[str, str, bytes | None]] = []
    for line in stdin:
        kind, _, value = line.strip().partition(" ")
        if kind == "done":
            return 0
        if kind in ("pid", "postmaster", "dir") and value:
            cmdline = _cmdline(int(value)) if kind == "pid" and value.isdigit() else None
            orders.append((kind, value, cmdline))
    clean(orders, session)
    return 0


class Reaper:
    """The parent's side: starts the guardian and sends it orders."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ntxcp.localservers.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )

    @property
    def pid(self) -> int:
        """The guardian's process id."""
        return self._proc.pid

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def watch_pid(self, pid: int) -> None:
        """End this process if the parent dies."""
        self._send(f"pid {pid}")

    def watch_postmaster(self, data_directory: Path) -> None:
        """Stop the PostgreSQL server of this data directory if the parent dies."""
        self._send(f"postmaster {data_directory}")

    def watch_dir(self, path: Path) -> None:
        """Delete this directory if the parent dies."""
        self._send(f"dir {path}")

    def done(self) -> None:
        """The parent cleaned up: the guardian exits without doing anything."""
        with contextlib.suppress(OSError, ValueError):
            self._send("done")
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
