"""PostgreSQL storage of the control center service (``--db postgresql://...``).

The same tables and guarantees as the SQLite backend (:mod:`.storage`), through
asyncpg on the event loop:

* **writes** go to a :class:`~ntxcp.service.pg_writer.PgBatchWriter` on one connection:
  the jobs queued while a transaction is in flight share the next one (group commit),
  and each ``record_*`` method returns once its data is committed, so the CALLRESULT
  follows the commit. The MeterValues of one batch go in as **one** statement (arrays
  unnested on the server); frames of the frame log go in with ``COPY``.
* **durability**: ``disk`` (the default) keeps the server's ``synchronous_commit``
  (on by default: a commit returns once its WAL is flushed to disk); ``process`` turns
  it off for this service's writes (a commit returns before the flush: a crash of the
  database server can lose the last moments, a crash of this process cannot).
* **duplicates** (store and forward, spec §6.2): a MeterValues is dropped by the unique
  index (gateway, unique id); other actions are claimed in ``received_calls``.
* **reads** for the API run on a small pool of connections, after the queued writes.
* **the server away**: a write that meets a lost connection fails with
  :class:`~ntxcp.service.backend.DatabaseUnavailableError` (nothing is acknowledged),
  the writer reconnects with backoff, :attr:`PostgresStorage.unreachable` says why.

Every method is called on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ntxcp.service import queries
from ntxcp.service.backend import DatabaseUnavailableError
from ntxcp.service.config import Durability
from ntxcp.service.migrations import MigrationError
from ntxcp.service.packing import pack
from ntxcp.service.pg_cluster import (
    NEXT_COMMAND_ID,
    SESSION_NODES,
    SESSION_NODES_ALL,
    SESSION_OWNER_LOCKED,
    prepare_cluster,
    reset_own_sessions,
)
from ntxcp.service.pg_queries import PG_QUERIES, numbered
from ntxcp.service.pg_schema import migrate
from ntxcp.service.pg_writer import PgBatchWriter, PgJob, describe, is_connection_problem
from ntxcp.service.storage import (
    DATA_TABLES,
    FRAME_LOG_PAUSED,
    INSERT_COMMAND,
    INSERT_STATUS_HISTORY,
    PRUNE_CHUNK,
    UPSERT_STATUS,
    GatewayRecord,
    ProgressRecords,
    StorageError,
    WriteBuffers,
    mirror_registered,
    ms_text,
    now_ms,
    now_text,
    registered_already,
    restore_mirror,
)
from ntxcp.v10 import core
from ntxcp.v10.codec import encode_payload
from ntxcp.v10.types import encode_datetime

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PostgresStorage", "redacted"]

T = TypeVar("T")
_log = logging.getLogger("ntxcp.service.storage")

_FRAME_COLUMNS = (
    "gateway_id",
    "direction",
    "time_ms",
    "message_type",
    "action",
    "unique_id",
    "raw",
    "size",
)
_CLAIM = (
    "INSERT INTO received_calls (gateway_id, action, unique_id, received_at) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
)
# One statement for every MeterValues of a batch; RETURNING names the rows stored (a
# re-sent message meets the unique index and is skipped, spec §6.2).
_INSERT_METER_MESSAGES = (
    "INSERT INTO meter_messages (gateway_id, service_id, first_ms, last_ms, measurands, "
    "received_ms, unique_id, samples) SELECT * FROM unnest($1::text[], $2::integer[], "
    "$3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::bytea[]) "
    "ON CONFLICT (gateway_id, unique_id) WHERE unique_id IS NOT NULL DO NOTHING "
    "RETURNING gateway_id, unique_id"
)
# A late (store-and-forward) notification never replaces a newer current status.
_UPSERT_STATUS = numbered(UPSERT_STATUS)
_INSERT_STATUS_HISTORY = numbered(INSERT_STATUS_HISTORY)
_INSERT_GATEWAY = (
    "INSERT INTO gateways (id, created_at, first_seen, last_seen) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT DO NOTHING"
)
_CONNECT_TIMEOUT = 5.0
_READ_POOL_SIZE = 4


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def _statement(statement: str, args: Sequence[Any]) -> PgJob:
    """A job that runs one statement (``?`` placeholders numbered for PostgreSQL)."""
    text = numbered(statement)

    async def job(conn: asyncpg.Connection) -> None:
        await conn.execute(text, *args)

    return job


def _inserted(status: str) -> bool:
    """Whether an ``INSERT`` command tag reports one row (``INSERT 0 1``)."""
    return status.endswith(" 1")


class _MeterBatch:
    """The MeterValues rows of one transaction, inserted by one statement."""

    __slots__ = ("future", "keys", "rows", "span", "stored")

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.rows: list[tuple[Any, ...]] = []
        self.keys: set[tuple[str, str]] = set()
        self.span = 0
        self.stored: set[tuple[str, str]] = set()


class PostgresStorage(WriteBuffers, ProgressRecords):
    """The service's database on a PostgreSQL server.

    Args:
        url: a ``postgresql://`` URL; a password missing from it comes from the
            environment (``PGPASSWORD``, or ``~/.pgpass``), as for ``psql``.
        durability: ``disk`` keeps ``synchronous_commit`` of the server; ``process``
            turns it off for this service's writes.
        max_db_size: database bytes (``pg_database_size``) at which the frame log
            stops (0: no cap).
    """

    backend = "postgresql"

    def __init__(
        self, url: str, durability: Durability = Durability.DISK, *, max_db_size: int = 0
    ) -> None:
        self.url = url
        self.durability = durability
        self.max_db_size = max_db_size
        self.alarms: tuple[str, ...] = ()
        """Storage alarms raised now (see :meth:`check_disk`)."""
        self.database_bytes = 0
        """Database size at the last :meth:`check_disk` (``pg_database_size``)."""
        self.gateways: dict[str, GatewayRecord] = {}
        self.samples_stored = 0
        """Sampled values stored since the start."""
        self.duplicates = 0
        """Re-sent messages recognised since the start."""
        self._writer: PgBatchWriter | None = None
        self._pool: asyncpg.Pool | None = None
        self._next_command = 0
        WriteBuffers.__init__(self)
        self._meters: _MeterBatch | None = None
        self._probe: asyncio.Task[None] | None = None
        self.node_id: str | None = None
        """This node's name in a cluster (set before :meth:`start`; see :mod:`.pg_cluster`)."""

    # --- lifecycle -------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        import asyncpg

        conn = await asyncpg.connect(self.url, timeout=_CONNECT_TIMEOUT)
        if self.durability is Durability.PROCESS:
            await conn.execute("SET synchronous_commit = off")
        return conn

    async def start(self) -> None:
        """Connect, migrate the schema, load the gateways and open the read pool.

        Raises:
            StorageError: the driver is missing, the server cannot be reached, or the
                schema cannot be used (newer than this service, or a failed migration).
        """
        try:
            import asyncpg
        except ModuleNotFoundError:
            raise StorageError(
                "--db postgresql://... needs the asyncpg driver: pip install 'ntxcp[postgresql]'"
            ) from None
        where = redacted(self.url)
        try:
            conn = await self._connect()
        except Exception as exc:
            raise StorageError(f"cannot connect to database {where}: {describe(exc)}") from None
        try:
            await migrate(conn)
            if self.node_id is None:
                await conn.execute("UPDATE gateways SET connected = false WHERE connected")
            else:  # the other nodes' gateways stay connected
                await prepare_cluster(conn)
                await reset_own_sessions(conn, self.node_id)
            rows = await conn.fetch(
                "SELECT id, registered, password_hash, registration_status FROM gateways"
            )
            last_command = await conn.fetchval("SELECT max(id) FROM commands")
            pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=_READ_POOL_SIZE, timeout=_CONNECT_TIMEOUT
            )
        except (MigrationError, asyncpg.PostgresError, OSError) as exc:
            await conn.close()
            raise StorageError(f"cannot use database {where}: {exc}") from None
        self.gateways = {
            row[0]: GatewayRecord(row[0], bool(row[1]), row[2], row[3]) for row in rows
        }
        self._next_command = int(last_command or 0)
        self._pool = pool
        self._writer = PgBatchWriter(self._connect, conn, before_batch=self._write_buffers)

    async def close(self) -> None:
        """Write what is buffered and queued (if the server is reachable), then close."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._seen_due = True
        if writer.unreachable is None:
            writer.post(self._nothing)
        await writer.aclose()
        if self._probe is not None:
            await asyncio.gather(self._probe, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except Exception:
                pool.terminate()

    @property
    def is_open(self) -> bool:
        """Whether the database is open."""
        return self._writer is not None

    @property
    def unreachable(self) -> str | None:
        """Why the server cannot be reached now (``None``: it can)."""
        writer = self._writer
        return None if writer is None else writer.unreachable

    @property
    def writer(self) -> PgBatchWriter | None:
        """The writer (its counters), while open."""
        return self._writer

    def _live_writer(self) -> PgBatchWriter:
        writer = self._writer
        if writer is None:
            raise StorageError("database is not open")
        return writer

    def _submit(self, job: PgJob) -> asyncio.Future[Any]:
        return self._live_writer().submit(job)

    def _post(self, job: PgJob) -> None:
        self._live_writer().post(job)

    @staticmethod
    async def _nothing(conn: asyncpg.Connection) -> None:
        """A job that only makes a batch happen (for the buffered frames)."""

    async def _write_buffers(self, conn: asyncpg.Connection) -> None:
        """At the start of each batch: the buffered frames and "last seen" times.

        At most one batch's worth (see ``WriteBuffers._take_for_batch``).
        """
        frames, seen = self._take_for_batch(closing=self._writer is None)
        if not frames and not seen:
            return
        if frames:
            await conn.copy_records_to_table("frames", records=frames, columns=_FRAME_COLUMNS)
        if seen:
            await conn.executemany(
                "UPDATE gateways SET last_seen = $1 WHERE id = $2",
                [(ms_text(ms), gateway_id) for gateway_id, ms in seen.items()],
            )

    def flush(self) -> None:
        """Have the buffered frames and times written with the next batch (no waiting)."""
        writer = self._writer
        if writer is not None and writer.unreachable is None and (self._frames or self._seen):
            self._seen_due = True
            writer.post(self._nothing)

    def _request_batch(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.post(self._nothing)

    async def _batch_committed(self) -> None:
        await self._submit(self._nothing)

    @property
    def frame_log_paused(self) -> bool:
        """Whether the frame log is stopped by the storage alarm."""
        return bool(self.alarms)

    def release_memory(self) -> None:
        """Nothing to do: PostgreSQL's caches live in its own processes."""

    def check_disk(self) -> tuple[str, ...]:
        """Start a measurement of the database (and a probe of the server); the alarms now.

        The size comes from ``pg_database_size`` on a read connection; a failure to
        reach the server makes the writer reconnect at once, so ``/healthz`` tells an
        outage even while no gateway writes.
        """
        if self._pool is not None and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._measure())
        return self.alarms

    async def _measure(self) -> None:
        pool = self._pool
        if pool is None:
            return
        try:
            async with pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
                size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        except TimeoutError:  # every read connection busy: the server is not lost
            return
        except Exception as exc:
            writer = self._writer
            if writer is not None and is_connection_problem(exc):
                writer.connection_lost(exc)
            return
        self.database_bytes = size
        alarms: tuple[str, ...] = ()
        if self.max_db_size and size >= self.max_db_size:
            alarms = (FRAME_LOG_PAUSED,)
            if not self.alarms:
                _log.warning(
                    "storage alarm: frame log stopped (database is %d bytes, at its cap of %d)",
                    size,
                    self.max_db_size,
                )
        elif self.alarms:
            _log.info("storage alarm cleared: frame log resumed (%d bytes)", size)
        self.alarms = alarms

    # --- reads -------------------------------------------------------------------------

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run the PostgreSQL version of a query of :mod:`.queries` after the queued writes.

        Raises:
            DatabaseUnavailableError: the server cannot be reached.
            StorageError: the query has no PostgreSQL version, or the database is closed.
        """
        pg_query = PG_QUERIES.get(query)
        if pg_query is None:
            raise StorageError(f"query {query.__name__} has no PostgreSQL version")
        writer = self._live_writer()
        if writer.unreachable is not None:
            raise DatabaseUnavailableError(writer.unreachable)
        if writer.busy or self._frames or self._seen:
            self._seen_due = True
            await self.sync()
        pool = self._pool
        if pool is None:
            raise StorageError("database is not open")
        for attempt in (1, 2):  # a pooled connection may have died with a restart
            try:
                async with pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
                    result: T = await pg_query(conn, *args)
                    return result
            except TimeoutError:  # every read connection busy: the server is not lost
                raise DatabaseUnavailableError(
                    f"no read connection free within {_CONNECT_TIMEOUT:g} s"
                ) from None
            except Exception as exc:
                if not is_connection_problem(exc):
                    raise
                if attempt == 2:
                    writer.connection_lost(exc)
                    raise DatabaseUnavailableError(
                        f"cannot reach PostgreSQL ({describe(exc)})"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def read_long(self, query: Callable[..., T], *args: Any) -> T:
        """Like :meth:`read`, for a query that reads a long range.

        The PostgreSQL versions of such queries (e.g. ``meter_series``) already give
        the event loop back while they read, between the rows they fetch.
        """
        return await self.read(query, *args)

    async def fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL statement (``?`` placeholders), after the queued writes.

        For tools and tests that look at tables no query of :mod:`.queries` returns.
        """
        await self.sync()
        pool = self._pool
        if pool is None:
            raise StorageError("database is not open")
        async with pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
            rows = await conn.fetch(numbered(statement), *args)
        return [tuple(row) for row in rows]

    async def execute(self, statement: str, *args: Any) -> None:
        """Run one write statement (``?`` placeholders) in the next batch; wait for its commit."""
        await self._submit(_statement(statement, args))

    def post_execute(self, statement: str, *args: Any) -> None:
        """Run one write statement with the next batch, without waiting for it."""
        self._post(_statement(statement, args))

    async def write(self, job: PgJob) -> Any:
        """Run ``job(connection)`` in the next write transaction; its result once committed."""
        return await self._submit(job)

    def post(self, job: PgJob) -> None:
        """Run ``job(connection)`` in the next write transaction, without waiting."""
        self._post(job)

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[asyncpg.Connection]:
        """A read connection, without waiting for the queued writes.

        Raises:
            DatabaseUnavailableError: the server cannot be reached.
        """
        pool = self._pool
        if pool is None:
            raise StorageError("database is not open")
        try:
            async with pool.acquire(timeout=_CONNECT_TIMEOUT) as conn:
                yield conn
        except Exception as exc:
            if is_connection_problem(exc) or isinstance(exc, TimeoutError):
                raise DatabaseUnavailableError(
                    f"cannot reach PostgreSQL ({describe(exc)})"
                ) from None
            raise

    async def _read_value(self, statement: str, *args: Any) -> Any:
        """One value read at once (see :meth:`_reader`)."""
        async with self._reader() as conn:
            return await conn.fetchval(statement, *args)

    async def session_nodes(self, gateway_ids: Sequence[str] | None) -> dict[str, str]:
        """The node recorded as holding each gateway (cluster mode, see :mod:`.pg_cluster`).

        Args:
            gateway_ids: the gateways (``None``: every gateway recorded).

        Raises:
            DatabaseUnavailableError: the server cannot be reached.
        """
        async with self._reader() as conn:
            if gateway_ids is None:
                rows = await conn.fetch(SESSION_NODES_ALL)
            else:
                rows = await conn.fetch(SESSION_NODES, gateway_ids)
        return {row[0]: row[1] for row in rows}

    async def refresh_gateways(
        self, gateway_ids: Sequence[str] | None = None, *, keep_missing: bool = False
    ) -> None:
        """Re-read gateways from the database into the mirror (all when ``None``).

        In a cluster another node may have registered, changed or removed them, or
        seen them first. Named gateways missing from the database leave the mirror
        unless ``keep_missing`` (a gateway another node has just seen first, which
        may connect here too before its row is committed); a refresh of all only adds
        and updates (a gateway seen here a moment ago may not be committed yet).

        Raises:
            DatabaseUnavailableError: the server cannot be reached.
        """
        select = "SELECT id, registered, password_hash, registration_status FROM gateways"
        async with self._reader() as conn:
            if gateway_ids is None:
                rows = await conn.fetch(select)
            else:
                rows = await conn.fetch(select + " WHERE id = any($1::text[])", gateway_ids)
        found = {row[0]: GatewayRecord(row[0], bool(row[1]), row[2], row[3]) for row in rows}
        for gateway_id in () if keep_missing else gateway_ids or ():
            if gateway_id not in found:
                self.gateways.pop(gateway_id, None)
        for gateway_id, record in found.items():
            known = self.gateways.get(gateway_id)
            if known is None:
                self.gateways[gateway_id] = record
            else:
                known.registered = record.registered
                known.password_hash = record.password_hash
                known.registration_status = record.registration_status

    # --- gateways ----------------------------------------------------------------------

    def ensure_gateway(self, gateway_id: str) -> GatewayRecord:
        """The record of a gateway, creating an unregistered one when first seen."""
        record = self.gateways.get(gateway_id)
        if record is None:
            now = now_text()

            async def insert(conn: asyncpg.Connection) -> None:
                await conn.execute(_INSERT_GATEWAY, gateway_id, now, now, now)

            self._post(insert)
            record = GatewayRecord(gateway_id, False, None, None)
            self.gateways[gateway_id] = record
        return record

    async def register_gateway(self, gateway_id: str, password_hash: str | None) -> bool:
        """Register a gateway (or an already seen one) with an optional secret hash.

        Returns:
            ``False`` when a registered gateway with this id exists already.
        """
        record = self.gateways.get(gateway_id)
        if record is not None and record.registered:
            return False
        created = now_text()

        async def upsert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO gateways (id, registered, password_hash, created_at) "
                "VALUES ($1, true, $2, $3) ON CONFLICT (id) DO UPDATE SET registered = true, "
                "password_hash = excluded.password_hash",
                gateway_id,
                password_hash,
                created,
            )

        future = self._submit(upsert)
        previous = None if record is None else (record.registered, record.password_hash)
        if record is None:
            record = self.gateways[gateway_id] = GatewayRecord(gateway_id, True, None, None)
        record.registered = True
        record.password_hash = password_hash
        try:
            await future
        except Exception:  # not stored: the mirror must not say it is
            if previous is None:
                self.gateways.pop(gateway_id, None)
            else:
                record.registered, record.password_hash = previous
            raise
        return True

    async def set_password(self, gateway_id: str, password_hash: str | None) -> None:
        """Register a gateway if needed and set (or with ``None`` clear) its secret hash."""
        if await self.register_gateway(gateway_id, password_hash):
            return

        async def update(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE gateways SET password_hash = $1 WHERE id = $2", password_hash, gateway_id
            )

        future = self._submit(update)
        record = self.gateways[gateway_id]
        previous, record.password_hash = record.password_hash, password_hash
        try:
            await future
        except Exception:  # not stored: the mirror must not say it is
            record.password_hash = previous
            raise

    async def register_gateways(self, entries: Sequence[tuple[str, str | None]]) -> list[str]:
        """Register many gateways (id, secret hash) in one transaction: all or none.

        Gateways only seen so far become registered. The ids are checked against the
        mirror and the mirror is updated before the first ``await``, so no other
        registration can slip in between.

        Returns:
            The ids already registered (nothing is stored then); empty on success.
        """
        taken = registered_already(self.gateways, entries)
        if taken:
            return taken
        created = now_text()
        ids = [gateway_id for gateway_id, _ in entries]
        hashes = [password_hash for _, password_hash in entries]

        async def upsert(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO gateways (id, registered, password_hash, created_at) "
                "SELECT id, true, password_hash, $3 FROM unnest($1::text[], $2::text[]) "
                "AS entry (id, password_hash) "
                "ON CONFLICT (id) DO UPDATE SET registered = true, "
                "password_hash = excluded.password_hash",
                ids,
                hashes,
                created,
            )

        future = self._submit(upsert)
        previous = mirror_registered(self.gateways, entries)
        try:
            await future
        except Exception:  # not stored: the mirror must not say it is
            restore_mirror(self.gateways, previous)
            raise
        return []

    async def delete_gateway(self, gateway_id: str) -> bool:
        """Delete a gateway and everything stored about it; ``False`` when unknown."""
        if gateway_id not in self.gateways:
            return False

        async def delete(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM gateways WHERE id = $1", gateway_id)
            for table in DATA_TABLES:
                await conn.execute(f"DELETE FROM {table} WHERE gateway_id = $1", gateway_id)

        future = self._submit(delete)
        record = self.gateways.pop(gateway_id)
        self._seen.pop(gateway_id, None)
        try:
            await future
        except Exception:  # not deleted: the mirror keeps it
            self.gateways.setdefault(gateway_id, record)
            raise
        return True

    def set_connected(
        self,
        gateway_id: str,
        connected: bool,
        *,
        remote_address: str | None = None,
        tls: bool = False,
    ) -> None:
        """Record that a gateway connected (spec §6.1: address, TLS state) or left."""
        self.ensure_gateway(gateway_id)
        now = now_text()

        async def update(conn: asyncpg.Connection) -> None:
            if connected:
                await conn.execute(
                    "UPDATE gateways SET connected = true, connected_since = $1, "
                    "remote_address = $2, tls = $3, last_seen = $1, "
                    "first_seen = coalesce(first_seen, $1) WHERE id = $4",
                    now,
                    remote_address,
                    tls,
                    gateway_id,
                )
            elif await self._holds(conn, gateway_id):
                await conn.execute(
                    "UPDATE gateways SET connected = false, last_seen = $1 WHERE id = $2",
                    now,
                    gateway_id,
                )

        self._post(update)

    async def _holds(self, conn: asyncpg.Connection, gateway_id: str) -> bool:
        """Whether no other node of a cluster holds the gateway (see :mod:`.pg_cluster`)."""
        if self.node_id is None:
            return True
        return await conn.fetchval(SESSION_OWNER_LOCKED, gateway_id) in (None, self.node_id)

    def touch(self, gateway_id: str, time_ms: int) -> None:
        """Note that a gateway was heard from (written with the next write)."""
        if gateway_id in self.gateways:
            self._seen[gateway_id] = time_ms

    # --- data from gateways (committed before the CALLRESULT is sent) -----------------

    async def _claimed(
        self, conn: asyncpg.Connection, gateway_id: str, action: str, unique_id: str | None
    ) -> bool:
        """Claim a CALL's unique id; ``False`` when it was stored before (spec §6.2)."""
        if unique_id is None:
            return True
        if _inserted(await conn.execute(_CLAIM, gateway_id, action, unique_id, now_text())):
            return True
        self.duplicates += 1
        return False

    async def record_boot(
        self, gateway_id: str, request: core.BootNotificationRequest, status: str
    ) -> None:
        """Store a BootNotification's info and the status answered (spec §4.1)."""
        self.ensure_gateway(gateway_id).registration_status = status
        info = encode_payload(request, validate=False).decode("utf-8")
        now = now_text()

        async def update(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE gateways SET boot_info = $1, last_boot_at = $2, "
                "registration_status = $3, last_seen = $2 WHERE id = $4",
                info,
                now,
                status,
                gateway_id,
            )

        await self._submit(update)

    async def record_status(
        self, gateway_id: str, unique_id: str | None, request: core.StatusNotificationRequest
    ) -> bool:
        """Store a StatusNotification (spec §4.1); ``False`` for a duplicate."""
        now = now_text()
        timestamp = None if request.timestamp is None else encode_datetime(request.timestamp)
        row = (
            gateway_id,
            request.service_id,
            request.status.value,
            request.error_code.value,
            request.info,
            request.vendor_id,
            request.vendor_error_code,
            timestamp,
            now,
        )

        async def write(conn: asyncpg.Connection) -> bool:
            if not await self._claimed(conn, gateway_id, "StatusNotification", unique_id):
                return False
            await conn.execute(_UPSERT_STATUS, *row)
            await conn.execute(_INSERT_STATUS_HISTORY, *row, unique_id)
            return True

        stored: bool = await self._submit(write)
        return stored

    async def record_meter_values(
        self, gateway_id: str, unique_id: str | None, request: core.MeterValuesRequest
    ) -> int | None:
        """Store a MeterValues (spec §4.1): one row, its sampled values packed.

        The rows of every MeterValues queued for the same transaction are inserted by
        one statement (see :class:`_MeterBatch`).

        Returns:
            The number of sampled values stored, or ``None`` for a duplicate.
        """
        packed = pack(request.meter_value)
        batch = self._meters
        if batch is None or batch.future is None or batch.future.done():
            batch = self._meters = _MeterBatch()
            new = batch
            batch.future = self._submit(lambda conn: self._insert_meters(conn, new))
        batch_future = batch.future
        key = None if unique_id is None else (gateway_id, unique_id)
        if key is not None and key in batch.keys:  # sent twice within one batch
            await batch_future
            self.duplicates += 1
            return None
        if key is not None:
            batch.keys.add(key)
        batch.rows.append(
            (
                gateway_id,
                request.service_id,
                packed.first_ms,
                packed.last_ms,
                packed.measurands,
                now_ms(),
                unique_id,
                packed.samples,
            )
        )
        batch.span = max(batch.span, packed.last_ms - packed.first_ms)
        await batch_future
        if key is not None and key not in batch.stored:
            self.duplicates += 1
            return None
        self.samples_stored += packed.count
        return packed.count

    async def _insert_meters(self, conn: asyncpg.Connection, batch: _MeterBatch) -> None:
        if self._meters is batch:  # later MeterValues go to the next transaction
            self._meters = None
        rows = batch.rows
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        stored = await conn.fetch(_INSERT_METER_MESSAGES, *columns)
        batch.stored = {(row[0], row[1]) for row in stored if row[1] is not None}
        if batch.span > 0:  # several meter values: widen the bound the queries rely on
            await conn.execute("UPDATE meter_span SET max_ms = greatest(max_ms, $1)", batch.span)

    async def _record_progress(
        self, table: str, action: str, gateway_id: str, unique_id: str | None, status: str
    ) -> bool:
        now = now_text()

        async def write(conn: asyncpg.Connection) -> bool:
            if not await self._claimed(conn, gateway_id, action, unique_id):
                return False
            await conn.execute(
                f"INSERT INTO {table} (gateway_id, status, received_at, unique_id) "
                "VALUES ($1, $2, $3, $4)",
                gateway_id,
                status,
                now,
                unique_id,
            )
            return True

        stored: bool = await self._submit(write)
        return stored

    async def record_data_transfer(
        self, gateway_id: str, unique_id: str | None, request: core.DataTransferRequest
    ) -> bool:
        """Store a DataTransfer from a gateway (spec §4.1); ``False`` for a duplicate."""
        now = now_text()

        async def write(conn: asyncpg.Connection) -> bool:
            if not await self._claimed(conn, gateway_id, "DataTransfer", unique_id):
                return False
            await conn.execute(
                "INSERT INTO data_transfers (gateway_id, vendor_id, message_id, data, "
                "received_at, unique_id) VALUES ($1, $2, $3, $4, $5, $6)",
                gateway_id,
                request.vendor_id,
                request.message_id,
                request.data,
                now,
                unique_id,
            )
            return True

        stored: bool = await self._submit(write)
        return stored

    # --- frame log and commands ------------------------------------------------------

    async def command_started(
        self, gateway_id: str, action: str, request_json: str, token_name: str | None = None
    ) -> int:
        """Record a C→G request sent through the API (written with the next batch)."""
        if self.node_id is None:
            command_id = self._next_command = self._next_command + 1
        else:  # several nodes write commands: the ids come from a sequence
            command_id = int((await self._read_value(NEXT_COMMAND_ID)) or 0)
        self.post_execute(
            INSERT_COMMAND, command_id, gateway_id, action, request_json, now_text(), token_name
        )
        return command_id

    async def command_finished(
        self,
        command_id: int,
        outcome: str,
        duration: float,
        *,
        response_json: str | None = None,
        error_code: str | None = None,
        error_description: str | None = None,
        error_details_json: str | None = None,
    ) -> None:
        """Record the outcome of a command (``ok``, ``callerror``, ``timeout`` ...)."""
        row = (
            now_text(),
            outcome,
            response_json,
            error_code,
            error_description,
            error_details_json,
            round(duration * 1000.0, 3),
            command_id,
        )

        async def update(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE commands SET finished_at = $1, outcome = $2, response = $3, "
                "error_code = $4, error_description = $5, error_details = $6, "
                "duration_ms = $7 WHERE id = $8",
                *row,
            )

        await self._submit(update)

    # --- retention -----------------------------------------------------------------------

    async def prune(self, frame_days: float) -> int:
        """Delete frames older than ``frame_days`` days (0: keep everything).

        Unique ids of stored messages are kept at least 7 days (see
        :meth:`.storage.Storage.prune`).

        Returns:
            The number of frames deleted.
        """
        if frame_days <= 0:
            return 0
        now = datetime.now(UTC)
        frames_before = int((now - timedelta(days=frame_days)).timestamp() * 1000)
        ids_before = encode_datetime(now - timedelta(days=max(frame_days, 7.0)))
        cutoff = await self.read(queries.first_frame_at, frames_before)  # after the writes
        deleted = await self._prune_chunks(
            "DELETE FROM frames WHERE id IN (SELECT id FROM frames WHERE id < $1 LIMIT $2)",
            cutoff,
        )
        await self._prune_chunks(
            "DELETE FROM received_calls WHERE (gateway_id, action, unique_id) IN "
            "(SELECT gateway_id, action, unique_id FROM received_calls "
            "WHERE received_at < $1 LIMIT $2)",
            ids_before,
        )
        return deleted

    async def _prune_chunks(self, statement: str, before: str | int) -> int:
        total = 0
        while self.is_open:

            async def chunk(conn: asyncpg.Connection) -> int:
                return int((await conn.execute(statement, before, PRUNE_CHUNK)).split()[-1])

            count: int = await self._submit(chunk)
            total += count
            if count < PRUNE_CHUNK:
                break
        return total
