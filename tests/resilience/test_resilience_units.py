"""Backoff delays and the store-and-forward outboxes (spec §6.2), without sockets."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ntxcp import Backoff, QueueFullError
from ntxcp.endpoints.store import (
    MemoryStore,
    MessageStore,
    SqliteStore,
    StoreFullError,
    open_store,
)

# --- backoff ------------------------------------------------------------------------


def test_backoff_defaults_are_the_spec_ones() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.factor, backoff.maximum, backoff.jitter) == (1, 2, 60, 0.25)
    assert backoff.max_attempts is None
    assert [backoff.base(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.base(10_000) == 60  # no overflow however long it retries


def test_backoff_delays_stay_within_the_jitter_bounds() -> None:
    backoff = Backoff(initial=0.5, factor=3, maximum=20, jitter=0.25)
    rng = random.Random(7)
    for attempt in range(12):
        low, high = backoff.bounds(attempt)
        assert low == pytest.approx(backoff.base(attempt) * 0.75)
        assert high == pytest.approx(backoff.base(attempt) * 1.25)
        delays = [backoff.delay(attempt, rng) for _ in range(500)]
        assert all(low <= d <= high for d in delays)
        # the spread really is random and uses both sides of the base
        assert min(delays) < backoff.base(attempt) * 0.9
        assert max(delays) > backoff.base(attempt) * 1.1


def test_backoff_without_jitter_is_exact_and_at_maximum_is_jittered() -> None:
    assert [Backoff(initial=1, jitter=0).delay(n) for n in range(4)] == [1, 2, 4, 8]
    backoff = Backoff(maximum=10)
    rng = random.Random(1)
    values = [backoff.at_maximum(rng) for _ in range(200)]
    assert all(7.5 <= v <= 12.5 for v in values)
    assert Backoff(maximum=10, jitter=0).at_maximum() == 10


def test_backoff_max_attempts_and_validation() -> None:
    assert not Backoff().exhausted(10**6)  # forever by default
    limited = Backoff(max_attempts=3)
    assert [limited.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    for bad in (
        {"initial": -1},
        {"initial": 5, "maximum": 1},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"max_attempts": 0},
        {"reset_after": -1},
    ):
        with pytest.raises(ValueError):
            Backoff(**bad)  # type: ignore[arg-type]


# --- stores ---------------------------------------------------------------------------

StoreFactory = Callable[..., MessageStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    def make(**kwargs: object) -> MessageStore:
        if request.param == "memory":
            return MemoryStore(**kwargs)  # type: ignore[arg-type]
        return SqliteStore(tmp_path / "outbox.db", **kwargs)  # type: ignore[arg-type]

    return make


def test_store_keeps_order_and_removes_only_what_was_delivered(make_store: StoreFactory) -> None:
    store = make_store()
    seqs = [store.append(f"id-{i}", "MeterValues", b'{"n":%d}' % i) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert len(store) == 5
    head = store.peek()
    assert head is not None and head.unique_id == "id-0" and head.seq == seqs[0]
    assert store.peek() == head  # peeking does not consume
    store.remove(seqs[0])
    store.remove(seqs[0])  # idempotent
    assert [store.peek().unique_id, len(store)] == ["id-1", 4]  # type: ignore[union-attr]
    store.remove(seqs[2])  # out of order removal keeps the rest in order
    out = []
    while (message := store.peek()) is not None:
        out.append(message.unique_id)
        store.remove(message.seq)
    assert out == ["id-1", "id-3", "id-4"]
    store.close()


def test_reject_policy_count_bound(make_store: StoreFactory) -> None:
    store = make_store(max_count=3)
    for i in range(3):
        store.append(f"id-{i}", "MeterValues", b"{}")
    with pytest.raises(StoreFullError) as info:
        store.append("id-3", "MeterValues", b"{}")
    assert isinstance(info.value, QueueFullError)
    assert info.value.capacity == 3
    assert "max_count=3" in str(info.value)
    assert len(store) == 3 and store.dead_letters() == []  # nothing lost, nothing added
    store.remove(store.peek().seq)  # type: ignore[union-attr]
    store.append("id-3", "MeterValues", b"{}")  # room again
    assert len(store) == 3
    store.close()


def test_reject_policy_bytes_bound(make_store: StoreFactory) -> None:
    store = make_store(max_count=None, max_bytes=100)
    store.append("a", "MeterValues", b"x" * 60)
    with pytest.raises(StoreFullError, match="max_bytes=100"):
        store.append("b", "MeterValues", b"x" * 41)
    store.append("b", "MeterValues", b"x" * 40)  # exactly at the bound is fine
    assert len(store) == 2
    store.close()


def test_drop_oldest_policy_moves_the_oldest_to_the_dead_letters(make_store: StoreFactory) -> None:
    store = make_store(max_count=3, policy="drop-oldest")
    for i in range(5):
        store.append(f"id-{i}", "MeterValues", b"{}")
    assert len(store) == 3
    assert store.peek().unique_id == "id-2"  # type: ignore[union-attr]
    dropped = store.take_dropped()
    assert [m.unique_id for m in dropped] == ["id-0", "id-1"]
    assert store.take_dropped() == []  # reported once
    dead = store.dead_letters()
    assert [(d.message.unique_id, d.code) for d in dead] == [
        ("id-0", "dropped"),
        ("id-1", "dropped"),
    ]
    store.close()


def test_drop_oldest_bytes_bound_and_a_message_that_never_fits(make_store: StoreFactory) -> None:
    store = make_store(max_count=None, max_bytes=100, policy="drop-oldest")
    for i in range(4):
        store.append(f"id-{i}", "MeterValues", b"x" * 30)  # 4th drops the 1st
    assert len(store) == 3 and [m.unique_id for m in store.take_dropped()] == ["id-0"]
    store.append("big", "MeterValues", b"x" * 90)  # drops as many as needed: all three
    assert len(store) == 1 and len(store.take_dropped()) == 3
    with pytest.raises(StoreFullError, match="exceeds max_bytes"):
        store.append("huge", "MeterValues", b"x" * 101)  # refused under either policy
    assert store.peek().unique_id == "big"  # type: ignore[union-attr]
    store.close()


def test_dead_letters_keep_why_and_are_capped(make_store: StoreFactory) -> None:
    store = make_store(max_dead_letters=3)
    seqs = [store.append(f"id-{i}", "StatusNotification", b"{}") for i in range(5)]
    for seq in seqs:
        store.dead_letter(seq, "PropertyConstraintViolation", f"bad {seq}")
    store.dead_letter(seqs[0], "X", "already gone: ignored")
    dead = store.dead_letters()
    assert len(store) == 0
    assert [d.message.unique_id for d in dead] == ["id-2", "id-3", "id-4"]  # newest kept
    assert dead[0].code == "PropertyConstraintViolation"
    assert dead[0].description == f"bad {seqs[2]}"
    assert dead[0].message.action == "StatusNotification"
    assert store.clear_dead_letters() == 3  # type: ignore[attr-defined]
    assert store.dead_letters() == []
    store.close()


def test_sqlite_store_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    store = SqliteStore(path)
    seqs = [store.append(f"id-{i}", "MeterValues", b'{"i":%d}' % i) for i in range(4)]
    store.remove(seqs[0])
    store.dead_letter(seqs[1], "GenericError", "no")
    store.close()
    store.close()  # idempotent

    again = SqliteStore(path)
    assert len(again) == 2 and again.size_bytes == len(b'{"i":2}') * 2
    head = again.peek()
    assert head is not None and (head.unique_id, head.payload) == ("id-2", b'{"i":2}')
    assert [d.message.unique_id for d in again.dead_letters()] == ["id-1"]
    new_seq = again.append("id-9", "MeterValues", b"{}")
    assert new_seq > seqs[-1]  # ids are never reused, order holds across restarts
    again.close()
    # the file is plain SQLite: an operator can look into it
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (3,)


def test_sqlite_store_options(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db", synchronous="NORMAL")
    seq = store.append("a", "MeterValues", b"{}")
    store.remove(seq)
    assert len(store) == 0
    store.close()
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "b.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MemoryStore(policy="drop-newest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MemoryStore(max_count=0)


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(":memory:"), MemoryStore)
    sqlite = open_store(tmp_path / "x.db")
    assert isinstance(sqlite, SqliteStore)
    sqlite.close()
    mine = MemoryStore(max_count=5)
    assert open_store(mine) is mine
