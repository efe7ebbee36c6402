"""The read-side queries of :mod:`ntxcp.service.queries`, for PostgreSQL.

Each function here answers the query function of the same name in
:mod:`ntxcp.service.queries` with the same result (same keys, same order), so the API
and the dashboard read through either backend alike. :data:`PG_QUERIES` maps each
SQLite query function to its PostgreSQL version (see
:meth:`ntxcp.service.pg_storage.PostgresStorage.read`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ntxcp.service import meter_series as series
from ntxcp.service import queries
from ntxcp.service.migrations import RARE_ACTIONS
from ntxcp.service.packing import text_ms
from ntxcp.service.queries import (
    _GATEWAY_COLUMNS,
    _STATUS_COLUMNS,
    FrameFilter,
    MeterCollector,
    MeterFilter,
    _command,
    _frame,
    _gateway,
    _status,
    _where,
)

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PG_QUERIES", "numbered"]

_NO_LIMIT = 2**62
_METER_PAGE = 200  # messages of the first round trip while collecting samples
_METER_PAGE_MOST = 3200  # each further page doubles, up to this many messages
_SERIES_PREFETCH = 500  # messages per round trip while streaming a series query
_SERIES_YIELD = 20  # messages bucketed between two turns of the event loop (a few ms)


def numbered(clause: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2`` ..."""
    parts = clause.split("?")
    return parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], 1))


def _limit(limit: int) -> int:
    return _NO_LIMIT if limit < 0 else limit


async def gateways(
    conn: asyncpg.Connection, after: str | None = None, limit: int = -1
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.gateways`."""
    rows = await conn.fetch(
        f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id > $1 ORDER BY id LIMIT $2",
        "" if after is None else after,
        _limit(limit),
    )
    return [_gateway(row) for row in rows]


async def current_statuses(
    conn: asyncpg.Connection, after: str | None = None, limit: int = -1
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.current_statuses`."""
    rows = await conn.fetch(
        f"SELECT gateway_id, {_STATUS_COLUMNS} FROM status_current WHERE gateway_id IN ("
        "SELECT DISTINCT gateway_id FROM status_current WHERE gateway_id > $1 "
        "ORDER BY gateway_id LIMIT $2) ORDER BY gateway_id, service_id",
        "" if after is None else after,
        _limit(limit),
    )
    return [{"gatewayId": row[0], **_status(row[1:])} for row in rows]


async def gateway(conn: asyncpg.Connection, gateway_id: str) -> dict[str, Any] | None:
    """See :func:`ntxcp.service.queries.gateway`."""
    row = await conn.fetchrow(f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = $1", gateway_id)
    return None if row is None else _gateway(row)


async def status(conn: asyncpg.Connection, gateway_id: str, history: int) -> dict[str, Any]:
    """See :func:`ntxcp.service.queries.status`."""
    current = await conn.fetch(
        f"SELECT {_STATUS_COLUMNS} FROM status_current WHERE gateway_id = $1 ORDER BY service_id",
        gateway_id,
    )
    past = await conn.fetch(
        f"SELECT {_STATUS_COLUMNS} FROM status_history WHERE gateway_id = $1 "
        "ORDER BY id DESC LIMIT $2",
        gateway_id,
        history,
    )
    return {
        "gatewayId": gateway_id,
        "current": [_status(row) for row in current],
        "history": [_status(row) for row in past],
    }


async def meter_values(
    conn: asyncpg.Connection, gateway_id: str, query: MeterFilter
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.meter_values`: messages are read in pages.

    Each page selects the ids of the messages that can match from the index alone
    (an index-only scan of ``meter_messages_time``, which carries the filter columns)
    and fetches only those rows; the next page continues after the last
    ``(last_ms, id)`` read. Pages grow from :data:`_METER_PAGE` messages.
    """
    span = int(await conn.fetchval("SELECT max(max_ms) FROM meter_span") or 0)
    collector = MeterCollector(query, span)
    clause, args = collector.where(gateway_id, "$")
    order = collector.order
    after = len(args) + 1  # the placeholders of the page size and the cursor

    def statement(cursor: str) -> str:
        return (
            f"WITH page AS (SELECT id, last_ms FROM meter_messages {clause}{cursor}"
            f"ORDER BY gateway_id {order}, last_ms {order}, id {order} LIMIT ${after}) "
            "SELECT m.service_id, page.last_ms, m.received_ms, m.samples, page.id "
            f"FROM page JOIN meter_messages m USING (id) ORDER BY page.last_ms {order}, "
            f"page.id {order}"
        )

    beyond = ">" if query.ascending else "<"
    following = statement(f"AND (last_ms, id) {beyond} (${after + 1}, ${after + 2}) ")
    size = _METER_PAGE
    rows = await conn.fetch(statement(""), *args, size)
    while True:
        for service_id, last_ms, received_ms, samples, _ in rows:
            if not collector.add(service_id, last_ms, received_ms, samples):
                return collector.items()
        if len(rows) < size:
            return collector.items()
        size = min(2 * size, _METER_PAGE_MOST)
        rows = await conn.fetch(following, *args, size, rows[-1][1], rows[-1][4])


async def meter_series(
    conn: asyncpg.Connection, gateway_id: str, query: series.SeriesFilter
) -> dict[str, Any]:
    """See :func:`ntxcp.service.queries.meter_series`: the rows come through a cursor.

    A server-side cursor (in a read-only transaction) hands the matching messages
    over :data:`_SERIES_PREFETCH` at a time, so only that many are held at once.
    """
    span = int(await conn.fetchval("SELECT max(max_ms) FROM meter_span") or 0)
    clause, args = queries.series_where(query, span, gateway_id, "$")
    source = f"FROM meter_messages {clause}"
    first = last = None
    if query.since is None or query.until is None:
        row = await conn.fetchrow(f"SELECT min(first_ms), max(last_ms) {source}", *args)
        first, last = row[0], row[1]
    buckets = series.buckets_for(query, first, last)
    if buckets is not None:
        add = buckets.add
        async with conn.transaction(readonly=True):
            rows = 0
            async for service_id, samples in conn.cursor(
                f"SELECT service_id, samples {source}ORDER BY gateway_id, last_ms, id",
                *args,
                prefetch=_SERIES_PREFETCH,
            ):
                add(service_id, samples)
                rows += 1
                if rows % _SERIES_YIELD == 0:
                    # A prefetched page is bucketed on the loop: let the gateways'
                    # traffic in between (a week of samples takes tenths of a second).
                    await asyncio.sleep(0)
    return series.answer(gateway_id, query, buckets)


async def frames(
    conn: asyncpg.Connection, gateway_id: str, query: FrameFilter
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.frames`."""
    first_id = None if query.since is None else await first_frame_at(conn, text_ms(query.since))
    action = query.action
    clause, args = _where(
        ("gateway_id = ?", gateway_id),
        ("id >= ?", first_id),
        ("action = ?", action),
        ("direction = ?", query.direction),
    )
    if action is not None and action not in ("MeterValues", "Heartbeat"):
        clause += f"AND {RARE_ACTIONS} "  # the partial index's condition
    args.append(query.limit)
    rows = await conn.fetch(
        "SELECT id, direction, time_ms, message_type, action, unique_id, raw, size FROM frames "
        f"{numbered(clause)}ORDER BY id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_frame(row) for row in rows]


async def first_frame_at(conn: asyncpg.Connection, time_ms: int) -> int:
    """See :func:`ntxcp.service.queries.first_frame_at` (binary search by id)."""
    low = int(await conn.fetchval("SELECT coalesce(min(id), 0) FROM frames"))
    high = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM frames")) + 1
    while low < high:
        middle = (low + high) // 2
        row = await conn.fetchrow(
            "SELECT id, time_ms FROM frames WHERE id >= $1 ORDER BY id LIMIT 1", middle
        )
        if row is None or row[1] >= time_ms:
            high = middle
        else:
            low = row[0] + 1
    return low


async def progress_status(
    conn: asyncpg.Connection, table: str, gateway_id: str, limit: int
) -> dict[str, Any]:
    """See :func:`ntxcp.service.queries.progress_status`."""
    if table not in ("firmware_status", "diagnostics_status"):
        raise ValueError(f"not a status table: {table}")
    rows = await conn.fetch(
        f"SELECT status, received_at FROM {table} WHERE gateway_id = $1 ORDER BY id DESC LIMIT $2",
        gateway_id,
        limit,
    )
    history = [{"status": row[0], "receivedAt": row[1]} for row in rows]
    return {"gatewayId": gateway_id, "current": history[0] if history else None, "history": history}


async def data_transfers(
    conn: asyncpg.Connection, gateway_id: str, limit: int
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.data_transfers`."""
    rows = await conn.fetch(
        "SELECT vendor_id, message_id, data, received_at FROM data_transfers "
        "WHERE gateway_id = $1 ORDER BY id DESC LIMIT $2",
        gateway_id,
        limit,
    )
    return [
        {"vendorId": row[0], "messageId": row[1], "data": row[2], "receivedAt": row[3]}
        for row in rows
    ]


async def commands(
    conn: asyncpg.Connection, gateway_id: str | None, action: str | None, limit: int
) -> list[dict[str, Any]]:
    """See :func:`ntxcp.service.queries.commands`."""
    clause, args = _where(("gateway_id = ?", gateway_id), ("action = ?", action))
    args.append(limit)
    rows = await conn.fetch(
        "SELECT id, gateway_id, action, request, sent_at, finished_at, outcome, response, "
        "error_code, error_description, error_details, duration_ms, token_name FROM commands "
        f"{numbered(clause)}ORDER BY id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_command(row) for row in rows]


PG_QUERIES: dict[Callable[..., Any], Callable[..., Awaitable[Any]]] = {
    queries.gateways: gateways,
    queries.current_statuses: current_statuses,
    queries.gateway: gateway,
    queries.status: status,
    queries.meter_values: meter_values,
    queries.meter_series: meter_series,
    queries.frames: frames,
    queries.first_frame_at: first_frame_at,
    queries.progress_status: progress_status,
    queries.data_transfers: data_transfers,
    queries.commands: commands,
}
"""The PostgreSQL version of each query function of :mod:`ntxcp.service.queries`."""
