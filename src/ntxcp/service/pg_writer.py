"""Group commit on PostgreSQL, with reconnection: the writer of the PostgreSQL backend.

Like the SQLite :class:`~ntxcp.service.writer.BatchWriter`, a :class:`PgBatchWriter`
runs the write jobs queued while one transaction was in flight in **one** next
transaction, and gives each caller its job's result only once that transaction is
committed. With PostgreSQL's defaults (``synchronous_commit`` on) a commit returns
once the write-ahead log is flushed to disk, so a CALLRESULT that follows it is
acknowledged durable data. Under load one commit covers the messages of many
gateways; alone, a gateway pays one round trip and one flush.

Jobs are coroutines of the connection (asyncpg). A job that fails makes the batch roll
back; the jobs of that batch are then run again, one transaction each, so a bad job
fails alone.

When the connection is lost (the server stopped, restarted or unreachable), the
batch's callers get :class:`~ntxcp.service.backend.DatabaseUnavailableError`: their
data may or may not be committed, and they must not acknowledge it (a re-sent
message is recognised by its unique id). The writer then reconnects with exponential
backoff; meanwhile every new job fails at once with the same error, and
:attr:`PgBatchWriter.unreachable` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.writer import Pending, deliver

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PgBatchWriter", "PgJob", "is_connection_problem"]

PgJob = Callable[["asyncpg.Connection"], Awaitable[Any]]
"""A write: a coroutine function of the connection, run inside a transaction."""

_log = logging.getLogger("ntxcp.service.storage")

BACKOFF_INITIAL = 0.1
"""Seconds before the first reconnection attempt."""
BACKOFF_MAX = 5.0
"""Longest wait between reconnection attempts."""


def is_connection_problem(exc: BaseException) -> bool:
    """Whether ``exc`` means the server cannot be reached (rather than a bad statement)."""
    import asyncpg

    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    )


def describe(exc: BaseException) -> str:
    """A one-line reason for an operator."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class PgBatchWriter:
    """Runs write jobs in batches on one connection; reconnects when it is lost.

    Args:
        connect: opens a new connection.
        conn: the first connection (already open).
        before_batch: run first in every batch's transaction, in a savepoint (a
            failure there is logged and loses only what it wrote).
        max_batch: most jobs per transaction.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        conn: asyncpg.Connection,
        *,
        before_batch: PgJob | None = None,
        max_batch: int = 2000,
    ) -> None:
        self._connect = connect
        self._conn: asyncpg.Connection | None = conn
        self._before_batch = before_batch
        self._max_batch = max_batch
        self._pending: list[Pending[PgJob]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._running = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ntxcp-pg-writer")
        self.unreachable: str | None = None
        """Why the server cannot be reached now (``None``: connected)."""
        self.batches = 0
        """Transactions committed so far."""
        self.jobs = 0
        """Jobs run so far."""
        self.reconnections = 0
        """Connections opened again after one was lost."""

    def submit(self, job: PgJob) -> asyncio.Future[Any]:
        """Queue a job; the future gets its result once committed.

        While the server is unreachable the future fails at once with
        :class:`DatabaseUnavailableError`.

        Raises:
            RuntimeError: the writer is closed.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.unreachable is not None:
            future.set_exception(DatabaseUnavailableError(self.unreachable))
            return future
        self._queue(Pending(job, future))
        return future

    def post(self, job: PgJob) -> None:
        """Queue a job nobody waits for (a failure is logged; dropped while unreachable)."""
        if self.unreachable is None:
            self._queue(Pending(job, None))

    def _queue(self, pending: Pending[PgJob]) -> None:
        if self._closing:
            raise RuntimeError("database writer is closed")
        self._pending.append(pending)
        self._wake.set()

    @property
    def busy(self) -> bool:
        """Whether a job is queued or a transaction in flight."""
        return bool(self._pending) or self._running

    async def aclose(self) -> None:
        """Run what is queued (if the server is reachable), then close the connection."""
        self._closing = True
        self._wake.set()
        await self._task
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5.0)
            except Exception:  # the server is gone: nothing to close politely
                conn.terminate()

    async def _run(self) -> None:
        while True:
            conn = self._conn
            if conn is None or conn.is_closed():  # lost: reconnect, jobs or not
                conn = await self._connection()
                if conn is None:  # closing while unreachable
                    self._fail_all(self.unreachable or "database closed")
                    return
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._running = True
            try:
                results = await self._execute(conn, batch)
            finally:
                self._running = False
            if results is not None:
                self.batches += 1
                self.jobs += len(batch)
                deliver(results)

    def connection_lost(self, exc: BaseException) -> None:
        """Another connection found the server gone: fail fast and reconnect now."""
        if self.unreachable is None and not self._running:
            self._lost(exc, [])
            self._wake.set()

    async def _execute(
        self, conn: asyncpg.Connection, batch: list[Pending[PgJob]]
    ) -> list[tuple[Pending[PgJob], bool, Any]] | None:
        """One transaction for the batch; ``None`` when the connection was lost."""
        try:
            async with conn.transaction():
                if self._before_batch is not None:
                    await self._buffers(conn)
                return [(pending, True, await pending.job(conn)) for pending in batch]
        except Exception as exc:
            if is_connection_problem(exc) or conn.is_closed():
                self._lost(exc, batch)
                return None
            first = exc
        results = []
        for pending in batch:  # fail alone: one transaction each
            try:
                async with conn.transaction():
                    results.append((pending, True, await pending.job(conn)))
            except Exception as exc:
                if is_connection_problem(exc) or conn.is_closed():
                    self._lost(exc, batch[len(results) :])
                    deliver(results)
                    return None
                if pending.future is None:
                    _log.error("database write failed: %s", exc, exc_info=exc)
                results.append((pending, False, exc))
        _log.debug("a batch failed (%s); its jobs ran one by one", first)
        return results

    async def _buffers(self, conn: asyncpg.Connection) -> None:
        assert self._before_batch is not None
        import asyncpg

        try:
            async with conn.transaction():  # a savepoint: a failure loses only this
                await self._before_batch(conn)
        except asyncpg.PostgresError as exc:
            if is_connection_problem(exc):
                raise
            _log.error("writing the frame log failed: %s", exc)

    def _lost(self, exc: BaseException, batch: list[Pending[PgJob]]) -> None:
        reason = f"connection to PostgreSQL lost ({describe(exc)})"
        _log.error("%s; reconnecting", reason)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
        self.unreachable = reason
        error = DatabaseUnavailableError(reason)
        for pending in batch:
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(error)
        self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        pending, self._pending = self._pending, []
        error = DatabaseUnavailableError(reason)
        for item in pending:
            if item.future is not None and not item.future.done():
                item.future.set_exception(error)

    async def _connection(self) -> asyncpg.Connection | None:
        """The open connection, reconnecting with backoff (``None``: closing meanwhile)."""
        delay = BACKOFF_INITIAL
        while self._conn is None or self._conn.is_closed():
            try:
                self._conn = await self._connect()
            except Exception as exc:
                self.unreachable = f"cannot connect to PostgreSQL ({describe(exc)})"
                self._fail_all(self.unreachable)
                if self._closing:
                    return None
                self._wake.clear()
                # Wait for the backoff, or for close(); new jobs fail at once meanwhile.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if self.unreachable is not None:
                _log.info("connection to PostgreSQL restored")
                self.reconnections += 1
            self.unreachable = None
        return self._conn
