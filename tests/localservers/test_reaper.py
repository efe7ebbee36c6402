"""The guardian that cleans up after a parent killed with SIGKILL (ntxcp.localservers.reaper)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ntxcp.localservers.reaper import Reaper
from waiting import wait_until

# A child that keeps writing into the directory it was given, as a node writes its
# log and server key into the work directory.
_WRITER = """
import pathlib, sys, time
target = pathlib.Path(sys.argv[1])
while True:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("still here")
    time.sleep(0.05)
"""


def _parent_dies(reaper: Reaper) -> None:
    """What the kernel does to the pipe when the parent is killed: it closes."""
    stdin = reaper._proc.stdin
    assert stdin is not None
    stdin.close()


def test_a_child_never_reported_is_ended_before_its_directory_goes(tmp_path: Path) -> None:
    """A parent killed between starting a child and reporting its id (the child's log
    already open in the work directory) leaves nothing: the reaper ends the child
    that uses the directory before it deletes it, so the child cannot re-create it."""
    work = tmp_path / "work"
    work.mkdir()
    reaper = Reaper()
    reaper.watch_dir(work)
    with (work / "child.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(work / "server.key")], stderr=log
        )
    try:
        wait_until(lambda: (work / "server.key").exists(), 10, what="the child writing")
        _parent_dies(reaper)
        wait_until(lambda: child.poll() is not None, 15, what="the child ended")
        wait_until(lambda: reaper._proc.poll() is not None, 15, what="the reaper done")
        assert not work.exists()
    finally:
        child.kill()
        child.wait()


def test_processes_of_other_sessions_are_left_alone(tmp_path: Path) -> None:
    """Only the parent's own session is searched: a process of another session that
    uses the directory (an operator's viewer) is not ended, only the files go."""
    work = tmp_path / "work"
    work.mkdir()
    reaper = Reaper()
    reaper.watch_dir(work)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(work / "x")],
        start_new_session=True,
    )
    try:
        _parent_dies(reaper)
        wait_until(lambda: not work.exists(), 15, what="the directory deleted")
        wait_until(lambda: reaper._proc.poll() is not None, 15, what="the reaper done")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
