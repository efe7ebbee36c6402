"""Durable outbox of a gateway for store-and-forward (spec §6.2).

``MeterValues``, ``StatusNotification``, ``DiagnosticsStatusNotification`` and
``FirmwareStatusNotification`` carry data that must not be lost. A gateway writes each
one here first, with the ``uniqueId`` it will keep on every attempt, and deletes it
only after the control center's CALLRESULT arrived. A CALLERROR or an invalid result
moves the message to a dead-letter table instead of retrying it forever.

Two implementations share one interface: :class:`SqliteStore` (one file, survives a
process restart; every append is committed before the caller is told it is queued)
and :class:`MemoryStore` (lost with the process, for gateways without a disk).

**Bounds and the full policy.** A store has two optional bounds: ``max_count``
(messages queued) and ``max_bytes`` (sum of the JSON payload sizes queued; ids,
action names and bookkeeping are not counted). A new message that would take the
queue past either bound is handled by ``policy``:

* ``"reject"`` (default): the new message is refused with :class:`StoreFullError`
  (a :class:`~ntxcp.errors.QueueFullError`) and nothing is stored, so the caller
  knows and nothing already accepted is lost;
* ``"drop-oldest"``: the oldest queued messages are moved to the dead letters with
  code ``"dropped"``, as many as needed to make room, then the new one is stored.
  The gateway fails whoever waits for a dropped message and reports the drop.

A single message larger than ``max_bytes`` never fits and is refused under either
policy. Dead letters do not count against the bounds; they are capped separately
(``max_dead_letters``, the oldest deleted first) and can be cleared.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal, Protocol

from ntxcp.errors import QueueFullError

__all__ = [
    "STORED_ACTIONS",
    "DeadLetter",
    "FullPolicy",
    "MemoryStore",
    "MessageStore",
    "SqliteStore",
    "StoreFullError",
    "StoredMessage",
    "Synchronous",
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
"""What a full store does with a new message (see the module docs)."""

Synchronous = Literal["FULL", "NORMAL"]
"""SQLite ``synchronous`` level of the appends (see :class:`SqliteStore`)."""

DROPPED = "dropped"
"""Dead-letter code of a message removed by the ``"drop-oldest"`` policy."""


class StoreFullError(QueueFullError):
    """The store-and-forward outbox is full and its policy is ``"reject"``.

    Attributes:
        capacity: the ``max_count`` bound (``-1`` when only bytes are bounded).
        max_bytes: the ``max_bytes`` bound, if any.
    """

    def __init__(self, max_count: int | None, max_bytes: int | None, reason: str) -> None:
        super().__init__(-1 if max_count is None else max_count)
        self.max_bytes = max_bytes
        self.args = (f"store-and-forward outbox full: {reason}",)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One queued message.

    Attributes:
        seq: position in the queue (increasing, never reused by a store).
        unique_id: the CALL id used on every attempt (spec §6.2).
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
    """A message that will not be retried, and why.

    Attributes:
        message: the message as it was queued.
        code: the CALLERROR code, ``"dropped"`` (full store, ``"drop-oldest"``) or
            ``"invalid"`` (the stored payload cannot be sent any more).
        description: the error's description.
        moved_at: UNIX time it became a dead letter.
    """

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

    def take_dropped(self) -> list[StoredMessage]:
        """The messages dropped by the full policy since the last call (then forgotten)."""
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
        if max_count is not None and max_count < 1:
            raise ValueError("max_count must be >= 1 or None")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1 or None")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.policy = policy

    def over(self, count: int, size: int) -> bool:
        """Whether ``count`` messages of ``size`` payload bytes break a bound."""
        return (self.max_count is not None and count > self.max_count) or (
            self.max_bytes is not None and size > self.max_bytes
        )

    def check(self, count: int, size: int, new: int) -> bool:
        """Decide a new message of ``new`` bytes; ``True``: drop the oldest first.

        Raises:
            StoreFullError: the message is refused.
        """
        if self.max_bytes is not None and new > self.max_bytes:
            raise StoreFullError(
                self.max_count,
                self.max_bytes,
                f"message of {new} bytes exceeds max_bytes={self.max_bytes}",
            )
        if not self.over(count + 1, size + new):
            return False
        if self.policy == "reject":
            raise StoreFullError(
                self.max_count,
                self.max_bytes,
                f"{count} messages / {size} bytes queued "
                f"(max_count={self.max_count}, max_bytes={self.max_bytes})",
            )
        return True


class MemoryStore:
    """An in-memory store (lost with the process).

    Args:
        max_count: most messages queued (``None``: unbounded).
        max_bytes: most payload bytes queued (``None``: unbounded).
        policy: what happens when full (see the module docs).
        max_dead_letters: dead letters kept (the oldest go first).
    """

    def __init__(
        self,
        max_count: int | None = 100_000,
        max_bytes: int | None = None,
        policy: FullPolicy = "reject",
        *,
        max_dead_letters: int = 10_000,
    ) -> None:
        self._bounds = _Bounds(max_count, max_bytes, policy)
        self._queue: OrderedDict[int, StoredMessage] = OrderedDict()
        self._dead: deque[DeadLetter] = deque(maxlen=max_dead_letters)
        self._dropped: list[StoredMessage] = []
        self._bytes = 0
        self._next = 1

    @property
    def size_bytes(self) -> int:
        """Payload bytes queued."""
        return self._bytes

    def append(self, unique_id: str, action: str, payload: bytes) -> int:
        """Queue a message; see :meth:`MessageStore.append`."""
        if self._bounds.check(len(self._queue), self._bytes, len(payload)):
            while self._queue and self._bounds.over(
                len(self._queue) + 1, self._bytes + len(payload)
            ):
                oldest = next(iter(self._queue.values()))
                self.dead_letter(oldest.seq, DROPPED, "store full, oldest dropped")
                self._dropped.append(oldest)
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
        """Every dead letter kept, oldest first."""
        return list(self._dead)

    def clear_dead_letters(self) -> int:
        """Forget every dead letter; returns how many there were."""
        count = len(self._dead)
        self._dead.clear()
        return count

    def take_dropped(self) -> list[StoredMessage]:
        """The messages dropped by ``"drop-oldest"`` since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Nothing to release (the queue stays usable)."""


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

    The file uses SQLite's write-ahead log. What "durable" means depends on
    ``synchronous``:

    * ``"FULL"`` (default): every append is committed *and* the log is fsync'ed
      before :meth:`append` returns. A message the caller was told is queued
      survives a SIGKILL of the process, a kernel panic and a power cut.
    * ``"NORMAL"``: every append is committed (in the operating system's page
      cache) before it returns, without an fsync. It survives a SIGKILL or a crash
      of the process; the last appends before a power cut or kernel panic may be
      lost (the file itself stays consistent).

    Deleting a delivered message never waits for the disk: should a delete be lost
    in a power cut, the message is sent once more with the same ``uniqueId`` and the
    control center can drop the duplicate (spec §6.2).

    One process at a time may use a file. Calls block the event loop for the time
    of one SQLite statement (an fsync with ``"FULL"``).

    Args:
        path: the database file (created when missing).
        max_count: most messages queued (``None``: unbounded).
        max_bytes: most payload bytes queued (``None``: unbounded).
        policy: what happens when full (see the module docs).
        synchronous: ``"FULL"`` or ``"NORMAL"``, see above.
        max_dead_letters: dead letters kept (the oldest go first).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_count: int | None = 1_000_000,
        max_bytes: int | None = None,
        policy: FullPolicy = "reject",
        *,
        synchronous: Synchronous = "FULL",
        max_dead_letters: int = 10_000,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be 'FULL' or 'NORMAL'")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.max_dead_letters = max_dead_letters
        self._bounds = _Bounds(max_count, max_bytes, policy)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
        self._count, self._bytes = row.fetchone()
        self._head: StoredMessage | None = None
        self._dropped: list[StoredMessage] = []
        self._closed = False

    @property
    def size_bytes(self) -> int:
        """Payload bytes queued."""
        return int(self._bytes)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def append(self, unique_id: str, action: str, payload: bytes) -> int:
        """Queue a message durably; see :meth:`MessageStore.append`."""
        drop = self._bounds.check(self._count, self._bytes, len(payload))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            dropped: list[StoredMessage] = []
            if drop:
                dropped = self._drop_oldest(len(payload))
            cursor = self._db.execute(
                "INSERT INTO outbox (unique_id, action, payload, created) VALUES (?, ?, ?, ?)",
                (unique_id, action, payload, time.time()),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._count += 1
        self._bytes += len(payload)
        self._dropped.extend(dropped)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _drop_oldest(self, new: int) -> list[StoredMessage]:
        """Move the oldest messages to the dead letters until ``new`` bytes fit."""
        dropped: list[StoredMessage] = []
        while self._count and self._bounds.over(self._count + 1, self._bytes + new):
            oldest = self.peek()
            assert oldest is not None
            self._move(oldest.seq, DROPPED, "store full, oldest dropped")
            dropped.append(oldest)
        return dropped

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        # Counters may be stale after a failed transaction: read them back.
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
        self._count, self._bytes = row.fetchone()
        self._head = None

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
        """Delete a delivered message (committed without an fsync, see the class docs)."""
        if self.synchronous == "NORMAL":
            self._forget(seq)
            return
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._forget(seq)
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def _move(self, seq: int, code: str, description: str) -> None:
        message = self._forget(seq)
        if message is None:
            return
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
        self._db.execute(  # keep the newest max_dead_letters (primary-key range delete)
            "DELETE FROM dead_letter WHERE seq <= "
            "(SELECT seq FROM dead_letter ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (self.max_dead_letters,),
        )

    def dead_letter(self, seq: int, code: str, description: str) -> None:
        """Move a message to the dead letters (one transaction)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._move(seq, code, description)
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter kept, oldest first."""
        rows = self._db.execute(
            "SELECT seq, unique_id, action, payload, created, code, description, moved_at "
            "FROM dead_letter ORDER BY seq"
        ).fetchall()
        return [
            DeadLetter(StoredMessage(r[0], r[1], r[2], bytes(r[3]), r[4]), r[5], r[6], r[7])
            for r in rows
        ]

    def clear_dead_letters(self) -> int:
        """Forget every dead letter; returns how many there were."""
        return int(self._db.execute("DELETE FROM dead_letter").rowcount)

    def take_dropped(self) -> list[StoredMessage]:
        """The messages dropped by ``"drop-oldest"`` since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def __len__(self) -> int:
        return int(self._count)

    def close(self) -> None:
        """Close the database (idempotent)."""
        if not self._closed:
            self._closed = True
            self._db.close()


def open_store(store: MessageStore | str | os.PathLike[str] | None) -> MessageStore:
    """Turn the ``store`` option of a gateway into a store.

    ``None`` or ``":memory:"`` → :class:`MemoryStore`; a path → :class:`SqliteStore`
    with its defaults; a store object is used as it is.
    """
    if store is None or store == ":memory:":
        return MemoryStore()
    if isinstance(store, str | os.PathLike):
        return SqliteStore(store)
    return store
