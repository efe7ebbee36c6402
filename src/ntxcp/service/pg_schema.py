"""The PostgreSQL schema of the control center service and its migrations.

The layout is the one of the SQLite backend's schema
(:mod:`ntxcp.service.migrations`): the same tables, columns and meaning, in
PostgreSQL's types. A new PostgreSQL database starts at version 3 (the first layout
this backend supports); later layout changes get the same version number in both
backends. Each migration runs in one transaction (PostgreSQL's DDL is
transactional), under an advisory lock so that two control-center processes starting
together do not both migrate. A database written by a newer version of the service
is refused rather than guessed at.

Types: gateway ids sort by their bytes (``COLLATE "C"``), as in SQLite, so that
paging by id is the same on both backends; date-times kept as text in the wire form
of spec §3 stay ``text`` (they sort and compare as text, as in SQLite); the
high-volume tables keep times as ``bigint`` milliseconds since the Unix epoch; raw
frames and packed samples are ``bytea``; ids are ``bigint`` identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ntxcp.service.migrations import RARE_ACTIONS, V5, MigrationError

if TYPE_CHECKING:
    import asyncpg

__all__ = ["LATEST", "MIGRATIONS", "migrate"]

_MIGRATION_LOCK = 0x6E747863  # any constant: the advisory lock key of migrations

_V3: tuple[str, ...] = (
    # Every gateway ever registered or seen (spec §6.1: id, address, TLS state).
    """
    CREATE TABLE gateways (
        id text COLLATE "C" PRIMARY KEY,
        registered boolean NOT NULL DEFAULT false,
        password_hash text,
        registration_status text,
        boot_info text,
        last_boot_at text,
        created_at text NOT NULL,
        first_seen text,
        last_seen text,
        connected boolean NOT NULL DEFAULT false,
        connected_since text,
        remote_address text,
        tls boolean NOT NULL DEFAULT false
    )
    """,
    # The unique ids of stored G→C CALLs other than MeterValues (spec §6.2).
    """
    CREATE TABLE received_calls (
        gateway_id text NOT NULL,
        action text NOT NULL,
        unique_id text NOT NULL,
        received_at text NOT NULL,
        PRIMARY KEY (gateway_id, action, unique_id)
    )
    """,
    "CREATE INDEX received_calls_time ON received_calls (received_at)",
    # StatusNotification (spec §4.1): the latest per service, and every one.
    """
    CREATE TABLE status_current (
        gateway_id text COLLATE "C" NOT NULL,
        service_id text NOT NULL,
        status text NOT NULL,
        error_code text NOT NULL,
        info text,
        vendor_id text,
        vendor_error_code text,
        timestamp text,
        received_at text NOT NULL,
        PRIMARY KEY (gateway_id, service_id)
    )
    """,
    """
    CREATE TABLE status_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        service_id text NOT NULL,
        status text NOT NULL,
        error_code text NOT NULL,
        info text,
        vendor_id text,
        vendor_error_code text,
        timestamp text,
        received_at text NOT NULL,
        unique_id text
    )
    """,
    "CREATE INDEX status_history_gateway ON status_history (gateway_id, id)",
    # MeterValues (spec §4.1): one row per message, samples packed (see
    # ntxcp.service.packing); a re-sent message is dropped by the unique index.
    """
    CREATE TABLE meter_messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        service_id integer NOT NULL,
        first_ms bigint NOT NULL,
        last_ms bigint NOT NULL,
        measurands bigint NOT NULL,
        received_ms bigint NOT NULL,
        unique_id text,
        samples bytea NOT NULL
    )
    """,
    "CREATE INDEX meter_messages_time ON meter_messages "
    "(gateway_id, last_ms, first_ms, service_id, measurands)",
    "CREATE UNIQUE INDEX meter_messages_unique ON meter_messages (gateway_id, unique_id) "
    "WHERE unique_id IS NOT NULL",
    # The longest time span of one message: bounds how far a time-ordered read goes.
    "CREATE TABLE meter_span (max_ms bigint NOT NULL)",
    "INSERT INTO meter_span (max_ms) VALUES (0)",
    # FirmwareStatusNotification and DiagnosticsStatusNotification (spec §4.2).
    """
    CREATE TABLE firmware_status (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        status text NOT NULL,
        received_at text NOT NULL,
        unique_id text
    )
    """,
    "CREATE INDEX firmware_status_gateway ON firmware_status (gateway_id, id)",
    """
    CREATE TABLE diagnostics_status (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        status text NOT NULL,
        received_at text NOT NULL,
        unique_id text
    )
    """,
    "CREATE INDEX diagnostics_status_gateway ON diagnostics_status (gateway_id, id)",
    # DataTransfer from gateways (spec §4.1).
    """
    CREATE TABLE data_transfers (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        vendor_id text NOT NULL,
        message_id text,
        data text,
        received_at text NOT NULL,
        unique_id text
    )
    """,
    "CREATE INDEX data_transfers_gateway ON data_transfers (gateway_id, id)",
    # The frame log (spec §2 frames): ids grow with time, so a time bound is an id bound.
    """
    CREATE TABLE frames (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL,
        direction text NOT NULL,
        time_ms bigint NOT NULL,
        message_type smallint,
        action text,
        unique_id text,
        raw bytea NOT NULL,
        size integer
    )
    """,
    "CREATE INDEX frames_gateway ON frames (gateway_id, id)",
    f"CREATE INDEX frames_action ON frames (gateway_id, action, id) WHERE {RARE_ACTIONS}",
    # Every C→G request sent through the API, with its outcome (ids from the service).
    """
    CREATE TABLE commands (
        id bigint PRIMARY KEY,
        gateway_id text NOT NULL,
        action text NOT NULL,
        request text NOT NULL,
        sent_at text NOT NULL,
        finished_at text,
        outcome text NOT NULL,
        response text,
        error_code text,
        error_description text,
        error_details text,
        duration_ms double precision
    )
    """,
    "CREATE INDEX commands_gateway ON commands (gateway_id, id)",
)

_V4: tuple[str, ...] = (
    # The meter index keyed in the read order (gateway, last_ms, id) with the filter
    # columns included: a query selects the messages that can match by an index-only
    # scan (a row-by-row filter on measurands would fetch every message of the
    # gateway from the heap), then fetches only those; pages continue from the last
    # (last_ms, id) read instead of an offset.
    "DROP INDEX meter_messages_time",
    "CREATE INDEX meter_messages_time ON meter_messages (gateway_id, last_ms, id) "
    "INCLUDE (first_ms, service_id, measurands)",
)

MIGRATIONS: tuple[tuple[int, Sequence[str]], ...] = ((3, _V3), (4, _V4), (5, V5))
"""Every migration as (version it produces, statements), oldest first."""

LATEST = MIGRATIONS[-1][0]
"""The schema version this service reads and writes (the SQLite backend's too)."""


async def current_version(conn: asyncpg.Connection) -> int:
    """The schema version of a database (0 for an empty one)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    version = await conn.fetchval("SELECT max(version) FROM schema_version")
    return int(version or 0)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Bring a database to :data:`LATEST`, one transaction per migration.

    Returns:
        The versions applied now (empty when the database was up to date).

    Raises:
        MigrationError: the database is newer than this service, or a migration failed
            (its transaction is rolled back).
    """
    import asyncpg

    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        version = await current_version(conn)
        if version > LATEST:
            raise MigrationError(
                f"database schema version {version} is newer than this service "
                f"understands ({LATEST}); use a newer ntxcp"
            )
        for target, statements in MIGRATIONS:
            if target <= version:
                continue
            try:
                async with conn.transaction():
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", target)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration to schema version {target} failed: {exc}") from exc
            applied.append(target)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
