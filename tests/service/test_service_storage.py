"""The service's storage guarantees: durability, bounded disk use, the frame log's limits."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from service_helpers import Api, ServiceProcess, at, sample, until

import ntxcp
from ntxcp.service import ConfigError, Durability, build_config
from ntxcp.service.storage import Storage
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
        assert await storage.read(_synchronous) == expected
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


async def test_nothing_acknowledged_is_lost_across_sigkill(tmp_path: Path) -> None:
    """The service is SIGKILLed while a gateway's outbox drains into it, then restarted on
    the same database: every message is stored exactly once (spec §6.2 store and forward:
    what was acknowledged is committed; what was not is re-sent and stored)."""
    port = str(_free_port())
    count, per_message = 3000, 2
    gw = ntxcp.Gateway(
        "kill-1",
        backoff=ntxcp.Backoff(initial=0.05, maximum=0.2),
        boot=core.BootNotificationRequest(
            dingx_gateway_model="DX-100", dingx_gateway_vendor="ntxcp-tests"
        ),
        heartbeat=False,
    )
    first = ServiceProcess(tmp_path, "--port", port).start()
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
        second = ServiceProcess(tmp_path, "--port", port).start()
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
