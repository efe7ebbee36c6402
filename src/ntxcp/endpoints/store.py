"""Durable outbox of a gateway for store-and-forward (spec §6.2).

``MeterValues``, ``StatusNotification``, ``DiagnosticsStatusNotification`` and
``FirmwareStatusNotification`` carry data that must not be lost. A gateway writes each
one here first, with the ``uniqueId`` it will keep on every attempt, and deletes it
only after the control center's CALLRESULT arrived. A CALLERROR or an invalid result
moves the message to a dead-letter table instead of retrying it forever.

Two implementations share one interface: :class:`SqliteStore` (one file, survives a
process restart; every append is committed before the caller is told it is queued)
and :class:`MemoryStore` (lost with the process, for gateways without a disk).

When a bound (count or bytes) is reached, the policy decides: ``"reject"`` (default)
refuses the new message with :class:`~ntxcp.errors.QueueFullError`, so the caller
knows and nothing already accepted is lost; ``"drop-oldest"`` deletes the oldest
queued messages (moved to the dead letters with reason ``dropped``) to make room.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Protocol

from ntxcp.errors import QueueFullError

__all__ = [
    "STORED_ACTIONS",
    "DeadLetter",
    "MemoryStore",
    "MessageStore",
    "SqliteStore",
    "StoredMessage",
    "open_store",
]

STORED_ACTIONS = frozenset(
    {
        "MeterValues",
        "StatusNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
    }
)
"""The G→C actions that go through the store (spec §6.2)."""

FullPolicy = Literal["reject", "drop-oldest"]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One queued message.

    Attributes:
        seq: position in the queue (increasing).
        unique_id: the CALL id used on every attempt.
        action: the action name.
        payload: the validated JSON payload.
        created: UNIX time it was queued.
    """

    seq: int
    unique_id: str
    action: str
    payload: bytes
    created: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not be retried, and why."""

    message: StoredMessage
    code: str
    description: str
    moved_at: float


class MessageStore(Protocol):
    """What the gateway needs from a store."""

    def append(self, unique_id: str, action: str, payload: bytes) -> int:
        """Queue a message durably; returns its ``seq``.

        Raises:
            QueueFullError: a bound is reached and the policy is ``"reject"``.
        """
        ...

    def peek(self) -> StoredMessage | None:
        """The oldest queued message, if any."""
        ...

    def remove(self, seq: int) -> None:
        """Delete a delivered message."""
        ...

    def dead_letter(self, seq: int, code: str, description: str) -> None:
        """Move a message that must not be retried to the dead letters."""
        ...

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    def __len__(self) -> int:
        """Number of queued messages."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


class _Bounds:
    def __init__(self, max_count: int | None, max_bytes: int | None, policy: FullPolicy) -> None:
        if policy not in ("reject", "drop-oldest"):
            raise ValueError("policy must be 'reject' or 'drop-oldest'")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.policy = policy

    def over(self, count: int, size: int) -> bool:
        return (self.max_count is not None and count > self.max_count) or (
            self.max_bytes is not None and size > self.max_bytes
        )

    def refuse(self) -> QueueFullError:
        return QueueFullError(self.max_count if self.max_count is not None else -1)


class MemoryStore:
    """An in-memory store (lost with the process).

    Args:
        max_count: most messages queued (``None``: unbounded).
        max_bytes: most payload bytes queued (``None``: unbounded).
        policy: what happens when full (see the module docs).
    """

    def __init__(
        self,
        max_count: int | None = 100_000,
        max_bytes: int | None = None,
        policy: FullPolicy = "reject",
    ) -> None:
        self._bounds = _Bounds(max_count, max_bytes, policy)
        self._queue: OrderedDict[int, StoredMessage] = OrderedDict()
        self._dead: list[DeadLetter] = []
        self._bytes = 0
        self._next = 1

    def append(self, unique_id: str, action: str, payload: bytes) -> int:
        """Queue a message; see :meth:`MessageStore.append`."""
        count, size = len(self._queue) + 1, self._bytes + len(payload)
        if self._bounds.over(count, size):
            if self._bounds.policy == "reject":
                raise self._bounds.refuse()
            while self._queue and self._bounds.over(
                len(self._queue) + 1, self._bytes + len(payload)
            ):
                oldest = next(iter(self._queue))
                self.dead_letter(oldest, "dropped", "store full, oldest dropped")
        seq = self._next
        self._next += 1
        self._queue[seq] = StoredMessage(seq, unique_id, action, payload, time.time())
        self._bytes += len(payload)
        return seq

    def peek(self) -> StoredMessage | None:
        """The oldest queued message."""
        return next(iter(self._queue.values()), None)

    def remove(self, seq: int) -> None:
        """Delete a delivered message."""
        message = self._queue.pop(seq, None)
        if message is not None:
            self._bytes -= len(message.payload)

    def dead_letter(self, seq: int, code: str, description: str) -> None:
        """Move a message to the dead letters."""
        message = self._queue.pop(seq, None)
        if message is not None:
            self._bytes -= len(message.payload)
            self._dead.append(DeadLetter(message, code, description, time.time()))

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        return list(self._dead)

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    unique_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    seq INTEGER PRIMARY KEY,
    unique_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    code TEXT NOT NULL,
    description TEXT NOT NULL,
    moved_at REAL NOT NULL
);
"""


class SqliteStore:
    """A store in one SQLite file; survives process restarts and crashes.

    Every append is committed (WAL, ``synchronous=FULL``) before it returns, so a
    message the caller was told is queued survives a SIGKILL or power loss.

    Args:
        path: the database file (created when missing).
        max_count: most messages queued (``None``: unbounded).
        max_bytes: most payload bytes queued (``None``: unbounded).
        policy: what happens when full (see the module docs).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_count: int | None = 1_000_000,
        max_bytes: int | None = None,
        policy: FullPolicy = "reject",
    ) -> None:
        self.path = os.fspath(path)
        self._bounds = _Bounds(max_count, max_bytes, policy)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
        self._count, self._bytes = row.fetchone()
        self._head: StoredMessage | None = None

    def append(self, unique_id: str, action: str, payload: bytes) -> int:
        """Queue a message durably; see :meth:`MessageStore.append`."""
        if self._bounds.over(self._count + 1, self._bytes + len(payload)):
            if self._bounds.policy == "reject":
                raise self._bounds.refuse()
            while self._count and self._bounds.over(self._count + 1, self._bytes + len(payload)):
                oldest = self.peek()
                assert oldest is not None
                self.dead_letter(oldest.seq, "dropped", "store full, oldest dropped")
        cursor = self._db.execute(
            "INSERT INTO outbox (unique_id, action, payload, created) VALUES (?, ?, ?, ?)",
            (unique_id, action, payload, time.time()),
        )
        self._count += 1
        self._bytes += len(payload)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def peek(self) -> StoredMessage | None:
        """The oldest queued message."""
        if self._head is None and self._count:
            row = self._db.execute(
                "SELECT seq, unique_id, action, payload, created FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is not None:
                self._head = StoredMessage(row[0], row[1], row[2], bytes(row[3]), row[4])
        return self._head

    def _forget(self, seq: int) -> StoredMessage | None:
        row = self._db.execute(
            "DELETE FROM outbox WHERE seq = ? RETURNING seq, unique_id, action, payload, created",
            (seq,),
        ).fetchone()
        if self._head is not None and self._head.seq == seq:
            self._head = None
        if row is None:
            return None
        self._count -= 1
        self._bytes -= len(row[3])
        return StoredMessage(row[0], row[1], row[2], bytes(row[3]), row[4])

    def remove(self, seq: int) -> None:
        """Delete a delivered message.

        The delete is committed without waiting for the disk: should it be lost in a
        power cut, the message is sent once more with the same ``uniqueId`` and the
        control center drops the duplicate, so only appends pay for an fsync.
        """
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._forget(seq)
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def dead_letter(self, seq: int, code: str, description: str) -> None:
        """Move a message to the dead letters (one transaction)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            message = self._forget(seq)
            if message is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letter VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.seq,
                        message.unique_id,
                        message.action,
                        message.payload,
                        message.created,
                        code,
                        description,
                        time.time(),
                    ),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        rows = self._db.execute(
            "SELECT seq, unique_id, action, payload, created, code, description, moved_at "
            "FROM dead_letter ORDER BY seq"
        ).fetchall()
        return [
            DeadLetter(StoredMessage(r[0], r[1], r[2], bytes(r[3]), r[4]), r[5], r[6], r[7])
            for r in rows
        ]

    def __len__(self) -> int:
        return int(self._count)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def open_store(store: MessageStore | str | os.PathLike[str] | None) -> MessageStore:
    """Turn the ``store`` option of a gateway into a store.

    ``None`` or ``":memory:"`` → :class:`MemoryStore`; a path → :class:`SqliteStore`;
    a store object is used as it is.
    """
    if store is None or store == ":memory:":
        return MemoryStore()
    if isinstance(store, str | os.PathLike):
        return SqliteStore(store)
    return store
