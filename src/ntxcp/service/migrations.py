"""The SQLite schema of the control center service and its migrations.

The schema's version is kept in the ``schema_version`` table. Each migration is a list
of statements (or functions of the connection) that takes the database from the
previous version to its own; they run in order, each in one transaction, when the
service opens the database. A database
written by a newer version of the service (a version above :data:`LATEST`) is refused
rather than guessed at.

Conventions of the schema:

* date-times are TEXT in the wire form of spec §3 (``YYYY-MM-DDTHH:MM:SS.mmmZ``,
  UTC), so that they sort and compare as text; the high-volume meter messages keep
  them as integers (milliseconds since the Unix epoch), formatted only when read;
* payloads kept whole (boot info, commands) are TEXT holding the wire JSON
  (camelCase names, spec §4);
* data tables name their gateway by id; deleting a gateway deletes its rows
  explicitly (no foreign keys, which would cost a lookup per stored meter sample).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "RARE_ACTIONS",
    "V5",
    "MigrationError",
    "current_version",
    "migrate",
]


Step = str | Callable[[sqlite3.Connection], None]
"""A statement, or a function of the connection for what SQL alone cannot do."""


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

RARE_ACTIONS = "action NOT IN ('MeterValues', 'Heartbeat')"
"""The condition of the partial index ``frames_action`` (queries repeat it to use it)."""

_V3_STATEMENTS: tuple[str, ...] = (
    # MeterValues (spec §4.1): one row per message, its sampled values packed (see
    # ntxcp.service.packing); times as milliseconds since the Unix epoch (UTC).
    # measurands: bit set of the measurands present, so a query decodes only rows
    # that can match. A re-sent message (same unique id, spec §6.2) is dropped by
    # the unique index.
    """
    CREATE TABLE meter_messages (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        service_id INTEGER NOT NULL,
        first_ms INTEGER NOT NULL,
        last_ms INTEGER NOT NULL,
        measurands INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        unique_id TEXT,
        samples BLOB NOT NULL
    )
    """,
    # Every filter of the API reads from this index (service, measurands, span) without
    # touching the table; only rows that can match are fetched and unpacked.
    "CREATE INDEX meter_messages_time ON meter_messages "
    "(gateway_id, last_ms, first_ms, service_id, measurands)",
    # The longest time span of one message (last_ms - first_ms): bounds how far a
    # query in time order must read past its limit.
    "CREATE TABLE meter_span (max_ms INTEGER NOT NULL)",
    "INSERT INTO meter_span (max_ms) VALUES (0)",
    "CREATE UNIQUE INDEX meter_messages_unique ON meter_messages (gateway_id, unique_id) "
    "WHERE unique_id IS NOT NULL",
    # The frame log: times as milliseconds since the Unix epoch, raw frames as bytes
    # (a BLOB; older rows may hold TEXT). One index, by gateway: ids grow with time,
    # so a gateway's frames come newest first by id, and a time bound becomes an id
    # bound (binary search by id, see storage._first_frame_at).
    """
    CREATE TABLE frame_log (
        id INTEGER PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        message_type INTEGER,
        action TEXT,
        unique_id TEXT,
        raw BLOB NOT NULL,
        size INTEGER
    )
    """,
    "INSERT INTO frame_log (id, gateway_id, direction, time_ms, message_type, action, "
    "unique_id, raw, size) SELECT id, gateway_id, direction, "
    "CAST(round((julianday(time) - 2440587.5) * 86400000) AS INTEGER), message_type, action, "
    "unique_id, raw, size FROM frames ORDER BY id",
    "DROP TABLE frames",
    "ALTER TABLE frame_log RENAME TO frames",
    "CREATE INDEX frames_gateway ON frames (gateway_id)",
    # Frames of the actions sent rarely, by action: a query for one of them does not
    # read through every MeterValues and Heartbeat of the gateway. (The frequent
    # ones are dense: reading newest first finds them at once.)
    f"CREATE INDEX frames_action ON frames (gateway_id, action) WHERE {RARE_ACTIONS}",
)


def _v3(conn: sqlite3.Connection) -> None:
    """One row per MeterValues message: move the one-row-per-sample table over.

    A sample stored by an older version becomes a message of its own (the old table
    kept no message boundaries); the claims of its unique ids stay in
    ``received_calls`` until retention removes them, so a re-sent message is still
    recognised.
    """
    from ntxcp.service.packing import CODES, DEFAULTS, measurand_bit

    for statement in _V3_STATEMENTS:
        conn.execute(statement)
    index = [{value: code for code, value in enumerate(codes)} for codes in CODES]
    rows = conn.execute(
        "SELECT gateway_id, service_id, "
        "CAST(round((julianday(timestamp) - 2440587.5) * 86400000) AS INTEGER), "
        "value, measurand, phase, unit, context, location, format, "
        "CAST(round((julianday(received_at) - 2440587.5) * 86400000) AS INTEGER) "
        "FROM meter_values ORDER BY id"
    )
    insert = (
        "INSERT INTO meter_messages (gateway_id, service_id, first_ms, last_ms, measurands, "
        "received_ms, unique_id, samples) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
    )
    while batch := rows.fetchmany(5000):
        out = []
        for gateway_id, service_id, stamp, value, *fields, received in batch:
            packed: list[object] = [value]
            for position, field in enumerate(fields, start=1):
                if field == DEFAULTS[position]:
                    packed.append(None)
                else:
                    packed.append(index[position].get(field, field))
            while packed[-1] is None:
                packed.pop()
            samples = json.dumps([[stamp, [packed]]], separators=(",", ":"))
            bit = measurand_bit(fields[0])
            out.append((gateway_id, service_id, stamp, stamp, bit, received, samples.encode()))
        conn.executemany(insert, out)
    conn.execute("DROP TABLE meter_values")


_V4: tuple[str, ...] = (
    # The meter index keyed in the order every meter query reads (gateway, last_ms,
    # id), still carrying the filter columns: a read follows the index with no sort
    # step, and PostgreSQL (same version) can filter in the index alone.
    "DROP INDEX meter_messages_time",
    "CREATE INDEX meter_messages_time ON meter_messages "
    "(gateway_id, last_ms, id, first_ms, service_id, measurands)",
)

V5: tuple[str, ...] = (
    # Named API tokens with roles: the keyed hash of the secret, never the secret;
    # a revoked token stays (revoked_at set), so its name is never given out again.
    """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    )
    """,
    # The token that sent each command (NULL: sent before tokens had names, or through
    # the open API).
    "ALTER TABLE commands ADD COLUMN token_name TEXT",
)
"""Version 5, the same statements on both backends (SQL both dialects read)."""

MIGRATIONS: tuple[tuple[int, Sequence[Step]], ...] = (
    (1, _V1),
    (2, _V2),
    (3, (_v3,)),
    (4, _V4),
    (5, V5),
)
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
                if isinstance(statement, str):
                    conn.execute(statement)
                else:
                    statement(conn)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
        except (sqlite3.Error, ValueError) as exc:
            conn.execute("ROLLBACK")
            raise MigrationError(f"migration to schema version {target} failed: {exc}") from exc
        conn.execute("COMMIT")
        applied.append(target)
    return applied
