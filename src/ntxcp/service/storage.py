"""SQLite storage of the control center service: the write path and its guarantees.

One database file in WAL mode, one connection, used on the event loop's thread only.
How durable a commit is depends on ``durability`` (:class:`~.config.Durability`):
``disk`` (the default) runs ``synchronous=FULL``, so every group commit fsyncs the
WAL before any CALLRESULT it covers is sent and acknowledged data survives a power
cut; ``process`` runs ``synchronous=NORMAL``, so a commit reaches the operating
system without an fsync and survives only the death of the process.

* **writes** go to a :class:`~ntxcp.service.writer.BatchWriter`, which commits the
  writes queued during one event-loop iteration in one transaction (group commit).
  The ``record_*`` methods return once their data is committed, so a handler that
  awaits one answers the gateway (the CALLRESULT) only after the data is stored.
  Statements are prepared once and reused from the connection's statement cache;
  sampled values are inserted with ``executemany``;
* **reads** for the API (:meth:`Storage.read`) run right after the queued writes.
  Every list query has a bounded ``limit`` and an index, so a read holds the loop
  for milliseconds. (A thread would not help: see :mod:`.writer` on the GIL.)
* the **frame log** and "last seen" times are buffered and handed to the writer with
  the next write, or by :meth:`Storage.flush` (called periodically and before every
  read): logging costs no commit of its own.

Store and forward (spec §6.2): a gateway re-sends an unacknowledged message with the
same ``uniqueId``. The first time a (gateway, action, unique id) is stored it is
claimed in ``received_calls``; a later CALL with the same key is acknowledged without
being stored again (:meth:`Storage.record_meter_values` etc. return ``None``/``False``).

Every method is called on the event loop's thread. :attr:`Storage.gateways` mirrors
what the hot paths need to know of each gateway (registration, secret hash), so the
accept path never waits for the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from ntxcp.service.config import Durability
from ntxcp.service.migrations import MigrationError, migrate
from ntxcp.service.packing import ms_text, pack
from ntxcp.service.queries import first_frame_at
from ntxcp.service.writer import BatchWriter, Checkpointer
from ntxcp.v10 import core, firmware
from ntxcp.v10.codec import encode_payload
from ntxcp.v10.types import encode_datetime

__all__ = [
    "FRAME_LOG_PAUSED",
    "FrameHandle",
    "GatewayRecord",
    "Storage",
    "StorageError",
    "ms_text",
    "now_ms",
    "now_text",
]

T = TypeVar("T")

FRAMES_PER_BATCH = 1000
"""Buffered frames written with one batch at most (about 4 ms of the event loop)."""

SEEN_PER_BATCH = 1000
""""Last seen" times written with one batch at most."""

LONG_READERS = 2
"""Worker threads for long reads (:meth:`Storage.read_long`); more wait their turn."""

FrameHandle = tuple[list[tuple[Any, ...]], int]
"""Where a frame waits in the frame-log buffer (see :meth:`Storage.shorten_frame`)."""

_log = logging.getLogger("ntxcp.service.storage")

_INSERT_FRAME = (
    "INSERT INTO frames (gateway_id, direction, time_ms, message_type, action, unique_id, raw, "
    "size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_CLAIM = (
    "INSERT OR IGNORE INTO received_calls (gateway_id, action, unique_id, received_at) "
    "VALUES (?, ?, ?, ?)"
)
# One row per MeterValues message; the unique index (gateway_id, unique_id) drops a
# re-sent one (spec §6.2), so no separate claim is needed.
_INSERT_METER_MESSAGE = (
    "INSERT OR IGNORE INTO meter_messages (gateway_id, service_id, first_ms, last_ms, "
    "measurands, received_ms, unique_id, samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Statements and names both backends use (PostgreSQL numbers the ``?`` placeholders).
STATUS_COLUMNS = (
    "gateway_id, service_id, status, error_code, info, vendor_id, vendor_error_code, "
    "timestamp, received_at"
)
# A late (store-and-forward) notification never replaces a newer current status.
UPSERT_STATUS = (
    f"INSERT INTO status_current ({STATUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (gateway_id, service_id) DO UPDATE SET status = excluded.status, "
    "error_code = excluded.error_code, info = excluded.info, vendor_id = excluded.vendor_id, "
    "vendor_error_code = excluded.vendor_error_code, timestamp = excluded.timestamp, "
    "received_at = excluded.received_at "
    "WHERE excluded.timestamp IS NULL OR status_current.timestamp IS NULL "
    "OR excluded.timestamp >= status_current.timestamp"
)
INSERT_STATUS_HISTORY = (
    f"INSERT INTO status_history ({STATUS_COLUMNS}, unique_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_COMMAND = (
    "INSERT INTO commands (id, gateway_id, action, request, sent_at, outcome, token_name) "
    "VALUES (?, ?, ?, ?, ?, 'pending', ?)"
)
_INSERT_GATEWAY = (
    "INSERT OR IGNORE INTO gateways (id, created_at, first_seen, last_seen) VALUES (?, ?, ?, ?)"
)
DATA_TABLES = (
    "received_calls",
    "status_current",
    "status_history",
    "meter_messages",
    "firmware_status",
    "diagnostics_status",
    "data_transfers",
    "frames",
    "commands",
)
PRUNE_CHUNK = 5000
# SQLite's synchronous levels: FULL fsyncs the WAL at every commit, NORMAL only at
# checkpoints (a commit then survives a process crash, not a power cut).
SYNCHRONOUS = {Durability.DISK: "FULL", Durability.PROCESS: "NORMAL"}
WAL_LIMIT = 64 * 2**20
"""Bytes of write-ahead log after which a commit checkpoints and truncates it."""
FRAME_LOG_PAUSED = "frame-log-paused"
"""The storage alarm: the database is at its size cap or the disk nearly full."""


class StorageError(Exception):
    """The database cannot be opened or used; the message says why."""


def now_text() -> str:
    """The current time as stored: UTC, milliseconds, ``Z`` (spec §3)."""
    return encode_datetime(datetime.now(UTC))


def now_ms() -> int:
    """The current time in milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class GatewayRecord:
    """What the hot paths need to know of a gateway, mirrored in memory.

    Attributes:
        id: the gateway id.
        registered: registered through the API (not just seen).
        password_hash: the stored secret hash, if any (see :mod:`.passwords`).
        registration_status: the status last answered to its BootNotification.
    """

    id: str
    registered: bool
    password_hash: str | None
    registration_status: str | None


def registered_already(
    gateways: dict[str, GatewayRecord], entries: Sequence[tuple[str, str | None]]
) -> list[str]:
    """The ids of ``entries`` that are registered gateways in the mirror."""
    found = (gateways.get(gateway_id) for gateway_id, _ in entries)
    return [record.id for record in found if record is not None and record.registered]


def mirror_registered(
    gateways: dict[str, GatewayRecord], entries: Sequence[tuple[str, str | None]]
) -> dict[str, GatewayRecord | None]:
    """Mark gateways registered in the mirror; returns what :func:`restore_mirror` needs."""
    previous: dict[str, GatewayRecord | None] = {}
    for gateway_id, password_hash in entries:
        record = gateways.get(gateway_id)
        previous[gateway_id] = None if record is None else dataclasses.replace(record)
        if record is None:
            record = gateways[gateway_id] = GatewayRecord(gateway_id, True, None, None)
        record.registered = True
        record.password_hash = password_hash
    return previous


def restore_mirror(
    gateways: dict[str, GatewayRecord], previous: dict[str, GatewayRecord | None]
) -> None:
    """Undo :func:`mirror_registered` after a failed write: the mirror says what is stored."""
    for gateway_id, record in previous.items():
        if record is None:
            gateways.pop(gateway_id, None)
        elif (current := gateways.get(gateway_id)) is not None:
            current.registered, current.password_hash = record.registered, record.password_hash


def _claimed(
    conn: sqlite3.Connection, gateway_id: str, action: str, unique_id: str | None, now: str
) -> bool:
    """Claim a CALL's unique id; ``False`` when it was stored before (spec §6.2)."""
    if unique_id is None:
        return True
    return conn.execute(_CLAIM, (gateway_id, action, unique_id, now)).rowcount == 1


class WriteBuffers:
    """The frame log's frames and the "last seen" times, buffered by both backends.

    They are written at the start of each batch (in its transaction), so a logged
    frame or a "last seen" time costs no commit of its own; the "last seen" times only
    once per flush interval (``_seen_due``).
    """

    def __init__(self) -> None:
        self._frames: list[tuple[Any, ...]] = []
        self._seen: dict[str, int] = {}
        self._seen_due = False
        self._frames_taken = 0  # frames handed to batches so far

    def _take_buffers(
        self, max_frames: int | None = None, max_seen: int | None = None
    ) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
        """The buffered frames, and the "last seen" times if due, handed to a batch.

        Args:
            max_frames: most frames handed over (the oldest; the rest wait for the
                next batch). ``None``: all.
            max_seen: most "last seen" times handed over. ``None``: all.
        """
        frames = self._frames
        seen: dict[str, int] = {}
        if self._seen_due:
            if max_seen is None or len(self._seen) <= max_seen:
                seen, self._seen, self._seen_due = self._seen, {}, False
            else:
                seen = {key: self._seen.pop(key) for key in list(islice(self._seen, max_seen))}
        if max_frames is not None and len(frames) > max_frames:
            # A new list for the rest: handles into the old one no longer shorten it.
            frames, self._frames = frames[:max_frames], frames[max_frames:]
        elif frames:
            self._frames = []
        self._frames_taken += len(frames)
        return frames, seen

    @property
    def buffers_left(self) -> bool:
        """Whether frames, or due "last seen" times, wait for a batch."""
        return bool(self._frames) or (self._seen_due and bool(self._seen))

    def _take_for_batch(self, closing: bool) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
        """What one batch writes of the buffers.

        At most :data:`FRAMES_PER_BATCH` frames and :data:`SEEN_PER_BATCH` times: the
        batch runs on the event loop (SQLite's statements, the encoding of
        PostgreSQL's copy), and after a restart (thousands of gateways reconnecting)
        an unbounded buffer made ticks of 100-160 ms that every connected gateway
        waited for. When more wait, the next batch is asked for at once
        (:meth:`_request_batch`). While ``closing`` (the writer is being drained and
        takes no new job) everything goes.
        """
        if closing:
            return self._take_buffers()
        taken = self._take_buffers(FRAMES_PER_BATCH, SEEN_PER_BATCH)
        if self.buffers_left:
            self._request_batch()
        return taken

    def _request_batch(self) -> None:
        """Have the backend's writer run one more batch soon (no waiting)."""
        raise NotImplementedError

    async def _batch_committed(self) -> None:
        """Queue a batch on the backend's writer and wait until it is committed."""
        raise NotImplementedError

    async def sync(self) -> None:
        """Wait until every write queued so far (and the frame log) is committed."""
        logged = self._frames_taken + len(self._frames)  # every frame logged so far
        await self._batch_committed()
        while self._frames_taken < logged:  # more frames than one batch takes
            await self._batch_committed()

    def log_frame(
        self,
        gateway_id: str,
        direction: str,
        time_ms: int,
        message_type: int | None,
        action: str | None,
        unique_id: str | None,
        raw: bytes,
        size: int | None = None,
    ) -> FrameHandle:
        """Buffer one frame of the frame log (written with the next write).

        Args:
            gateway_id: the gateway.
            direction: ``"in"`` or ``"out"``.
            time_ms: when, in milliseconds since the Unix epoch.
            message_type: 2, 3, 4 or ``None`` (not a JSON-RPC message).
            action: the action, when known.
            unique_id: the message's unique id, when readable.
            raw: the frame's bytes, or an excerpt of them.
            size: the frame's full size in bytes when ``raw`` is an excerpt.

        Returns:
            A handle for :meth:`shorten_frame`.
        """
        frames = self._frames
        frames.append((gateway_id, direction, time_ms, message_type, action, unique_id, raw, size))
        return frames, len(frames) - 1

    def shorten_frame(self, handle: FrameHandle, raw: bytes, size: int) -> bool:
        """Replace a buffered frame by an excerpt, if it is still buffered.

        Returns:
            Whether the frame was still in the buffer (and is now shortened).
        """
        frames, index = handle
        if frames is not self._frames:
            return False
        frames[index] = (*frames[index][:6], raw, size)
        return True

    @property
    def pending_frames(self) -> int:
        """Frames buffered and not yet handed to the writer."""
        return len(self._frames)


class ProgressRecords:
    """The firmware and diagnostics progress notifications, stored alike by both backends.

    A backend provides ``_record_progress(table, action, gateway_id, unique_id, status)``.
    """

    async def _record_progress(
        self, table: str, action: str, gateway_id: str, unique_id: str | None, status: str
    ) -> bool:
        raise NotImplementedError

    async def record_firmware_status(
        self, gateway_id: str, unique_id: str | None, status: firmware.FirmwareStatus
    ) -> bool:
        """Store a FirmwareStatusNotification (spec §4.2); ``False`` for a duplicate."""
        return await self._record_progress(
            "firmware_status", "FirmwareStatusNotification", gateway_id, unique_id, status.value
        )

    async def record_diagnostics_status(
        self, gateway_id: str, unique_id: str | None, status: firmware.DiagnosticsStatus
    ) -> bool:
        """Store a DiagnosticsStatusNotification (spec §4.2); ``False`` for a duplicate."""
        return await self._record_progress(
            "diagnostics_status",
            "DiagnosticsStatusNotification",
            gateway_id,
            unique_id,
            status.value,
        )


class Storage(WriteBuffers, ProgressRecords):
    """The service's database.

    Args:
        path: the SQLite file (created if missing).
        durability: when a commit counts as stored (fsync'ed, or handed to the OS).
        max_db_size: database + WAL bytes at which the frame log stops (0: no cap).
        min_free_disk: free bytes on the file system below which it stops (0: no check).
        wal_limit: WAL bytes after which a commit checkpoints and truncates the WAL.
    """

    def __init__(
        self,
        path: str | Path,
        durability: Durability = Durability.DISK,
        *,
        max_db_size: int = 0,
        min_free_disk: int = 0,
        wal_limit: int = WAL_LIMIT,
    ) -> None:
        self.path = Path(path)
        self.durability = durability
        self.max_db_size = max_db_size
        self.min_free_disk = min_free_disk
        self.wal_limit = wal_limit
        self.alarms: tuple[str, ...] = ()
        """Storage alarms raised now (see :meth:`check_disk`)."""
        self.database_bytes = 0
        """Database + WAL size at the last :meth:`check_disk`."""
        self.gateways: dict[str, GatewayRecord] = {}
        self._writer: BatchWriter | None = None
        self._checkpointer: Checkpointer | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._long_reads: ThreadPoolExecutor | None = None
        self._legacy_claims = False
        self._next_command = 0
        WriteBuffers.__init__(self)
        self.samples_stored = 0
        """Sampled values stored since the start."""
        self.duplicates = 0
        """Re-sent messages recognised since the start."""

    # --- lifecycle -------------------------------------------------------------------

    backend = "sqlite"
    """Which backend this is (see :mod:`.backend`)."""

    @property
    def unreachable(self) -> str | None:
        """Why the database cannot be reached (never: the file is local)."""
        return None

    async def start(self) -> None:
        """Open the database (see :meth:`open`); the service's start-up calls this."""
        self.open()

    def open(self) -> None:
        """Open (creating if needed) and migrate the database; load the gateways.

        Raises:
            StorageError: the file cannot be opened, is not a database, or has a
                schema this service cannot use.
        """
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.durability]}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: hot index pages stay cached
            # Checkpoints run on their own thread (see Checkpointer), not in a commit.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            # A WAL reset after a checkpoint truncates the file to this size.
            conn.execute(f"PRAGMA journal_size_limit={self.wal_limit}")
            migrate(conn)
            conn.execute("UPDATE gateways SET connected = 0 WHERE connected != 0")
            rows = conn.execute(
                "SELECT id, registered, password_hash, registration_status FROM gateways"
            ).fetchall()
            legacy = conn.execute(
                "SELECT 1 FROM received_calls WHERE action = 'MeterValues' LIMIT 1"
            ).fetchone()
            last_command = conn.execute("SELECT max(id) FROM commands").fetchone()[0]
            reader = _open_reader(self.path)
        except (sqlite3.Error, MigrationError) as exc:
            conn.close()
            raise StorageError(f"cannot use database {self.path}: {exc}") from None
        self.gateways = {
            row[0]: GatewayRecord(row[0], bool(row[1]), row[2], row[3]) for row in rows
        }
        self._legacy_claims = legacy is not None
        self._next_command = int(last_command or 0)
        self._conn = conn
        self._reader = reader
        self._writer = BatchWriter(
            conn,
            wal=_wal_path(self.path),
            wal_limit=self.wal_limit,
            commit_off_loop=self.durability is Durability.DISK,
            before_batch=self._write_buffers,
        )
        self._checkpointer = Checkpointer(self.path, SYNCHRONOUS[self.durability])
        self._checkpointer.start()

    async def close(self) -> None:
        """Write what is buffered and queued, then close the database."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._seen_due = True
        writer.post(_nothing)
        await writer.aclose()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._long_reads is not None:  # a long read still running ends first
            await asyncio.to_thread(self._long_reads.shutdown)
            self._long_reads = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    @property
    def is_open(self) -> bool:
        """Whether the database is open."""
        return self._writer is not None

    def _live_writer(self) -> BatchWriter:
        writer = self._writer
        if writer is None:
            raise StorageError("database is not open")
        return writer

    def _submit(self, job: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue a write; the future resolves once committed (with the buffered frames)."""
        return self._live_writer().submit(job)

    def _post(self, job: Callable[[sqlite3.Connection], Any]) -> None:
        self._live_writer().post(job)

    def _write_buffers(self, conn: sqlite3.Connection) -> None:
        """At the start of each batch: write the buffered frames and "last seen" times.

        Logged frames thus share the transaction of the data that arrived with them,
        and cost no commit of their own. A failure here loses only these frames. At
        most one batch's worth (see :meth:`_take_for_batch`).
        """
        frames, seen = self._take_for_batch(closing=self._writer is None)
        if not frames and not seen:
            return
        try:
            if frames:
                conn.executemany(_INSERT_FRAME, frames)
            if seen:
                conn.executemany(
                    "UPDATE gateways SET last_seen = ? WHERE id = ?",
                    [(ms_text(ms), gateway_id) for gateway_id, ms in seen.items()],
                )
        except sqlite3.Error as exc:
            _log.error("writing %d frames of the frame log failed: %s", len(frames), exc)

    def release_memory(self) -> None:
        """Empty the connections' page caches of pages no statement holds (no waiting).

        Each connection may cache up to 64 MiB of pages; a burst of writes (a flood of
        frames into the frame log) fills the writer's and they stay, a third of the
        service's memory after an attack. SQLite frees the unused ones on ``PRAGMA
        shrink_memory``; what is hot comes back from the system's file cache. The
        service does this every :data:`~ntxcp.service.memory.TRIM_INTERVAL` seconds.
        """
        if self._reader is not None:
            self._reader.execute("PRAGMA shrink_memory")
        if self._writer is not None:
            self._writer.post(_shrink_memory)

    def flush(self) -> None:
        """Have the buffered frames and times written with the next batch (no waiting)."""
        writer = self._writer
        if writer is not None and (self._frames or self._seen):
            self._seen_due = True
            writer.post(_nothing)

    def _request_batch(self) -> None:
        self._post(_nothing)

    async def _batch_committed(self) -> None:
        await self._submit(_nothing)

    @property
    def frame_log_paused(self) -> bool:
        """Whether the frame log is stopped by the storage alarm."""
        return bool(self.alarms)

    def check_disk(self) -> tuple[str, ...]:
        """Measure the database and the free disk space; raise or clear the alarm.

        Returns:
            The alarms raised now (empty: none).
        """
        size = 0
        for file in (self.path, _wal_path(self.path)):
            with suppress(OSError):
                size += file.stat().st_size
        self.database_bytes = size
        reasons: list[str] = []
        if self.max_db_size and size >= self.max_db_size:
            reasons.append(f"database is {size} bytes, at its cap of {self.max_db_size}")
        if self.min_free_disk:
            try:
                free = shutil.disk_usage(self.path.parent).free
            except OSError:
                free = None
            if free is not None and free < self.min_free_disk:
                reasons.append(f"{free} bytes free on disk, less than {self.min_free_disk}")
        alarms = (FRAME_LOG_PAUSED,) if reasons else ()
        if alarms and not self.alarms:
            _log.warning("storage alarm: frame log stopped (%s)", "; ".join(reasons))
        elif self.alarms and not alarms:
            _log.info("storage alarm cleared: frame log resumed (%d bytes)", size)
        self.alarms = alarms
        return alarms

    # --- reads -------------------------------------------------------------------------

    async def _after_queued_writes(self) -> None:
        """Wait until every write queued so far is committed (a read sees it)."""
        if self._live_writer().busy or self._frames or self._seen:
            self._seen_due = True
            await self.sync()  # nothing queued: no commit (and fsync) just for a read

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run ``query(connection, *args)`` after every write queued before it.

        The query runs on the read connection (WAL: it sees every committed write and
        never blocks the writer), on the event loop's thread.

        Args:
            query: a function of the connection that only reads (see :mod:`.queries`).
            *args: its further arguments.

        Returns:
            What the function returned.
        """
        await self._after_queued_writes()
        reader = self._reader
        if reader is None:
            raise StorageError("database is not open")
        return query(reader, *args)

    async def read_long(self, query: Callable[..., T], *args: Any) -> T:
        """Like :meth:`read`, for a query that reads a long range (tenths of a second).

        Such a query (e.g. :func:`.queries.meter_series` over a week of samples) would
        stop the event loop, and with it every gateway, for as long as it runs. It runs
        instead on a connection of its own in one of :data:`LONG_READERS` worker
        threads; while its Python code runs, the loop gets the interpreter back at every
        switch interval (5 ms), and SQLite's own work releases it altogether.
        """
        await self._after_queued_writes()
        if self._long_reads is None:
            self._long_reads = ThreadPoolExecutor(LONG_READERS, thread_name_prefix="ntxcp-db-read")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._long_reads, _read_apart, self.path, query, args)

    async def fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL statement (``?`` placeholders), after the queued writes.

        For tools and tests that look at tables no query of :mod:`.queries` returns.
        """
        return await self.read(lambda conn: conn.execute(statement, args).fetchall())

    async def execute(self, statement: str, *args: Any) -> None:
        """Run one write statement (``?`` placeholders) in the next batch; wait for its commit."""
        await self._submit(lambda conn: conn.execute(statement, args))

    def post_execute(self, statement: str, *args: Any) -> None:
        """Run one write statement with the next batch, without waiting for it."""
        self._post(lambda conn: conn.execute(statement, args))

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job(connection)`` in the next write transaction; its result once committed.

        Args:
            job: a function of the write connection.

        Returns:
            What the function returned.
        """
        return await self._submit(job)

    # --- gateways ----------------------------------------------------------------------

    def ensure_gateway(self, gateway_id: str) -> GatewayRecord:
        """The record of a gateway, creating an unregistered one when first seen."""
        record = self.gateways.get(gateway_id)
        if record is None:
            now = now_text()
            self._post(lambda conn: conn.execute(_INSERT_GATEWAY, (gateway_id, now, now, now)))
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
        if record is None:
            record = self.gateways[gateway_id] = GatewayRecord(gateway_id, True, None, None)
        record.registered = True
        record.password_hash = password_hash
        await self._submit(
            lambda conn: conn.execute(
                "INSERT INTO gateways (id, registered, password_hash, created_at) "
                "VALUES (?, 1, ?, ?) ON CONFLICT (id) DO UPDATE SET registered = 1, "
                "password_hash = excluded.password_hash",
                (gateway_id, password_hash, now_text()),
            )
        )
        return True

    async def set_password(self, gateway_id: str, password_hash: str | None) -> None:
        """Register a gateway if needed and set (or with ``None`` clear) its secret hash."""
        if await self.register_gateway(gateway_id, password_hash):
            return
        self.gateways[gateway_id].password_hash = password_hash
        await self._submit(
            lambda conn: conn.execute(
                "UPDATE gateways SET password_hash = ? WHERE id = ?", (password_hash, gateway_id)
            )
        )

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
        rows = [(gateway_id, password_hash, created) for gateway_id, password_hash in entries]
        previous = mirror_registered(self.gateways, entries)
        try:
            await self._submit(
                lambda conn: conn.executemany(
                    "INSERT INTO gateways (id, registered, password_hash, created_at) "
                    "VALUES (?, 1, ?, ?) ON CONFLICT (id) DO UPDATE SET registered = 1, "
                    "password_hash = excluded.password_hash",
                    rows,
                )
            )
        except Exception:  # not stored: the mirror must not say it is
            restore_mirror(self.gateways, previous)
            raise
        return []

    async def delete_gateway(self, gateway_id: str) -> bool:
        """Delete a gateway and everything stored about it.

        Returns:
            ``False`` when no such gateway exists.
        """
        if self.gateways.pop(gateway_id, None) is None:
            return False
        self._seen.pop(gateway_id, None)

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM gateways WHERE id = ?", (gateway_id,))
            for table in DATA_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE gateway_id = ?", (gateway_id,))

        await self._submit(delete)
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
        if connected:
            self._post(
                lambda conn: conn.execute(
                    "UPDATE gateways SET connected = 1, connected_since = ?, remote_address = ?, "
                    "tls = ?, last_seen = ?, first_seen = coalesce(first_seen, ?) WHERE id = ?",
                    (now, remote_address, int(tls), now, now, gateway_id),
                )
            )
        else:
            self._post(
                lambda conn: conn.execute(
                    "UPDATE gateways SET connected = 0, last_seen = ? WHERE id = ?",
                    (now, gateway_id),
                )
            )

    def touch(self, gateway_id: str, time_ms: int) -> None:
        """Note that a gateway was heard from (ms since the epoch; written with the next write)."""
        if gateway_id in self.gateways:
            self._seen[gateway_id] = time_ms

    # --- data from gateways (committed before the CALLRESULT is sent) -----------------

    async def record_boot(
        self, gateway_id: str, request: core.BootNotificationRequest, status: str
    ) -> None:
        """Store a BootNotification's info and the status answered (spec §4.1)."""
        self.ensure_gateway(gateway_id).registration_status = status
        info = encode_payload(request, validate=False).decode("utf-8")
        now = now_text()
        await self._submit(
            lambda conn: conn.execute(
                "UPDATE gateways SET boot_info = ?, last_boot_at = ?, registration_status = ?, "
                "last_seen = ? WHERE id = ?",
                (info, now, status, now, gateway_id),
            )
        )

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

        def write(conn: sqlite3.Connection) -> bool:
            if not _claimed(conn, gateway_id, "StatusNotification", unique_id, now):
                self.duplicates += 1
                return False
            conn.execute(UPSERT_STATUS, row)
            conn.execute(INSERT_STATUS_HISTORY, (*row, unique_id))
            return True

        return await self._submit(write)

    async def record_meter_values(
        self, gateway_id: str, unique_id: str | None, request: core.MeterValuesRequest
    ) -> int | None:
        """Store a MeterValues (spec §4.1): one row, its sampled values packed.

        Returns:
            The number of sampled values stored, or ``None`` for a duplicate.
        """
        packed = pack(request.meter_value)
        row = (
            gateway_id,
            request.service_id,
            packed.first_ms,
            packed.last_ms,
            packed.measurands,
            now_ms(),
            unique_id,
            packed.samples,
        )
        legacy = self._legacy_claims
        span = packed.last_ms - packed.first_ms

        def write(conn: sqlite3.Connection) -> int | None:
            if legacy and not _claimed(conn, gateway_id, "MeterValues", unique_id, now_text()):
                self.duplicates += 1  # stored before the upgrade to one row per message
                return None
            if conn.execute(_INSERT_METER_MESSAGE, row).rowcount != 1:
                self.duplicates += 1
                return None
            if span > 0:  # several meter values: widen the bound the queries rely on
                conn.execute("UPDATE meter_span SET max_ms = max(max_ms, ?)", (span,))
            self.samples_stored += packed.count
            return packed.count

        return await self._submit(write)

    async def _record_progress(
        self, table: str, action: str, gateway_id: str, unique_id: str | None, status: str
    ) -> bool:
        now = now_text()

        def write(conn: sqlite3.Connection) -> bool:
            if not _claimed(conn, gateway_id, action, unique_id, now):
                self.duplicates += 1
                return False
            conn.execute(
                f"INSERT INTO {table} (gateway_id, status, received_at, unique_id) "
                "VALUES (?, ?, ?, ?)",
                (gateway_id, status, now, unique_id),
            )
            return True

        return await self._submit(write)

    async def record_data_transfer(
        self, gateway_id: str, unique_id: str | None, request: core.DataTransferRequest
    ) -> bool:
        """Store a DataTransfer from a gateway (spec §4.1); ``False`` for a duplicate."""
        now = now_text()
        row = (gateway_id, request.vendor_id, request.message_id, request.data, now, unique_id)

        def write(conn: sqlite3.Connection) -> bool:
            if not _claimed(conn, gateway_id, "DataTransfer", unique_id, now):
                self.duplicates += 1
                return False
            conn.execute(
                "INSERT INTO data_transfers (gateway_id, vendor_id, message_id, data, "
                "received_at, unique_id) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            return True

        return await self._submit(write)

    # --- frame log and commands ------------------------------------------------------

    async def command_started(
        self, gateway_id: str, action: str, request_json: str, token_name: str | None = None
    ) -> int:
        """Record a C→G request sent through the API; returns its command id.

        The row is written with the next batch, not waited for: the request goes to
        the gateway at once. :meth:`command_finished` (queued after it, so committed
        with or after it) is awaited.

        Args:
            gateway_id: the gateway it is sent to.
            action: the action.
            request_json: the request payload (wire JSON).
            token_name: the name of the API token that sent it (``None``: no token).
        """
        command_id = self._next_command = self._next_command + 1
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
        await self._submit(
            lambda conn: conn.execute(
                "UPDATE commands SET finished_at = ?, outcome = ?, response = ?, error_code = ?, "
                "error_description = ?, error_details = ?, duration_ms = ? WHERE id = ?",
                row,
            )
        )

    # --- retention -----------------------------------------------------------------------

    async def prune(self, frame_days: float) -> int:
        """Delete frames older than ``frame_days`` days (0: keep everything).

        Unique ids of stored messages are kept at least 7 days, so a gateway that was
        offline that long still has its re-sent messages recognised.

        Returns:
            The number of frames deleted.
        """
        if frame_days <= 0:
            return 0
        now = datetime.now(UTC)
        frames_before = int((now - timedelta(days=frame_days)).timestamp() * 1000)
        ids_before = encode_datetime(now - timedelta(days=max(frame_days, 7.0)))
        cutoff = await self.read(first_frame_at, frames_before)
        deleted = await self._prune_chunks(
            "DELETE FROM frames WHERE id IN (SELECT id FROM frames WHERE id < ? LIMIT ?)",
            cutoff,
        )
        await self._prune_chunks(
            # received_calls has no rowid: delete by its primary key.
            "DELETE FROM received_calls WHERE (gateway_id, action, unique_id) IN "
            "(SELECT gateway_id, action, unique_id FROM received_calls "
            "WHERE received_at < ? LIMIT ?)",
            ids_before,
        )
        return deleted

    async def _prune_chunks(self, statement: str, before: str | int) -> int:
        total = 0
        while self.is_open:
            # One chunk per transaction: the gateways' writes get their turn in between.
            count: int = await self._submit(
                lambda conn: conn.execute(statement, (before, PRUNE_CHUNK)).rowcount
            )
            total += count
            if count < PRUNE_CHUNK:
                break
        return total


def _nothing(conn: sqlite3.Connection) -> None:
    """A job that only makes a batch happen (for the buffered frames)."""


def _shrink_memory(conn: sqlite3.Connection) -> None:
    """A job that frees the writer's cached pages (on the writer's thread)."""
    conn.execute("PRAGMA shrink_memory")


def _read_apart(path: Path, query: Callable[..., T], args: tuple[Any, ...]) -> T:
    """On a worker thread: run ``query`` on a read connection opened for it alone."""
    reader = _open_reader(path)
    try:
        return query(reader, *args)
    finally:
        reader.close()


def _open_reader(path: Path) -> sqlite3.Connection:
    """The connection the API's queries use (read-only, on the event loop's thread)."""
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("PRAGMA query_only=1")
        reader.execute("PRAGMA busy_timeout=5000")
        reader.execute("PRAGMA temp_store=MEMORY")
        reader.execute("PRAGMA cache_size=-65536")
    except sqlite3.Error:
        reader.close()
        raise
    return reader


def _wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")
