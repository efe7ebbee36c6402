"""The service's parts on their own, and the :class:`Service` class run in-process."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from service_helpers import Api, at, gateway, sample

from databases import Databases
from ntxcp.errors import CallError, ErrorCode
from ntxcp.service import (
    AuthMode,
    ConfigError,
    Service,
    ServiceConfig,
    ServiceError,
    UnknownGatewayPolicy,
    build_config,
)
from ntxcp.service.backend import StorageBackend, create_storage
from ntxcp.service.config import is_loopback
from ntxcp.service.metrics import Counter, Histogram, ServiceMetrics
from ntxcp.service.migrations import LATEST, MIGRATIONS, MigrationError, current_version, migrate
from ntxcp.service.packing import ms_text
from ntxcp.service.passwords import PasswordVerifier, hash_password, verify_password
from ntxcp.service.storage import Storage, StorageError
from ntxcp.v10 import core
from ntxcp.v10 import types as t
from ntxcp.v10.types import encode_datetime


def test_config_sources_and_precedence(tmp_path: Path) -> None:
    file = tmp_path / "cc.toml"
    file.write_text(
        'api-port = 9000\napi_token = "file"\nauth = "basic"\n'
        "[control-center]\nheartbeat-interval = 30\ncall_timeout = 2.5\n"
    )
    config = build_config({"api_port": 9100, "port": None}, file)
    assert config.api_port == 9100  # the command line wins
    assert config.port == 8887  # not given anywhere: the default
    assert config.api_token == "file" and config.auth is AuthMode.BASIC
    assert config.heartbeat_interval == 30 and config.call_timeout == 2.5
    assert build_config().unknown_gateways is UnknownGatewayPolicy.ACCEPT
    with pytest.raises(ConfigError, match="non-loopback") as refused:
        build_config({"api_host": "0.0.0.0"})
    assert refused.value.exit_code == 2
    assert build_config({"api_host": "0.0.0.0", "api_token": "t"}).api_host == "0.0.0.0"
    with pytest.raises(ConfigError, match="need --certfile"):
        build_config({"keyfile": str(file)})
    with pytest.raises(ConfigError, match="--frame-log-retention"):
        build_config({"frame_log_retention": -1})
    with pytest.raises(ConfigError, match="one of accept, pending, reject"):
        build_config({"unknown_gateways": "sometimes"})


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com", ""):
        assert not is_loopback(host), host


def test_password_hashes_and_the_verification_cache() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert hash_password("correct horse") != stored  # a fresh salt every time
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")
    verifier = PasswordVerifier()
    for _ in range(3):
        assert verifier.verify("gw", "correct horse", stored)
        assert not verifier.verify("gw", "wrong", stored)
    assert verifier.kdf_runs == 2  # once per (gateway, password), whatever the count
    assert not verifier.verify("gw", "correct horse", None)
    assert verifier.verify("other", "correct horse", stored)
    assert verifier.kdf_runs == 3
    with pytest.raises(ValueError):
        hash_password("")


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_stored_times_as_text(ms: int) -> None:
    # The arithmetic formatting of reads says what encode_datetime says (spec §3).
    expected = encode_datetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms))
    assert ms_text(ms) == expected


def test_stored_times_as_text_out_of_range() -> None:
    assert ms_text(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    assert ms_text(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
    with pytest.raises(OverflowError):
        ms_text(253_402_300_800_000)


def test_metrics_exposition() -> None:
    counter = Counter("c_total", "A counter.", ("code",))
    counter.inc(('a"b\\',))
    counter.inc(("x",), 2)
    assert 'c_total{code="a\\"b\\\\"} 1' in counter.render()
    assert 'c_total{code="x"} 2' in counter.render()
    histogram = Histogram("h_seconds", "Durations.", ("action",), buckets=(0.1, 1))
    histogram.observe(0.05, ("Reset",))
    histogram.observe(0.5, ("Reset",))
    lines = histogram.render()
    assert 'h_seconds_bucket{action="Reset",le="0.1"} 1' in lines
    assert 'h_seconds_bucket{action="Reset",le="1"} 2' in lines
    assert 'h_seconds_bucket{action="Reset",le="+Inf"} 2' in lines
    assert 'h_seconds_count{action="Reset"} 2' in lines
    assert 'h_seconds_sum{action="Reset"} 0.55' in lines
    text = ServiceMetrics(lambda: 3).render()
    assert "ntxcp_connected_gateways 3\n" in text and text.endswith("\n")


def test_migrations(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    assert migrate(conn) == [version for version, _ in MIGRATIONS]
    assert migrate(conn) == []
    assert current_version(conn) == LATEST
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST + 1,))
    with pytest.raises(MigrationError, match="newer"):
        migrate(conn)
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        Storage(tmp_path / "m.sqlite").open()


async def _opened(db: str) -> StorageBackend:
    storage = create_storage(ServiceConfig(db=db))
    await storage.start()
    return storage


async def test_storage_claims_unique_ids(databases: Databases) -> None:
    storage = await _opened(databases.new())
    try:
        request = core.MeterValuesRequest(
            service_id=1,
            meter_value=[t.MeterValue(timestamp=at(0), sampled_value=[sample("1"), sample("2")])],
        )
        assert await storage.record_meter_values("gw", "id-1", request) == 2
        assert await storage.record_meter_values("gw", "id-1", request) is None
        assert await storage.record_meter_values("other-gw", "id-1", request) == 2
        assert await storage.record_meter_values("gw", None, request) == 2  # no id: no dedupe
        assert storage.duplicates == 1 and storage.samples_stored == 6
        # Writes of many callers share one transaction (group commit).
        results = await asyncio.gather(
            *(storage.record_meter_values("gw", f"many-{i}", request) for i in range(50))
        )
        assert results == [2] * 50
        storage.log_frame("gw", "in", 1_767_225_600_000, 2, "Heartbeat", "h", b"[]")
        assert storage.pending_frames == 1
        await storage.sync()
        assert storage.pending_frames == 0

        rows = await storage.fetch(
            "SELECT (SELECT count(*) FROM meter_messages), (SELECT count(*) FROM frames)"
        )
        assert rows == [(53, 1)]  # one row per message
    finally:
        await storage.close()
    assert not storage.is_open


async def test_frame_log_retention(databases: Databases) -> None:
    storage = await _opened(databases.new())
    try:
        old, new = 1_577_836_800_000, 32_472_144_000_000  # 2020-01-01, 2999-01-01
        for index in range(30):
            storage.log_frame("gw", "in", old if index < 12 else new, 2, "Heartbeat", "x", b"[]")
        assert await storage.prune(0) == 0  # 0 keeps everything
        assert await storage.prune(30) == 12
        assert await storage.prune(30) == 0

        assert await storage.fetch("SELECT time_ms FROM frames") == [(new,)] * 18
    finally:
        await storage.close()


async def test_service_in_process_with_pending_policy(tmp_path: Path) -> None:
    config = ServiceConfig(
        port=0,
        api_port=0,
        db=str(tmp_path / "p.sqlite"),
        unknown_gateways=UnknownGatewayPolicy.PENDING,
    )
    async with Service(config) as service, aiohttp.ClientSession() as http:
        assert service.ws_url.startswith("ws://127.0.0.1:") and service.ws_url.endswith("/ntxcp")
        assert service.api_url.startswith("http://127.0.0.1:")
        api = Api(http, service.api_url, None)
        async with gateway(service.ws_url, "pending-1") as gw:
            conf = await gw.boot_notification("DX-100")
            assert conf.status is core.RegistrationStatus.PENDING and conf.interval == 60
            with pytest.raises(CallError) as refused:  # spec §4.1: nothing else until Accepted
                await gw.status_notification("1", "NoError", "Available")
            assert refused.value.code is ErrorCode.SECURITY_ERROR
            status, answer = await api.call("pending-1", "GetConfiguration", {})
            assert status == 200 and answer["configurationKey"][0]["key"] == "HeartbeatInterval"
            await api.post("/api/gateways", {"id": "pending-1"})
            assert (await gw.boot_notification("DX-100")).status is core.RegistrationStatus.ACCEPTED
            # Committed before the CALLRESULT: another connection sees the rows at once.
            await gw.meter_values(4, [t.MeterValue(timestamp=at(0), sampled_value=[sample("9")])])
            with sqlite3.connect(config.db) as reader:
                count = reader.execute(
                    "SELECT count(*) FROM meter_messages WHERE gateway_id = 'pending-1'"
                ).fetchone()
            assert count == (1,)
    # Stopped: the database is closed and can be opened again.
    again = Storage(config.db)
    again.open()
    assert "pending-1" in again.gateways and again.gateways["pending-1"].registered
    await again.close()


async def test_service_start_failures(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ServiceError, match="database"):
        await Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "dir.sqlite"))).start()
    bad_cert = tmp_path / "bad.pem"
    bad_cert.write_text("not a certificate")
    with pytest.raises(ServiceError, match="TLS") as refused:
        Service(
            ServiceConfig(port=0, api_port=0, db=str(tmp_path / "x.sqlite"), certfile=str(bad_cert))
        )
    assert refused.value.exit_code == 2
