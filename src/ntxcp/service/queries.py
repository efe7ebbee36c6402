"""Read-side queries of the control center's database, as JSON-ready dicts.

Every function takes a read-only :class:`sqlite3.Connection` first, so that
:meth:`ntxcp.service.storage.Storage.read` can run it on a reader thread. Results use
camelCase keys like the wire payloads (spec §4) and the date-time text of spec §3.
Newest rows come first unless a function says otherwise.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from ntxcp.service import meter_series as series
from ntxcp.service.migrations import RARE_ACTIONS
from ntxcp.service.packing import Sample, measurand_bit, ms_text, text_ms, unpack
from ntxcp.v10.codec import DECODE_ERRORS

__all__ = [
    "FrameFilter",
    "MeterCollector",
    "MeterFilter",
    "commands",
    "current_statuses",
    "data_transfers",
    "first_frame_at",
    "frames",
    "gateway",
    "gateways",
    "meter_series",
    "progress_status",
    "series_where",
    "status",
]

_GATEWAY_COLUMNS = (
    "id, registered, password_hash IS NOT NULL, registration_status, boot_info, "
    "last_boot_at, created_at, first_seen, last_seen, connected, connected_since, "
    "remote_address, tls"
)
_STATUS_COLUMNS = (
    "service_id, status, error_code, info, vendor_id, vendor_error_code, timestamp, received_at"
)
_MESSAGE_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return msgspec.json.decode(text)
    except DECODE_ERRORS:
        return text


def _gateway(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "registered": bool(row[1]),
        "hasPassword": bool(row[2]),
        "registrationStatus": row[3],
        "bootInfo": _json(row[4]),
        "lastBootAt": row[5],
        "createdAt": row[6],
        "firstSeen": row[7],
        "lastSeen": row[8],
        "connected": bool(row[9]),
        "connectedSince": row[10] if row[9] else None,
        "remoteAddress": row[11],
        "tls": bool(row[12]),
    }


def gateways(
    conn: sqlite3.Connection, after: str | None = None, limit: int = -1
) -> list[dict[str, Any]]:
    """The gateways registered or seen, ordered by id: one page of them.

    Args:
        conn: a read connection.
        after: only gateways whose id sorts after this one (the paging cursor).
        limit: at most this many (``-1``: all).
    """
    rows = conn.execute(
        f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id > ? ORDER BY id LIMIT ?",
        ("" if after is None else after, limit),
    ).fetchall()
    return [_gateway(row) for row in rows]


def current_statuses(
    conn: sqlite3.Connection, after: str | None = None, limit: int = -1
) -> list[dict[str, Any]]:
    """The current status of every service of a page of gateways (spec §4.1).

    Args:
        conn: a read connection.
        after: only gateways whose id sorts after this one (the paging cursor).
        limit: the statuses of at most this many gateways (``-1``: all).

    Returns:
        One item per (gateway, service), ordered by gateway and service id, with the
        keys of :func:`status`'s items and ``gatewayId``.
    """
    rows = conn.execute(
        f"SELECT gateway_id, {_STATUS_COLUMNS} FROM status_current WHERE gateway_id IN ("
        "SELECT DISTINCT gateway_id FROM status_current WHERE gateway_id > ? "
        "ORDER BY gateway_id LIMIT ?) ORDER BY gateway_id, service_id",
        ("" if after is None else after, limit),
    ).fetchall()
    return [{"gatewayId": row[0], **_status(row[1:])} for row in rows]


def gateway(conn: sqlite3.Connection, gateway_id: str) -> dict[str, Any] | None:
    """One gateway, or ``None`` when unknown."""
    row = conn.execute(
        f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = ?", (gateway_id,)
    ).fetchone()
    return None if row is None else _gateway(row)


def _status(row: Any) -> dict[str, Any]:
    return {
        "serviceId": row[0],
        "status": row[1],
        "errorCode": row[2],
        "info": row[3],
        "vendorId": row[4],
        "vendorErrorCode": row[5],
        "timestamp": row[6],
        "receivedAt": row[7],
    }


def status(conn: sqlite3.Connection, gateway_id: str, history: int) -> dict[str, Any]:
    """Current status per service and the latest ``history`` notifications (spec §4.1)."""
    current = conn.execute(
        f"SELECT {_STATUS_COLUMNS} FROM status_current WHERE gateway_id = ? ORDER BY service_id",
        (gateway_id,),
    ).fetchall()
    past = conn.execute(
        f"SELECT {_STATUS_COLUMNS} FROM status_history WHERE gateway_id = ? "
        "ORDER BY id DESC LIMIT ?",
        (gateway_id, history),
    ).fetchall()
    return {
        "gatewayId": gateway_id,
        "current": [_status(row) for row in current],
        "history": [_status(row) for row in past],
    }


@dataclass(frozen=True, slots=True)
class MeterFilter:
    """Which sampled values to return.

    Attributes:
        service: only this service id.
        measurand: only this measurand (spec §4.1 names).
        since: only samples taken at or after this time (spec §3 text).
        until: only samples taken at or before this time.
        limit: at most this many rows.
        ascending: oldest first (default: newest first).
    """

    service: int | None = None
    measurand: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 1000
    ascending: bool = False


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE`` clause and arguments for the conditions whose value is not ``None``.

    Each condition is ``(sql with one "?", value)``; an empty result means no filter.
    """
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(sql for sql, _ in used) + " ", [v for _, v in used]


def meter_values(
    conn: sqlite3.Connection, gateway_id: str, query: MeterFilter
) -> list[dict[str, Any]]:
    """Sampled values of one gateway, one item per stored SampledValue (spec §4.1).

    Messages are read through the index in the order of their last timestamp
    (newest first unless ``ascending``); the index alone decides which can match
    (time span, service, measurands), and only those are unpacked. Reading stops
    once the first ``limit`` samples are certain (see :class:`MeterCollector`).
    """
    span = int(conn.execute("SELECT max(max_ms) FROM meter_span").fetchone()[0] or 0)
    collector = MeterCollector(query, span)
    clause, args = collector.where(gateway_id, "?")
    order = collector.order
    rows = conn.execute(
        "SELECT service_id, last_ms, received_ms, samples FROM meter_messages "
        f"INDEXED BY meter_messages_time {clause}ORDER BY last_ms {order}, id {order}",
        args,
    )
    for service_id, last_ms, received_ms, samples in rows:
        if not collector.add(service_id, last_ms, received_ms, samples):
            break
    return collector.items()


def meter_series(
    conn: sqlite3.Connection, gateway_id: str, query: series.SeriesFilter
) -> dict[str, Any]:
    """Sampled values of one gateway thinned to time buckets (see :mod:`.meter_series`).

    The index selects the messages that can match, as for :func:`meter_values`; the
    rows are streamed (the cursor holds one at a time) into one aggregator. A bound
    not given is found first, from the index alone.
    """
    span = int(conn.execute("SELECT max(max_ms) FROM meter_span").fetchone()[0] or 0)
    clause, args = series_where(query, span, gateway_id, "?")
    source = f"FROM meter_messages INDEXED BY meter_messages_time {clause}"
    first = last = None
    if query.since is None or query.until is None:
        first, last = conn.execute(f"SELECT min(first_ms), max(last_ms) {source}", args).fetchone()
    buckets = series.buckets_for(query, first, last)
    if buckets is not None:
        add = buckets.add
        for service_id, samples in conn.execute(
            f"SELECT service_id, samples {source}ORDER BY last_ms, id", args
        ):
            add(service_id, samples)
    return series.answer(gateway_id, query, buckets)


def series_where(
    query: series.SeriesFilter, span: int, gateway_id: str, placeholder: str
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause selecting the messages a series query can use.

    The same selection as a meter query's (:meth:`MeterCollector.where`).
    """
    meter_filter = MeterFilter(
        service=query.service, measurand=query.measurand, since=query.since, until=query.until
    )
    return MeterCollector(meter_filter, span).where(gateway_id, placeholder)


class MeterCollector:
    """Collects the first ``limit`` samples of a meter query from messages in index order.

    Both backends read ``meter_messages`` in the order of ``last_ms`` (then id) and
    feed each row to :meth:`add`, which says when to stop: no further message can
    hold an earlier sample (descending: it ends before the limit-th sample;
    ascending: it ends more than the longest message span after it).

    Args:
        query: the filter.
        span: the longest time span of one message (``meter_span``).
    """

    def __init__(self, query: MeterFilter, span: int) -> None:
        self.since = None if query.since is None else text_ms(query.since)
        self.until = None if query.until is None else text_ms(query.until)
        self.query = query
        self.span = span
        self.ascending = query.ascending
        self.order = "ASC" if query.ascending else "DESC"
        # (sort key, service id, received, sample); the key orders by time, then arrival.
        self._found: list[tuple[tuple[int, int, int], int, int, Sample]] = []
        self._sign = 1 if query.ascending else -1
        self._added = False
        self._edge = 0
        self._number = 0

    def where(self, gateway_id: str, placeholder: str) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause and its arguments (placeholders ``?`` or ``$``)."""
        since, until, span, query = self.since, self.until, self.span, self.query
        measurand = query.measurand
        # A message spans [first_ms, last_ms] with last_ms - first_ms <= span: it can
        # hold a sample in [since, until] only if last_ms >= since and first_ms <= until.
        clause, args = _where(
            ("gateway_id = ?", gateway_id),
            ("last_ms >= ?", since),
            ("last_ms <= ?", None if until is None else until + span),
            ("first_ms <= ?", until),
            ("service_id = ?", query.service),
            ("measurands & ? != 0", None if measurand is None else measurand_bit(measurand)),
        )
        if placeholder != "?":
            parts = clause.split("?")
            clause = parts[0] + "".join(
                f"${number}{part}" for number, part in enumerate(parts[1:], start=1)
            )
        return clause, args

    def add(self, service_id: int, last_ms: int, received_ms: int, samples: bytes) -> bool:
        """Take one message's samples; ``False`` when reading can stop (this one unused)."""
        found = self._found
        limit = self.query.limit
        ascending = self.ascending
        sign = self._sign
        if len(found) >= limit:
            if self._added:
                found.sort(key=_first)
                del found[limit:]
                self._edge = found[-1][0][0] * sign
                self._added = False
            edge = self._edge
            if (last_ms - self.span > edge) if ascending else (last_ms < edge):
                return False
        number = self._number
        self._number += 1
        since, until = self.since, self.until
        for position, sample in enumerate(unpack(samples, self.query.measurand)):
            stamp = sample[0]
            if (since is not None and stamp < since) or (until is not None and stamp > until):
                continue
            found.append(((sign * stamp, number, sign * position), service_id, received_ms, sample))
            self._added = True
        return True

    def items(self) -> list[dict[str, Any]]:
        """The samples found, in the query's order, as API items."""
        found = self._found
        found.sort(key=_first)
        text = _TimeText()
        return [
            {
                "serviceId": service_id,
                "timestamp": text(sample[0]),
                "measurand": sample[2],
                "phase": sample[3],
                "unit": sample[4],
                "value": sample[1],
                "context": sample[5],
                "location": sample[6],
                "format": sample[7],
                "receivedAt": text(received_ms),
            }
            for _, service_id, received_ms, sample in found[: self.query.limit]
        ]


class _TimeText:
    """Spec §3 text of epoch milliseconds, each distinct value formatted once."""

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        text = self._seen.get(ms)
        if text is None:
            text = self._seen[ms] = ms_text(ms)
        return text


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


@dataclass(frozen=True, slots=True)
class FrameFilter:
    """Which frames of the frame log to return.

    Attributes:
        action: only frames of this action (CALLs and their answers).
        direction: ``"in"`` or ``"out"`` only.
        since: only frames logged at or after this time (spec §3 text).
        limit: at most this many frames.
    """

    action: str | None = None
    direction: str | None = None
    since: str | None = None
    limit: int = 100


def frames(conn: sqlite3.Connection, gateway_id: str, query: FrameFilter) -> list[dict[str, Any]]:
    """Frames in and out of one gateway, newest first (spec §2 frames, raw text).

    Frames are logged in time order, so the ``since`` bound becomes an id bound and
    the gateway's index serves every filter.
    """
    first_id = None if query.since is None else first_frame_at(conn, text_ms(query.since))
    action = query.action
    rare = action is not None and action not in ("MeterValues", "Heartbeat")
    clause, args = _where(
        ("gateway_id = ?", gateway_id),
        ("id >= ?", first_id),
        ("action = ?", action),
        ("direction = ?", query.direction),
    )
    if rare:  # the partial index's own condition, so that SQLite may use it
        clause += f"AND {RARE_ACTIONS} "
    index = "frames_action" if rare else "frames_gateway"
    args.append(query.limit)
    rows = conn.execute(
        "SELECT id, direction, time_ms, message_type, action, unique_id, raw, size FROM frames "
        f"INDEXED BY {index} {clause}ORDER BY id DESC LIMIT ?",
        args,
    ).fetchall()
    return [_frame(row) for row in rows]


def _frame(row: Any) -> dict[str, Any]:
    raw = row[6]
    return {
        "id": row[0],
        "direction": row[1],
        "time": ms_text(row[2]),
        "messageType": _MESSAGE_TYPES.get(row[3]),
        "action": row[4],
        "uniqueId": row[5],
        "raw": raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace"),
        "size": len(raw) if row[7] is None else row[7],
        "truncated": row[7] is not None,
    }


def first_frame_at(conn: sqlite3.Connection, time_ms: int) -> int:
    """The id of the first frame logged at or after ``time_ms`` (binary search by id).

    Frames are logged in time order, so ids and times grow together; this finds a
    time bound without an index on time. Returns one past the last id when every
    frame is older.
    """
    # Two statements: SQLite answers min() or max() alone from the primary key, but
    # scans the table for both at once.
    low = int(conn.execute("SELECT coalesce(min(id), 0) FROM frames").fetchone()[0])
    high = int(conn.execute("SELECT coalesce(max(id), 0) FROM frames").fetchone()[0]) + 1
    while low < high:
        middle = (low + high) // 2
        row = conn.execute(
            "SELECT id, time_ms FROM frames WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        ).fetchone()
        if row is None or row[1] >= time_ms:
            high = middle
        else:
            low = row[0] + 1
    return int(low)


def progress_status(
    conn: sqlite3.Connection, table: str, gateway_id: str, limit: int
) -> dict[str, Any]:
    """Firmware or diagnostics status: the latest and the history (spec §4.2).

    Args:
        conn: a read connection.
        table: ``"firmware_status"`` or ``"diagnostics_status"``.
        gateway_id: the gateway.
        limit: history items to return.
    """
    if table not in ("firmware_status", "diagnostics_status"):
        raise ValueError(f"not a status table: {table}")
    rows = conn.execute(
        f"SELECT status, received_at FROM {table} WHERE gateway_id = ? ORDER BY id DESC LIMIT ?",
        (gateway_id, limit),
    ).fetchall()
    history = [{"status": row[0], "receivedAt": row[1]} for row in rows]
    return {"gatewayId": gateway_id, "current": history[0] if history else None, "history": history}


def data_transfers(conn: sqlite3.Connection, gateway_id: str, limit: int) -> list[dict[str, Any]]:
    """DataTransfer requests received from a gateway (spec §4.1), newest first."""
    rows = conn.execute(
        "SELECT vendor_id, message_id, data, received_at FROM data_transfers "
        "WHERE gateway_id = ? ORDER BY id DESC LIMIT ?",
        (gateway_id, limit),
    ).fetchall()
    return [
        {"vendorId": row[0], "messageId": row[1], "data": row[2], "receivedAt": row[3]}
        for row in rows
    ]


def commands(
    conn: sqlite3.Connection, gateway_id: str | None, action: str | None, limit: int
) -> list[dict[str, Any]]:
    """C→G requests sent through the API and their outcomes, newest first."""
    clause, args = _where(("gateway_id = ?", gateway_id), ("action = ?", action))
    args.append(limit)
    rows = conn.execute(
        "SELECT id, gateway_id, action, request, sent_at, finished_at, outcome, response, "
        "error_code, error_description, error_details, duration_ms, token_name FROM commands "
        f"{clause}ORDER BY id DESC LIMIT ?",
        args,
    ).fetchall()
    return [_command(row) for row in rows]


def _command(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "gatewayId": row[1],
        "action": row[2],
        "request": _json(row[3]),
        "sentAt": row[4],
        "finishedAt": row[5],
        "outcome": row[6],
        "response": _json(row[7]),
        "error": None
        if row[8] is None
        else {"code": row[8], "description": row[9], "details": _json(row[10])},
        "durationMs": row[11],
        "tokenName": row[12],
    }
