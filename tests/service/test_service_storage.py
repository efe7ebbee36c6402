"""The service's storage guarantees: durability, bounded disk use, the frame log's limits."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import WAIT, Api, ServiceProcess, at, gateway, raw_connect, sample, until

import ntxcp
from databases import Databases
from ntxcp.service import (
    ConfigError,
    Durability,
    FrameLogMode,
    Service,
    ServiceConfig,
    UnknownGatewayPolicy,
    build_config,
    queries,
)
from ntxcp.service import writer as writer_module
from ntxcp.service.backend import StorageBackend, create_storage
from ntxcp.service.framelog import EXCERPT_BYTES, FrameBudgets
from ntxcp.service.meter_series import SeriesFilter
from ntxcp.service.migrations import MIGRATIONS
from ntxcp.service.storage import FRAMES_PER_BATCH, Storage
from ntxcp.service.writer import MAX_BATCH
from ntxcp.v10 import core
from ntxcp.v10 import types as t

# PRAGMA synchronous values (SQLite): 1 = NORMAL, 2 = FULL.
_NORMAL, _FULL = 1, 2


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(
    ("durability", "expected"),
    [(None, _FULL), (Durability.DISK, _FULL), (Durability.PROCESS, _NORMAL)],
)
async def test_durability_sets_synchronous(
    tmp_path: Path, durability: Durability | None, expected: int
) -> None:
    # The database opened exactly as the service opens it (Storage.open), read on the
    # connection its writes are committed with.
    storage = (
        Storage(tmp_path / "d.sqlite")
        if durability is None
        else Storage(tmp_path / "d.sqlite", durability)
    )
    storage.open()
    try:
        assert await storage.write(_synchronous) == expected
    finally:
        await storage.close()


def test_durability_setting_from_flags_and_toml(tmp_path: Path) -> None:
    assert build_config().durability is Durability.DISK
    assert build_config({"durability": "process"}).durability is Durability.PROCESS
    file = tmp_path / "cc.toml"
    file.write_text('[control-center]\ndurability = "process"\n')
    assert build_config(None, file).durability is Durability.PROCESS
    assert build_config({"durability": "disk"}, file).durability is Durability.DISK
    with pytest.raises(ConfigError, match="one of disk, process"):
        build_config({"durability": "sometimes"})


async def test_healthz_and_start_up_log_name_the_durability(tmp_path: Path) -> None:
    file = tmp_path / "cc.toml"
    file.write_text('durability = "process"\n')
    for args, expected in (((), "disk"), (("--config", str(file)), "process")):
        process = ServiceProcess(tmp_path, *args).start()
        try:
            async with aiohttp.ClientSession() as http:
                status, health = await Api(http, process.api_url, None).get("/healthz")
            assert status == 200 and health["durability"] == expected
            assert process.stop() == 0
            assert f"durability: {expected} (SQLite synchronous=" in process.stderr()
        finally:
            process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_acknowledged_is_lost_across_sigkill(
    tmp_path: Path, databases: Databases
) -> None:
    """The service is SIGKILLed while a gateway's outbox drains into it, then restarted on
    the same database: every message is stored exactly once (spec §6.2 store and forward:
    what was acknowledged is committed; what was not is re-sent and stored)."""
    port = str(_free_port())
    count, per_message = 1500, 2
    gw = ntxcp.Gateway(
        "kill-1",
        backoff=ntxcp.Backoff(initial=0.05, maximum=0.2),
        boot=core.BootNotificationRequest(
            dingx_gateway_model="DX-100", dingx_gateway_vendor="ntxcp-tests"
        ),
        heartbeat=False,
    )
    db = databases.new()
    first = ServiceProcess(tmp_path, "--port", port, db=db).start()
    second: ServiceProcess | None = None
    try:
        await gw.start(first.ws_url, retry=True)
        await gw.wait_ready(timeout=10)
        for seq in range(count):
            values = [sample(f"{seq}.{index}") for index in range(per_message)]
            gw.queue_request(
                core.MeterValuesRequest(
                    service_id=1,
                    meter_value=[t.MeterValue(timestamp=at(seq), sampled_value=values)],
                )
            )
        async with aiohttp.ClientSession() as http:
            api = Api(http, first.api_url, None)

            async def some_stored() -> bool:
                _, items = await api.get("/api/gateways/kill-1/meter-values", limit="1")
                return bool(items and items["items"])

            await until(some_stored, timeout=20)
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: no shutdown, no final checkpoint
        first.wait()
        assert len(gw.store) > 0, "the outbox drained before the kill: nothing was tested"
        second = ServiceProcess(tmp_path, "--port", port, db=db).start()
        await gw.flush(timeout=30)
        async with aiohttp.ClientSession() as http:
            api = Api(http, second.api_url, None)
            status, body = await api.get(
                "/api/gateways/kill-1/meter-values", limit=str(count * per_message + 10)
            )
        assert status == 200
        values = sorted(item["value"] for item in body["items"])
        expected = sorted(f"{seq}.{index}" for seq in range(count) for index in range(per_message))
        assert values == expected  # each sample once: nothing lost, nothing doubled
        assert second.stop() == 0
    finally:
        await gw.stop()
        first.kill()
        if second is not None:
            second.kill()


# --- bounded disk use (frame log limits, database cap, WAL) ------------------------------


def _config(db: Path | str, **settings: Any) -> ServiceConfig:
    """Settings of an in-process service on free ports: ``db`` a directory (SQLite file
    in it) or a database of :class:`databases.Databases`."""
    path = str(db / "cc.sqlite") if isinstance(db, Path) else db
    return ServiceConfig(port=0, api_port=0, db=path, **settings)


async def _logged(storage: StorageBackend, gateway_id: str) -> list[tuple[Any, ...]]:
    """The frame log of a gateway: direction, type, action, stored bytes, size, bytes?"""
    rows = await storage.fetch(
        "SELECT direction, message_type, action, raw, size FROM frames "
        "WHERE gateway_id = ? ORDER BY id",
        gateway_id,
    )
    return [
        (direction, kind, action, len(raw.encode() if isinstance(raw, str) else raw), size,
         isinstance(raw, bytes))
        for direction, kind, action, raw, size in rows
    ]  # fmt: skip


async def test_refused_and_malformed_frames_are_logged_as_excerpts(databases: Databases) -> None:
    config = _config(databases.new(), unknown_gateways=UnknownGatewayPolicy.REJECT)
    big_data = "x" * 256 * 1024
    async with Service(config) as service, aiohttp.ClientSession() as http:
        await service.storage.register_gateway("good-1", None)
        # A gateway that is not accepted: its frames are refused (spec §4.1).
        ws = await raw_connect(http, service.ws_url, "rejected-1")
        await ws.send_str(
            json.dumps([2, "r1", "DataTransfer", {"vendorId": "V", "data": big_data}])
        )
        answer = json.loads(await ws.receive_str(timeout=WAIT))
        assert answer[0] == 4 and answer[2] == "SecurityError"
        # Garbage: not UTF-8 (each 0xFF once became a 3-byte U+FFFD), not JSON-RPC.
        await ws.send_frame(b"\xff" * 64 * 1024, aiohttp.WSMsgType.TEXT)
        await ws.send_str("[" * 8192)
        await ws.close()
        good_ws = await raw_connect(http, service.ws_url, "good-1")
        # An accepted gateway's valid data is logged whole ...
        await good_ws.send_str(
            json.dumps([2, "g1", "DataTransfer", {"vendorId": "V", "data": "y" * 8192}])
        )
        assert json.loads(await good_ws.receive_str(timeout=WAIT))[0] == 3
        # ... a large CALL answered with a CALLERROR (invalid, spec §2.2) is cut.
        await good_ws.send_str(
            json.dumps([2, "g2", "DataTransfer", {"vendorId": "V" * 300, "data": "z" * 8192}])
        )
        assert json.loads(await good_ws.receive_str(timeout=WAIT))[0] == 4
        await good_ws.close()
        await service.storage.sync()
        refused = await _logged(service.storage, "rejected-1")
        good = await _logged(service.storage, "good-1")
        metrics = service.metrics.render()
    inbound = [row for row in refused if row[0] == "in"]
    assert len(inbound) >= 2, refused
    for _, _, _, stored, size, _ in inbound:
        assert stored <= EXCERPT_BYTES and size is not None and size > EXCERPT_BYTES
    assert any(row[5] and row[4] == 64 * 1024 for row in inbound)  # kept as bytes
    assert sum(row[3] for row in refused) < 8 * EXCERPT_BYTES
    whole = [row for row in good if row[0] == "in" and row[2] == "DataTransfer"]
    assert whole[0][4] is None and whole[0][3] > 8192  # accepted and valid: whole
    assert whole[-1][4] is not None and whole[-1][3] <= EXCERPT_BYTES  # refused by validation
    assert re.search(r"^ntxcp_frame_log_truncated_total [1-9]", metrics, re.M), metrics


async def test_frame_log_byte_budgets_drop_with_a_metric(databases: Databases) -> None:
    config = _config(databases.new(), frame_log_gateway_budget=20_000, frame_log_budget=50_000)
    async with Service(config) as service:
        for name in ("budget-1", "budget-2", "budget-3"):
            async with gateway(service.ws_url, name) as gw:
                for index in range(20):  # about 2 KB in and 100 B out each
                    await gw.data_transfer("V", message_id=str(index), data="d" * 2000)
        await service.storage.sync()

        logged: dict[str, int] = {}
        for gateway_id, raw in await service.storage.fetch("SELECT gateway_id, raw FROM frames"):
            logged[gateway_id] = logged.get(gateway_id, 0) + len(raw)
        transfers = await service.storage.read(queries.data_transfers, "budget-1", 100)
        metrics = service.metrics.render()
    assert all(size <= 20_000 for size in logged.values()), logged
    assert sum(logged.values()) <= 50_000 and logged.get("budget-3", 0) < 20_000, logged
    assert len(transfers) == 20  # the data itself is never subject to the budget
    for reason in ("gateway-budget", "total-budget"):
        assert re.search(
            rf'^ntxcp_frame_log_dropped_total{{reason="{reason}"}} [1-9]', metrics, re.M
        )
        assert f'ntxcp_frame_log_dropped_bytes_total{{reason="{reason}"}}' in metrics


def test_byte_budget_refills_and_forgets_idle_gateways() -> None:
    now = [0.0]
    budgets = FrameBudgets(3600, 0, clock=lambda: now[0])  # 1 byte per second each
    assert budgets.spend("a", 3000) is None
    assert budgets.spend("a", 1000) == "gateway-budget"
    assert budgets.spend("b", 1000) is None  # each gateway has its own
    now[0] = 400.0  # 400 bytes came back
    assert budgets.spend("a", 1000) is None
    assert budgets.spend("a", 1) == "gateway-budget"
    for index in range(1100):
        budgets.spend(f"idle-{index}", 1)
    now[0] = 10_000.0  # every bucket full again: a sweep forgets them
    for index in range(1100, 2300):
        budgets.spend(f"idle-{index}", 1)
    assert budgets.tracked < 2300
    total = FrameBudgets(0, 100, clock=lambda: now[0])
    assert total.spend("a", 60) is None and total.spend("b", 60) == "total-budget"


@pytest.mark.parametrize("mode", [FrameLogMode.ERRORS, FrameLogMode.OFF])
async def test_frame_log_modes(databases: Databases, mode: FrameLogMode) -> None:
    async with Service(_config(databases.new(), frame_log=mode)) as service:
        async with gateway(service.ws_url, "mode-1") as gw:
            await gw.heartbeat()
        async with aiohttp.ClientSession() as http:
            ws = await raw_connect(http, service.ws_url, "mode-1")
            await ws.send_str(json.dumps([2, "m1", "DataTransfer", {"vendorId": "V" * 300}]))
            assert json.loads(await ws.receive_str(timeout=WAIT))[0] == 4  # a CALLERROR
            await ws.close()
        await service.storage.sync()
        logged = await _logged(service.storage, "mode-1")
        metrics = service.metrics.render()
    assert 'ntxcp_messages_total{action="Heartbeat",direction="in",type="CALL"} 1' in metrics
    if mode is FrameLogMode.OFF:
        assert logged == []
    else:
        assert [(row[0], row[1], row[2]) for row in logged] == [("out", 4, "DataTransfer")]


async def test_database_size_cap_raises_the_storage_alarm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ntxcp.service.storage")
    async with Service(_config(tmp_path, max_db_size=1)) as service:  # over the cap at once
        api = Api(aiohttp.ClientSession(), service.api_url, None)
        try:

            async def degraded() -> bool:
                _, health = await api.get("/healthz")
                return bool(health["status"] == "degraded")

            await until(degraded)
            _, health = await api.get("/healthz")
            assert health["alarms"] == ["frame-log-paused"] and health["databaseBytes"] > 1
            async with gateway(service.ws_url, "full-1") as gw:
                await gw.heartbeat()
                await gw.meter_values(
                    1, [t.MeterValue(timestamp=at(0), sampled_value=[sample("5")])]
                )
            await service.storage.sync()
            assert await _logged(service.storage, "full-1") == []  # frame log stopped
            stored = await service.storage.read(
                queries.meter_values, "full-1", queries.MeterFilter()
            )
            assert [item["value"] for item in stored] == ["5"]  # data still stored
            _, metrics = await api.get("/metrics")
            assert re.search(r"^ntxcp_storage_alarm 1$", metrics, re.M)
            assert 'ntxcp_frame_log_dropped_total{reason="storage-alarm"}' in metrics
            assert "storage alarm: frame log stopped" in caplog.text
            service.storage.max_db_size = 0  # the operator made room

            async def cleared() -> bool:
                _, health = await api.get("/healthz")
                return bool(health["status"] == "ok")

            await until(cleared)
            assert "storage alarm cleared" in caplog.text
        finally:
            await api.session.close()


async def test_wal_stays_bounded_under_load(tmp_path: Path) -> None:
    limit = 2**20
    storage = Storage(tmp_path / "w.sqlite", wal_limit=limit)
    storage.open()
    wal = tmp_path / "w.sqlite-wal"
    largest = 0
    try:
        frame = b"f" * (256 * 1024)
        for index in range(48):  # 12 MiB, faster than the background checkpoints
            storage.log_frame("gw", "in", 1_767_225_600_000, 2, "X", str(index), frame)
            await storage.sync()
            largest = max(largest, wal.stat().st_size)
    finally:
        await storage.close()
    assert largest <= limit + 2 * 256 * 1024 + 64 * 1024, largest


# --- the storage layout: one row per MeterValues message -----------------------------


def _create_version_2(path: Path) -> None:
    """A database as the previous layout (schema 2) left it: one row per sample."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, steps in MIGRATIONS[:2]:
        for step in steps:
            assert isinstance(step, str)
            conn.execute(step)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    rows = [
        (
            "old-1",
            1,
            "2026-11-23T18:00:00.000Z",
            "Energy.Active.Import.Register",
            None,
            "Wh",
            "1000",
            "Sample.Periodic",
            "Outlet",
            "Raw",
            "2026-11-23T18:00:01.000Z",
        ),
        (
            "old-1",
            1,
            "2026-11-23T18:01:00.000Z",
            "Voltage",
            "L1",
            "V",
            "230.5",
            "Sample.Clock",
            "Outlet",
            "Raw",
            "2026-11-23T18:01:01.500Z",
        ),
    ]
    conn.executemany(
        "INSERT INTO meter_values (gateway_id, service_id, timestamp, measurand, phase, unit, "
        "value, context, location, format, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute(
        "INSERT INTO received_calls VALUES ('old-1', 'MeterValues', 'sent-before', "
        "'2026-11-23T18:01:01.500Z')"
    )
    conn.executemany(
        "INSERT INTO frames (gateway_id, direction, time, message_type, action, unique_id, raw) "
        "VALUES ('old-1', ?, ?, 2, 'Heartbeat', ?, ?)",
        [
            ("in", "2026-11-23T18:00:00.250Z", "h1", '[2,"h1","Heartbeat",{}]'),
            ("in", "2026-11-23T18:05:00.000Z", "h2", '[2,"h2","Heartbeat",{}]'),
        ],
    )
    conn.close()


async def test_migration_to_one_row_per_message_keeps_every_sample(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _create_version_2(path)
    storage = Storage(path)
    storage.open()
    try:
        items = await storage.read(queries.meter_values, "old-1", queries.MeterFilter())
        assert [
            (i["timestamp"], i["measurand"], i["phase"], i["unit"], i["value"]) for i in items
        ] == [
            ("2026-11-23T18:01:00.000Z", "Voltage", "L1", "V", "230.5"),
            ("2026-11-23T18:00:00.000Z", "Energy.Active.Import.Register", None, "Wh", "1000"),
        ]
        assert items[0]["context"] == "Sample.Clock"
        assert items[0]["receivedAt"] == "2026-11-23T18:01:01.500Z"
        request = core.MeterValuesRequest(
            service_id=1, meter_value=[t.MeterValue(timestamp=at(5), sampled_value=[sample("7")])]
        )
        # A message claimed before the upgrade is still recognised when re-sent.
        assert await storage.record_meter_values("old-1", "sent-before", request) is None
        assert await storage.record_meter_values("old-1", "sent-after", request) == 1
        assert await storage.record_meter_values("old-1", "sent-after", request) is None

        def tables(conn: sqlite3.Connection) -> set[str]:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}

        assert "meter_values" not in await storage.read(tables)
        logged = await storage.read(queries.frames, "old-1", queries.FrameFilter())
        assert [(f["time"], f["raw"]) for f in logged] == [
            ("2026-11-23T18:05:00.000Z", '[2,"h2","Heartbeat",{}]'),
            ("2026-11-23T18:00:00.250Z", '[2,"h1","Heartbeat",{}]'),
        ]
        later = queries.FrameFilter(since="2026-11-23T18:00:00.251Z")
        assert [f["uniqueId"] for f in await storage.read(queries.frames, "old-1", later)] == ["h2"]
    finally:
        await storage.close()


async def test_meter_queries_order_filter_and_limit_across_messages(
    databases: Databases,
) -> None:
    storage = create_storage(_config(databases.new()))
    await storage.start()
    voltage, power = t.Measurand.VOLTAGE, t.Measurand.POWER_ACTIVE_IMPORT
    try:
        # A store-and-forward message arriving late holds older samples than the one
        # stored before it; a message may hold several meter values.
        late = [
            t.MeterValue(timestamp=at(m), sampled_value=[sample(f"v{m}", voltage)]) for m in (1, 4)
        ]
        await storage.record_meter_values(
            "q", "a", _meter(at(3), [sample("e3"), sample("p3", power)])
        )
        await storage.record_meter_values(
            "q", "b", core.MeterValuesRequest(service_id=2, meter_value=late)
        )
        await storage.record_meter_values("q", "c", _meter(at(2), [sample("v2", voltage)]))

        async def values(**filters: Any) -> list[str]:
            found = await storage.read(queries.meter_values, "q", queries.MeterFilter(**filters))
            return [item["value"] for item in found]

        assert await values() == ["v4", "p3", "e3", "v2", "v1"]
        assert await values(ascending=True) == ["v1", "v2", "e3", "p3", "v4"]
        assert await values(limit=2) == ["v4", "p3"]
        assert await values(limit=2, ascending=True) == ["v1", "v2"]
        assert await values(measurand="Voltage") == ["v4", "v2", "v1"]
        assert await values(measurand="Energy.Active.Import.Register") == ["e3"]
        assert await values(measurand="Current.Import") == []
        assert await values(service=2) == ["v4", "v1"]
        since, until = t.encode_datetime(at(2)), t.encode_datetime(at(3))
        assert await values(since=since, until=until) == ["p3", "e3", "v2"]
        assert await values(since=t.encode_datetime(at(4))) == ["v4"]
    finally:
        await storage.close()


async def test_meter_queries_read_past_many_pages(databases: Databases) -> None:
    # More messages than one page of a read (PostgreSQL: 200, then doubling), several
    # with the same last timestamp: every page continues exactly after the previous.
    storage = create_storage(_config(databases.new()))
    await storage.start()
    voltage = t.Measurand.VOLTAGE
    try:
        stored = []
        for index in range(700):
            measurand = voltage if index % 3 else None
            value = f"{'v' if measurand else 'e'}{index}"
            when = at(index // 2)  # two messages per minute: ties broken by arrival
            stored.append((when, index, value))
            await storage.record_meter_values(
                "pages", f"m{index}", _meter(when, [sample(value, measurand)])
            )
        newest = [value for _, _, value in sorted(stored, key=lambda s: (s[0], s[1]), reverse=True)]

        async def values(**filters: Any) -> list[str]:
            query = queries.MeterFilter(**filters)
            return [
                item["value"] for item in await storage.read(queries.meter_values, "pages", query)
            ]

        assert await values(limit=650) == newest[:650]
        assert await values(ascending=True) == newest[::-1]
        voltages = [value for value in newest if value.startswith("v")]
        assert await values(measurand="Voltage", limit=450) == voltages[:450]
        assert await values(measurand="Voltage", limit=450, ascending=True) == voltages[::-1][:450]
        assert await values(measurand="Current.Import") == []
    finally:
        await storage.close()


def _meter(when: datetime, values: list[t.SampledValue]) -> core.MeterValuesRequest:
    return core.MeterValuesRequest(
        service_id=1, meter_value=[t.MeterValue(timestamp=when, sampled_value=values)]
    )


@pytest.mark.parametrize("durability", [Durability.DISK, Durability.PROCESS])
async def test_group_commit_fails_a_bad_job_alone(tmp_path: Path, durability: Durability) -> None:
    # disk: each COMMIT runs on the commit thread; process: on the loop.
    storage = Storage(tmp_path / "g.sqlite", durability)
    storage.open()
    try:

        def insert(index: int) -> Callable[[sqlite3.Connection], int]:
            def job(conn: sqlite3.Connection) -> int:
                conn.execute(
                    "INSERT INTO commands (gateway_id, action, request, sent_at, outcome) "
                    "VALUES ('g', 'Reset', '{}', 'now', 'ok')"
                )
                return index

            return job

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        jobs = [storage.write(insert(index)) for index in range(40)]
        jobs.insert(20, storage.write(broken))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert isinstance(results.pop(20), sqlite3.OperationalError)
        assert results == list(range(40))

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM commands").fetchone()[0])

        assert await storage.read(count) == 40  # every good job committed, visible to reads
    finally:
        await storage.close()


# --- bounded batches: the writer never stops the event loop for long -----------------


@pytest.mark.parametrize("durability", [Durability.DISK, Durability.PROCESS])
async def test_a_backlog_is_written_in_bounded_batches(
    tmp_path: Path, durability: Durability
) -> None:
    """Thousands of frames and jobs queued at once are written over several batches.

    After a restart thousands of gateways log frames and store their BootNotifications
    at once; one batch holding them all stopped the event loop for 100-160 ms. A batch
    takes at most FRAMES_PER_BATCH frames and MAX_BATCH jobs, the loop runs in between,
    and ``sync`` still waits for every frame logged before it.
    """
    storage = Storage(tmp_path / "b.sqlite", durability)
    storage.open()
    try:
        frames = 2 * FRAMES_PER_BATCH + 500
        for index in range(frames):
            storage.log_frame("g", "in", index, 2, "Heartbeat", f"u{index}", b"[2]")
        order: list[str] = []

        def job(conn: sqlite3.Connection) -> None:
            order.append("job")

        jobs = [storage._submit(job) for _ in range(MAX_BATCH + 10)]  # queued now
        asyncio.get_running_loop().call_soon(order.append, "loop")  # after the first batch
        await storage.sync()
        with sqlite3.connect(storage.path) as other:  # not storage.read: it waits by itself
            logged = other.execute("SELECT count(*) FROM frames").fetchone()[0]
        assert logged == frames  # sync waited for every one
        await asyncio.gather(*jobs)
        # The loop ran between the first batch (MAX_BATCH jobs) and the rest.
        assert order.index("loop") == MAX_BATCH, order.index("loop")
        writer = storage._writer
        assert writer is not None and writer.batches >= 3
    finally:
        await storage.close()


async def test_writer_checkpoints_keep_the_wal_small_without_truncating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a steady stream of commits the WAL starts over instead of growing.

    The background checkpoints never caught up with a writer that commits all the
    time, so the WAL grew to its limit and a TRUNCATE checkpoint held a batch for
    about 70 ms every second under W1. The writer runs a passive checkpoint between
    two transactions itself (every CHECKPOINT_INTERVAL; here after every commit).
    """
    monkeypatch.setattr(writer_module, "CHECKPOINT_INTERVAL", 0.0)
    storage = Storage(tmp_path / "c.sqlite")  # WAL limit 64 MiB: never reached here
    storage.open()
    wal = tmp_path / "c.sqlite-wal"
    largest = 0
    try:
        frame = b"f" * (256 * 1024)
        for index in range(64):  # 16 MiB through the WAL
            storage.log_frame("gw", "in", 1_767_225_600_000, 2, "X", str(index), frame)
            await storage.sync()
            largest = max(largest, wal.stat().st_size)
        writer = storage._writer
        assert writer is not None
        assert writer.wal_truncations == 0 and writer.checkpoints >= 64
    finally:
        await storage.close()
    assert largest < 2 * 2**20, largest


async def test_sync_and_close_write_a_backlog_larger_than_a_batch(databases: Databases) -> None:
    """``sync`` and closing write every buffered frame, however many batches it takes."""
    path = databases.new()
    storage = create_storage(ServiceConfig(db=path))
    await storage.start()
    frames = FRAMES_PER_BATCH + 700
    for index in range(frames):
        storage.log_frame("g", "in", index, 2, "Heartbeat", f"u{index}", b"[2]")
    await storage.sync()
    assert storage.pending_frames == 0
    for index in range(frames, 2 * frames):
        storage.log_frame("g", "in", index, 2, "Heartbeat", f"u{index}", b"[2]")
    frames *= 2
    await storage.close()
    storage = create_storage(ServiceConfig(db=path))
    await storage.start()
    try:
        assert await storage.fetch("SELECT count(*) FROM frames") == [(frames,)]
    finally:
        await storage.close()


async def test_a_long_series_query_leaves_the_event_loop_free(databases: Databases) -> None:
    """A meter-series query over a long range (every sample unpacked and bucketed, which
    takes tenths of a second) must not stop the event loop that serves the gateways: the
    loop keeps running its timers while the query is in flight."""
    storage = create_storage(_config(databases.new()))
    await storage.start()
    power = t.Measurand.POWER_ACTIVE_IMPORT
    try:
        # 800 messages of 600 samples (10 meter values of 60): 480,000 samples to bucket.
        request = core.MeterValuesRequest(
            service_id=1,
            meter_value=[
                t.MeterValue(
                    timestamp=at(minute),
                    sampled_value=[sample(f"{minute}{index}", power) for index in range(60)],
                )
                for minute in range(10)
            ],
        )
        stores = [storage.record_meter_values("long", f"m{n}", request) for n in range(800)]
        assert sum(await asyncio.gather(*stores)) == 480_000
        series_filter = SeriesFilter(buckets=1000, measurand=power.value)
        gaps: list[float] = []
        loop = asyncio.get_running_loop()
        reading = storage.read_long(queries.meter_series, "long", series_filter)
        query = asyncio.ensure_future(reading)
        started = last = loop.time()
        while not query.done():
            await asyncio.sleep(0.002)
            now = loop.time()
            gaps.append(now - last)
            last = now
        duration = last - started
        assert query.result()["total"] == 480_000
        # Stopped for the whole query, the loop would show one gap as long as it. Free,
        # it still waits now and then for the interpreter (5 ms switch interval) or,
        # on a busy machine, for the scheduler: tens of ms, never most of the query.
        assert len(gaps) >= 5, (duration, gaps)
        assert max(gaps) < duration / 2, (duration, max(gaps))
    finally:
        await storage.close()
