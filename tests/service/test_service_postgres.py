"""What only the PostgreSQL backend has to show: the server away, its schema, its writer.

The behaviour both backends share (data, API, duplicates, SIGKILL, frame log) is
tested once, parametrised over both (the ``databases`` fixture and the service tests'
``service`` fixture); this module covers what exists only with a database server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from service_helpers import Api, ServiceProcess, at, run_cli, sample, until

import ntxcp
from ntxcp.service import Durability, ServiceConfig, queries
from ntxcp.service.backend import DatabaseUnavailableError, create_storage
from ntxcp.service.packing import pack
from ntxcp.service.pg_schema import LATEST, MIGRATIONS
from ntxcp.service.pg_storage import PostgresStorage, redacted
from ntxcp.service.storage import StorageError
from ntxcp.v10 import core
from ntxcp.v10 import types as t
from pg_server import PostgresServer

Job = Callable[[asyncpg.Connection], Coroutine[Any, Any, Any]]


async def _storage(url: str, durability: Durability = Durability.DISK) -> PostgresStorage:
    storage = create_storage(ServiceConfig(db=url, durability=durability))
    assert isinstance(storage, PostgresStorage)
    await storage.start()
    return storage


async def test_a_database_newer_than_the_program_is_refused(postgres: PostgresServer) -> None:
    url = postgres.create_database("ntxcp_newer")
    storage = await _storage(url)
    await storage.write(
        lambda conn: conn.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST + 1)
    )
    await storage.close()
    with pytest.raises(StorageError, match="newer than this service"):
        await _storage(url)
    result = await asyncio.to_thread(
        run_cli, ["control-center", "--db", url, "--port", "0", "--api-port", "0"]
    )
    assert result.returncode != 0
    assert f"schema version {LATEST + 1} is newer" in result.stderr, result.stderr


async def test_migrations_run_once_and_are_recorded(postgres: PostgresServer) -> None:
    url = postgres.create_database("ntxcp_migrate")
    for _ in range(2):  # the second start finds the schema up to date
        storage = await _storage(url)
        recorded = await storage.fetch("SELECT version FROM schema_version ORDER BY version")
        assert recorded == [(version,) for version, _ in MIGRATIONS]
        await storage.close()


async def test_migration_from_version_3_keeps_the_meter_data(postgres: PostgresServer) -> None:
    # A database left at schema 3 with meter messages: the service brings it to the
    # latest version and reads the same samples through the new index.
    url = postgres.create_database("ntxcp_v3")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for statement in dict(MIGRATIONS)[3]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_version (version) VALUES (3)")
        for minute, measurand in ((1, None), (2, t.Measurand.VOLTAGE), (3, None)):
            value = t.MeterValue(
                timestamp=at(minute), sampled_value=[sample(str(minute), measurand)]
            )
            packed = pack([value])
            await conn.execute(
                "INSERT INTO meter_messages (gateway_id, service_id, first_ms, last_ms, "
                "measurands, received_ms, unique_id, samples) VALUES ('old-1', 1, $1, $1, $2, "
                "$1, $3, $4)",
                packed.last_ms,
                packed.measurands,
                f"u{minute}",
                packed.samples,
            )
    finally:
        await conn.close()
    storage = await _storage(url)
    try:
        recorded = await storage.fetch("SELECT version FROM schema_version ORDER BY version")
        assert recorded == [(version,) for version, _ in MIGRATIONS]
        [(index,)] = await storage.fetch(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'meter_messages_time'"
        )
        assert "(gateway_id, last_ms, id) INCLUDE (first_ms, service_id, measurands)" in index
        found = await storage.read(queries.meter_values, "old-1", queries.MeterFilter())
        assert [item["value"] for item in found] == ["3", "2", "1"]
        voltage = queries.MeterFilter(measurand="Voltage", ascending=True)
        found = await storage.read(queries.meter_values, "old-1", voltage)
        assert [item["value"] for item in found] == ["2"]
        request = core.MeterValuesRequest(
            service_id=1, meter_value=[t.MeterValue(timestamp=at(3), sampled_value=[sample("3")])]
        )
        assert await storage.record_meter_values("old-1", "u3", request) is None  # still known
    finally:
        await storage.close()


async def test_an_unreachable_server_is_a_clear_start_up_error(tmp_path: Path) -> None:
    url = "postgresql://ntxcp:secret@127.0.0.1:9/ntxcp"  # port 9 (discard): nothing listens
    with pytest.raises(StorageError, match="cannot connect") as refused:
        await _storage(url)
    assert "secret" not in str(refused.value)  # the password is never shown
    assert redacted(url) == "postgresql://ntxcp:***@127.0.0.1:9/ntxcp"


@pytest.mark.parametrize(("durability", "expected"), [("disk", "on"), ("process", "off")])
async def test_durability_sets_synchronous_commit(
    postgres: PostgresServer, durability: str, expected: str
) -> None:
    storage = await _storage(
        postgres.create_database(f"ntxcp_{durability}"), Durability(durability)
    )
    try:
        assert (
            await storage.write(lambda conn: conn.fetchval("SHOW synchronous_commit")) == expected
        )
    finally:
        await storage.close()


async def test_group_commit_shares_transactions_and_fails_a_bad_job_alone(
    postgres: PostgresServer,
) -> None:
    storage = await _storage(postgres.create_database("ntxcp_group"))
    try:
        request = core.MeterValuesRequest(
            service_id=1, meter_value=[t.MeterValue(timestamp=at(0), sampled_value=[sample("1")])]
        )
        writer = storage.writer
        assert writer is not None
        before = writer.batches
        stored = await asyncio.gather(
            *(storage.record_meter_values(f"gw-{i % 10}", f"m-{i}", request) for i in range(200))
        )
        assert stored == [1] * 200
        assert writer.batches - before < 20  # 200 messages of 10 gateways, few commits

        def insert(index: int) -> Job:
            async def job(conn: asyncpg.Connection) -> int:
                await conn.execute(
                    "INSERT INTO commands (id, gateway_id, action, request, sent_at, outcome) "
                    "VALUES ($1, 'g', 'Reset', '{}', 'now', 'ok')",
                    index,
                )
                return index

            return job

        async def broken(conn: asyncpg.Connection) -> None:
            await conn.execute("INSERT INTO no_such_table VALUES (1)")

        jobs = [storage.write(insert(index)) for index in range(40)]
        jobs.insert(20, storage.write(broken))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert isinstance(results.pop(20), asyncpg.UndefinedTableError)
        assert results == list(range(40))
        assert await storage.fetch("SELECT count(*) FROM commands") == [(40,)]
    finally:
        await storage.close()


async def test_a_restart_during_ingest_loses_nothing_and_stores_no_duplicate(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """PostgreSQL stops while a gateway's outbox drains into the service, and comes back:
    meanwhile /healthz and the API answer 503 with the reason and no CALLRESULT is sent
    for what is not committed; afterwards every message is stored exactly once."""
    count, per_message = 1500, 2
    gw = ntxcp.Gateway(
        "restart-1",
        backoff=ntxcp.Backoff(initial=0.05, maximum=0.2),
        boot=core.BootNotificationRequest(
            dingx_gateway_model="DX-100", dingx_gateway_vendor="ntxcp-tests"
        ),
        heartbeat=False,
    )
    service = ServiceProcess(tmp_path, db=postgres.create_database("ntxcp_restart")).start()
    stopped = False
    try:
        await gw.start(service.ws_url, retry=True)
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
            api = Api(http, service.api_url, None)

            async def some_stored() -> bool:
                _, items = await api.get("/api/gateways/restart-1/meter-values", limit="1")
                return bool(items and items["items"])

            await until(some_stored, timeout=20)
            await asyncio.to_thread(postgres.stop, "fast")
            stopped = True
            assert len(gw.store) > 0, "the outbox drained before the stop: nothing was tested"

            async def unreachable() -> bool:
                status, _ = await api.get("/healthz")
                return status == 503

            await until(unreachable, timeout=20)
            _, health = await api.get("/healthz")
            assert health["status"] == "unavailable"
            assert health["database"]["backend"] == "postgresql"
            assert health["database"]["reachable"] is False and health["database"]["error"]
            status, body = await api.get("/api/gateways")
            assert status == 503 and body["error"].startswith("database unreachable"), body
            waiting = len(gw.store)
            await asyncio.to_thread(postgres.start)
            stopped = False
            assert waiting > 0  # the outbox kept what was not acknowledged
            await gw.flush(timeout=60)

            async def healthy() -> bool:
                status, _ = await api.get("/healthz")
                return status == 200

            await until(healthy, timeout=20)
            status, body = await api.get(
                "/api/gateways/restart-1/meter-values", limit=str(count * per_message + 10)
            )
        assert status == 200
        values = sorted(item["value"] for item in body["items"])
        expected = sorted(f"{seq}.{index}" for seq in range(count) for index in range(per_message))
        assert values == expected  # each sample once: nothing lost, nothing doubled
        assert service.stop() == 0, service.stderr()
        assert "connection to PostgreSQL restored" in service.stderr()
    finally:
        if stopped:
            await asyncio.to_thread(postgres.start)
        await gw.stop()
        service.kill()


async def test_reads_fail_with_the_reason_while_the_server_is_away(
    postgres: PostgresServer,
) -> None:
    storage = await _storage(postgres.create_database("ntxcp_away"))
    try:
        await storage.register_gateway("away-1", None)
        await asyncio.to_thread(postgres.stop, "immediate")
        try:
            with pytest.raises(DatabaseUnavailableError):
                await storage.read(queries.gateways)
            assert storage.unreachable is not None
            with pytest.raises(DatabaseUnavailableError):  # fails at once, not queued
                await storage.register_gateway("away-2", None)
            assert "away-2" not in storage.gateways  # not stored: not in the mirror either
        finally:
            await asyncio.to_thread(postgres.start)

        async def reconnected() -> bool:
            storage.check_disk()
            return storage.unreachable is None

        await until(reconnected, timeout=20)
        assert [item["id"] for item in await storage.read(queries.gateways)] == ["away-1"]
    finally:
        await storage.close()
