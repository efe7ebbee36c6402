"""The SQLite schema of the control center service and its migrations.

The schema's version is kept in the ``schema_version`` table. Each migration is a list
of statements that takes the database from the previous version to its own; they run
in order, each in one transaction, when the service opens the database. A database
written by a newer version of the service (a version above :data:`LATEST`) is refused
rather than guessed at.

Conventions of the schema:

* date-times are TEXT in the wire form of spec §3 (``YYYY-MM-DDTHH:MM:SS.mmmZ``,
  UTC), so that they sort and compare as text;
* payloads kept whole (boot info, commands) are TEXT holding the wire JSON
  (camelCase names, spec §4);
* data tables name their gateway by id; deleting a gateway deletes its rows
  explicitly (no foreign keys, which would cost a lookup per stored meter sample).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["LATEST", "MIGRATIONS", "MigrationError", "current_version", "migrate"]


class MigrationError(Exception):
    """The database cannot be brought to the schema this service uses."""


_V1: tuple[str, ...] = (
    # Every gateway ever registered or seen (spec §6.1 tracks id, address, TLS state).
    """
    CREATE TABLE gateways (
        id TEXT PRIMARY KEY,
        registered INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT,
        registration_status TEXT,
        boot_info TEXT,
        last_boot_at TEXT,
        created_at TEXT NOT NULL,
        first_seen TEXT,
        last_seen TEXT,
        connected INTEGER NOT NULL DEFAULT 0,
        connected_since TEXT,
        remote_address TEXT,
        tls INTEGER NOT NULL DEFAULT 0
    )
    """,
    # The unique ids of stored G→C CALLs: a re-sent message (store and forward,
    # spec §6.2) keeps its id and is stored once.
    """
    CREATE TABLE received_calls (
        gateway_id TEXT NOT NULL,
        action TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (gateway_id, action, unique_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX received_calls_time ON received_calls (received_at)",
    # StatusNotification (spec §4.1): the latest per service, and every one.
    """
    CREATE TABLE status_current (
        gateway_id TEXT NOT NULL,
        service_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT NOT NULL,
        info TEXT,
        vendor_id TEXT,
        vendor_error_code TEXT,
        timestamp TEXT,
        received_at TEXT NOT NULL,
        PRIMARY KEY (gateway_id, service_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE status_history (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        service_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT NOT NULL,
        info TEXT,
        vendor_id TEXT,
        vendor_error_code TEXT,
        timestamp TEXT,
        received_at TEXT NOT NULL,
        unique_id TEXT
    )
    """,
    "CREATE INDEX status_history_gateway ON status_history (gateway_id, id)",
    # MeterValues (spec §4.1): one row per SampledValue, spec defaults filled in.
    """
    CREATE TABLE meter_values (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        service_id INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        measurand TEXT NOT NULL,
        phase TEXT,
        unit TEXT NOT NULL,
        value TEXT NOT NULL,
        context TEXT NOT NULL,
        location TEXT NOT NULL,
        format TEXT NOT NULL,
        received_at TEXT NOT NULL
    )
    """,
    # Two indexes serve every filter of the API (a service filter scans one of them);
    # each further index costs a B-tree page per gateway per commit on the write path.
    "CREATE INDEX meter_values_time ON meter_values (gateway_id, timestamp)",
    "CREATE INDEX meter_values_measurand ON meter_values (gateway_id, measurand, timestamp)",
    # FirmwareStatusNotification and DiagnosticsStatusNotification (spec §4.2).
    """
    CREATE TABLE firmware_status (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        status TEXT NOT NULL,
        received_at TEXT NOT NULL,
        unique_id TEXT
    )
    """,
    "CREATE INDEX firmware_status_gateway ON firmware_status (gateway_id, id)",
    """
    CREATE TABLE diagnostics_status (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        status TEXT NOT NULL,
        received_at TEXT NOT NULL,
        unique_id TEXT
    )
    """,
    "CREATE INDEX diagnostics_status_gateway ON diagnostics_status (gateway_id, id)",
    # DataTransfer from gateways (spec §4.1).
    """
    CREATE TABLE data_transfers (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        vendor_id TEXT NOT NULL,
        message_id TEXT,
        data TEXT,
        received_at TEXT NOT NULL,
        unique_id TEXT
    )
    """,
    "CREATE INDEX data_transfers_gateway ON data_transfers (gateway_id, id)",
    # Every frame in and out (spec §2), kept for the retention period.
    """
    CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        time TEXT NOT NULL,
        message_type INTEGER,
        action TEXT,
        unique_id TEXT,
        raw TEXT NOT NULL
    )
    """,
    # Ids grow with time, so retention finds its cut-off by id (no index on time alone).
    "CREATE INDEX frames_gateway ON frames (gateway_id, time)",
    # Every C→G request sent through the API, with its outcome.
    """
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        action TEXT NOT NULL,
        request TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL,
        response TEXT,
        error_code TEXT,
        error_description TEXT,
        error_details TEXT,
        duration_ms REAL
    )
    """,
    "CREATE INDEX commands_gateway ON commands (gateway_id, id)",
)

_V2: tuple[str, ...] = (
    # A refused or malformed frame is logged as an excerpt; size is its full length in
    # bytes (NULL: raw holds the whole frame). raw is TEXT, or a BLOB when the frame's
    # bytes are not UTF-8.
    "ALTER TABLE frames ADD COLUMN size INTEGER",
)

MIGRATIONS: tuple[tuple[int, Sequence[str]], ...] = ((1, _V1), (2, _V2))
"""Every migration as (version it produces, statements), oldest first."""

LATEST = MIGRATIONS[-1][0]
"""The schema version this service reads and writes."""


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of a database (0 for an empty one).

    Args:
        conn: an open connection.

    Returns:
        The highest version recorded in ``schema_version``.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring a database to :data:`LATEST`, one transaction per migration.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).

    Returns:
        The versions applied now (empty when the database was up to date).

    Raises:
        MigrationError: the database is newer than this service, or a migration
            failed (its transaction is rolled back).
    """
    version = current_version(conn)
    if version > LATEST:
        raise MigrationError(
            f"database schema version {version} is newer than this service "
            f"understands ({LATEST}); use a newer ntxcp"
        )
    applied: list[int] = []
    for target, statements in MIGRATIONS:
        if target <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(f"migration to schema version {target} failed: {exc}") from exc
        conn.execute("COMMIT")
        applied.append(target)
    return applied
