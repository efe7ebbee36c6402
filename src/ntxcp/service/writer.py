"""Group commit: the writes queued during one event-loop iteration share one transaction.

A SQLite commit in WAL mode costs far more than the rows it commits (the modified
pages are appended to the log, and now and then checkpointed): committing each gateway
message on its own spent about 240 µs per MeterValues on the reference machine, three
quarters of it in the commit. The :class:`BatchWriter` collects the write jobs queued
while the event loop handles the frames that arrived together, runs them all in
**one** transaction from a callback scheduled with ``call_soon``, commits, and only
then gives each caller its job's result. A handler that awaits its job therefore
answers the gateway after its data is committed, and under load one commit covers
the messages of many gateways.

Why the statements run on the event loop's thread and not a writer thread: Python's
``sqlite3`` releases the GIL around every statement step; a writer thread must then
win the GIL back from a busy event loop for each statement, which takes up to the
interpreter's switch interval (5 ms) every time. Measured here, that made a batch of
20 messages take 7.6 ms on a thread against under 2 ms on the loop. Only a commit
that waits for the disk (an fsync: 0.2 ms on a quiet SSD, tens of ms on a busy one)
goes to a thread, as one statement, so the loop is not blocked by the disk.

A job that fails makes the batch roll back; the jobs of that batch are then run again
one transaction each, so one bad job fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "CHECKPOINT_INTERVAL",
    "MAX_BATCH",
    "BatchWriter",
    "Checkpointer",
    "Job",
    "Pending",
    "deliver",
]

Job = Callable[[sqlite3.Connection], Any]
"""A write: a function of the connection, run inside a transaction."""
J = TypeVar("J")

_log = logging.getLogger("ntxcp.service.storage")

CHECKPOINT_INTERVAL = 0.1
"""Seconds of commits between two passive checkpoints run by the writer itself."""

MAX_BATCH = 256
"""Jobs per transaction at most. The jobs run on the event loop: 2,000 (an earlier
bound) made ticks of over 100 ms while thousands of reconnecting gateways wrote their
BootNotification and StatusNotification at once; 256 keep a tick to a few
milliseconds and still take every message of a busy batch of 100 gateways in one."""


class Pending(Generic[J]):
    """A queued write job and the future its caller waits on (``None``: nobody waits).

    Both storage backends' writers queue these (the job is theirs: a function of a
    ``sqlite3`` or an ``asyncpg`` connection).
    """

    __slots__ = ("future", "job")

    def __init__(self, job: J, future: asyncio.Future[Any] | None) -> None:
        self.job = job
        self.future = future


def deliver(results: Iterable[tuple[Pending[Any], bool, Any]]) -> None:
    """Settle the callers' futures: each job's result, or its exception when not ``ok``.

    A future nobody waits on, or one already settled (its caller cancelled), is skipped.
    """
    for pending, ok, value in results:
        future = pending.future
        if future is None or future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class BatchWriter:
    """Runs write jobs in batches: one transaction per event-loop iteration.

    Every method must be called on the event loop's thread.

    With ``commit_off_loop`` (the service's ``disk`` durability, whose commit waits
    for an fsync) the jobs still run on the loop, but the ``COMMIT`` runs on a
    thread of its own: the loop goes on reading frames and queuing the next batch
    while the disk syncs, and the batch's callers hear back once the commit
    returned. At most one commit is in flight; the next batch starts when it ends.

    A commit after which the write-ahead log is larger than ``wal_limit`` runs a
    ``TRUNCATE`` checkpoint before its callers hear back: under a write rate the
    background :class:`Checkpointer` cannot keep up with, the WAL stays bounded (at
    the cost of that one batch waiting for the checkpoint).

    Args:
        conn: the connection to write with (autocommit mode, ``isolation_level=None``;
            opened with ``check_same_thread=False`` when ``commit_off_loop``).
        max_batch: most jobs per transaction (more wait for the next batch).
        wal: the WAL file (``None``: not watched).
        wal_limit: WAL bytes that trigger the checkpoint.
        commit_off_loop: run each ``COMMIT`` on the commit thread.
        before_batch: run first in every batch's transaction (it must not raise).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        max_batch: int = MAX_BATCH,
        wal: Path | None = None,
        wal_limit: int = 64 * 2**20,
        commit_off_loop: bool = False,
        before_batch: Job | None = None,
    ) -> None:
        self._conn = conn
        self._before_batch = before_batch
        self._max_batch = max_batch
        self._wal = None if wal is None else str(wal)
        self._wal_limit = wal_limit
        self._pending: list[Pending[Job]] = []
        self._scheduled: asyncio.Handle | None = None
        self._closed = False
        self._committer = (
            ThreadPoolExecutor(1, thread_name_prefix="ntxcp-db-commit") if commit_off_loop else None
        )
        self._in_flight: asyncio.Future[None] | None = None
        self.batches = 0
        """Transactions committed so far."""
        self.jobs = 0
        """Jobs run so far."""
        self.wal_truncations = 0
        """Checkpoints forced by the WAL size."""
        self.checkpoints = 0
        """Passive checkpoints run after a commit."""
        self._next_checkpoint = 0.0

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue a job; the returned future gets its result once it is committed.

        Raises:
            RuntimeError: the writer is closed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue(Pending(job, future), loop)
        return future

    def post(self, job: Job) -> None:
        """Queue a job nobody waits for (a failure is logged)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop (e.g. while closing): the next commit() runs it
            loop = None
        self._queue(Pending(job, None), loop)

    def _queue(self, pending: Pending[Job], loop: asyncio.AbstractEventLoop | None) -> None:
        if self._closed:
            raise RuntimeError("database writer is closed")
        self._pending.append(pending)
        if self._scheduled is None and self._in_flight is None and loop is not None:
            self._scheduled = loop.call_soon(self._run)

    @property
    def busy(self) -> bool:
        """Whether a job is queued or a commit in flight."""
        return bool(self._pending) or self._in_flight is not None

    def _take(self) -> list[Pending[Job]]:
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        return batch

    def _run(self) -> None:
        self._scheduled = None
        if self._in_flight is not None or not self._pending:
            return
        if self._committer is None:
            # One batch per turn of the loop: a backlog (thousands of gateways
            # reconnecting) does not become one long stop of the loop.
            self._execute(self._take())
            self._reschedule()
            return
        batch = self._take()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._before_batch is not None:
                self._before_batch(conn)
            results = [(pending, True, pending.job(conn)) for pending in batch]
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            deliver([self._alone(pending) for pending in batch])
            self._reschedule()
            return
        loop = asyncio.get_running_loop()
        in_flight = self._in_flight = loop.run_in_executor(self._committer, self._commit_sql)
        in_flight.add_done_callback(lambda done: self._committed(done, batch, results))

    def _commit_sql(self) -> None:
        """On the commit thread: the commit (and its fsync), then the WAL bound."""
        self._conn.execute("COMMIT")
        if self._wal is not None:
            self._maintain_wal(self._wal)

    def _committed(
        self,
        done: asyncio.Future[None],
        batch: list[Pending[Job]],
        results: list[tuple[Pending[Job], bool, Any]],
    ) -> None:
        self._in_flight = None
        if done.cancelled() or done.exception() is not None:
            conn = self._conn
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [self._alone(pending) for pending in batch]
        self.batches += 1
        self.jobs += len(batch)
        deliver(results)
        self._reschedule()

    def _reschedule(self) -> None:
        if self._pending and self._scheduled is None and not self._closed:
            self._scheduled = asyncio.get_running_loop().call_soon(self._run)

    def commit(self) -> None:
        """Run every queued job now, on this thread (in batches of at most ``max_batch``).

        Raises:
            RuntimeError: a commit is in flight on the commit thread (await
                :meth:`drain` first).
        """
        if self._in_flight is not None:
            raise RuntimeError("a commit is in flight; await drain() first")
        while self._pending:
            self._execute(self._take())

    async def drain(self) -> None:
        """Wait until nothing is queued or being committed."""
        while self._in_flight is not None or self._pending:
            if self._in_flight is not None:
                await asyncio.wait([self._in_flight])
            else:
                self.commit()

    async def aclose(self) -> None:
        """Run what is queued, wait for the commits, and refuse further jobs."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        await self.drain()
        self._closed = True
        if self._committer is not None:
            self._committer.shutdown(wait=True)

    def close(self) -> None:
        """Run what is queued and refuse further jobs (no commit may be in flight)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self.commit()
        self._closed = True
        if self._committer is not None:
            self._committer.shutdown(wait=True)

    def _execute(self, batch: list[Pending[Job]]) -> None:
        conn = self._conn
        results: list[tuple[Pending[Job], bool, Any]]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._before_batch is not None:
                self._before_batch(conn)
            results = [(pending, True, pending.job(conn)) for pending in batch]
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [self._alone(pending) for pending in batch]
        if self._wal is not None:
            self._maintain_wal(self._wal)
        self.batches += 1
        self.jobs += len(batch)
        deliver(results)

    def _maintain_wal(self, wal: str) -> None:
        """After a commit: checkpoint now and then, and bound the WAL file's size.

        Under a steady stream of commits the :class:`Checkpointer`'s passive
        checkpoints never catch up with the writer (it appends while they copy), so
        the WAL never starts over and grows to ``wal_limit``, where a ``TRUNCATE``
        checkpoint of the whole file held a batch for about 70 ms, every second or so
        (W1). A passive checkpoint run here, between two transactions, copies
        everything, and the next transaction starts the WAL over from its beginning:
        at most every :data:`CHECKPOINT_INTERVAL` seconds of commits.
        """
        now = time.monotonic()
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + CHECKPOINT_INTERVAL
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1
            except sqlite3.Error as exc:  # tried again later
                _log.warning("WAL checkpoint failed: %s", exc)
        try:
            size = os.stat(wal).st_size
        except OSError:
            return
        if size > self._wal_limit:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                self.wal_truncations += 1
            except sqlite3.Error as exc:  # tried again after the next commit
                _log.warning("WAL checkpoint failed: %s", exc)

    def _alone(self, pending: Pending[Job]) -> tuple[Pending[Job], bool, Any]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            value = pending.job(conn)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if pending.future is None:
                _log.error("database write failed: %s", exc, exc_info=exc)
            return pending, False, exc
        return pending, True, value


class Checkpointer:
    """Copies the WAL back into the database file on its own thread, every ``interval``.

    SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so
    one unlucky gateway message would wait for it (and its fsync). The service turns
    it off (``wal_autocheckpoint=0``) and lets this thread run passive checkpoints
    with its own connection instead: a passive checkpoint never blocks the writer, and
    it is a single SQLite call, so the thread holds the GIL only to start and finish.

    Args:
        path: the database file.
        synchronous: the SQLite ``synchronous`` level of the checkpoint connection.
        interval: seconds between checkpoints.
    """

    def __init__(self, path: Path, synchronous: str = "FULL", interval: float = 1.0) -> None:
        self._path = path
        self._synchronous = synchronous
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ntxcp-db-checkpoint", daemon=True)
        self.checkpoints = 0
        """Checkpoints run so far."""

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocks until it has stopped)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # retried at the next interval
                    _log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
