"""The service as a program: security profiles, boot policy, restart, signals, bad starts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import (
    TOKEN,
    Api,
    ServiceProcess,
    at,
    gateway,
    raw_connect,
    run_cli,
    sample,
    until,
)

import ntxcp
from ntxcp.errors import CallError, ErrorCode, HandshakeRefusedError
from ntxcp.v10 import core
from ntxcp.v10 import types as t

_METER_VALUES = {
    "serviceId": 1,
    "meterValue": [{"timestamp": "2026-11-23T18:00:00Z", "sampledValue": [{"value": "1"}]}],
}


@pytest.fixture
def started() -> Any:
    """Start service processes for one test; every one is killed at the end."""
    processes: list[ServiceProcess] = []

    def start(directory: Path, *args: str, db: Path | None = None) -> ServiceProcess:
        process = ServiceProcess(directory, *args, db=db)
        processes.append(process)
        return process.start()

    yield start
    for process in processes:
        process.kill()


async def test_basic_auth(tmp_path: Path, started: Any, http: aiohttp.ClientSession) -> None:
    service = started(tmp_path, "--auth", "basic")
    api = Api(http, service.api_url, None)
    status, _ = await api.post("/api/gateways", {"id": "auth-1", "password": "right horse"})
    assert status == 201
    async with gateway(service.ws_url, "auth-1", password="right horse") as gw:
        assert (await gw.boot_notification("DX-100")).status is core.RegistrationStatus.ACCEPTED
        _, item = await api.get("/api/gateways/auth-1")
        assert item["connected"] is True
    for gateway_id, password in (("auth-1", "wrong"), ("auth-1", None), ("stranger", "x")):
        with pytest.raises(HandshakeRefusedError) as refused:
            async with gateway(service.ws_url, gateway_id, password=password):
                pass
        assert refused.value.status == 401
    # Verified once, then answered from the cache: the same password connects again.
    async with gateway(service.ws_url, "auth-1", password="right horse") as gw:
        await gw.heartbeat()


async def test_tls_and_basic_auth(
    tmp_path: Path, started: Any, http: aiohttp.ClientSession, pki: Any
) -> None:
    service = started(
        tmp_path,
        "--certfile",
        str(pki.server_cert),
        "--keyfile",
        str(pki.server_key),
        "--auth",
        "basic",
    )
    assert service.ws_url.startswith("wss://127.0.0.1:")
    api = Api(http, service.api_url, None)
    await api.post("/api/gateways", {"id": "tls-1", "password": "pw"})
    context = ntxcp.client_tls_context(str(pki.ca_cert))
    async with gateway(service.ws_url, "tls-1", password="pw", ssl=context) as gw:
        await gw.boot_notification("DX-100")
        _, item = await api.get("/api/gateways/tls-1")
        assert item["tls"] is True and item["connected"] is True
    with pytest.raises(aiohttp.ClientError):  # plain ws:// is not served on a TLS port
        await raw_connect(http, service.ws_url.replace("wss://", "ws://"), "tls-1")


async def test_mutual_tls(tmp_path: Path, started: Any, pki: Any) -> None:
    service = started(
        tmp_path,
        "--certfile",
        str(pki.server_cert),
        "--keyfile",
        str(pki.server_key),
        "--client-ca",
        str(pki.ca_cert),
    )
    cert, key = pki.client_cert("mtls-1")
    context = ntxcp.client_tls_context(str(pki.ca_cert), certfile=str(cert), keyfile=str(key))
    async with gateway(service.ws_url, "mtls-1", ssl=context) as gw:
        await gw.boot_notification("DX-100")
    with pytest.raises(HandshakeRefusedError) as refused:  # CN is not the gateway id
        async with gateway(service.ws_url, "someone-else", ssl=context):
            pass
    assert refused.value.status == 401


async def test_unknown_gateways_reject_from_config_file(
    tmp_path: Path, started: Any, http: aiohttp.ClientSession
) -> None:
    config = tmp_path / "cc.toml"
    config.write_text(
        'unknown-gateways = "reject"\napi_token = "from-file"\nheartbeat-interval = 120\n'
    )
    service = started(tmp_path, "--config", str(config), "--api-token", TOKEN)
    api = Api(http, service.api_url, "from-file")
    status, _ = await api.get("/api/gateways")
    assert status == 401  # the command line wins over the file
    api.token = TOKEN
    async with gateway(service.ws_url, "unknown-1") as gw:
        conf = await gw.boot_notification("DX-100")
        assert conf.status is core.RegistrationStatus.REJECTED and conf.interval == 60
        with pytest.raises(CallError) as refused:
            await gw.heartbeat()
        assert refused.value.code is ErrorCode.SECURITY_ERROR
        # Pending and Rejected gateways may still be sent C→G requests (spec §4.1).
        status, _ = await api.call("unknown-1", "ClearCache", {})
        assert status == 200
    # A refused id is not stored as a gateway: counted, and listed among the refused.
    status, _ = await api.get("/api/gateways/unknown-1")
    assert status == 404
    status, refused = await api.get("/api/refused-gateways")
    assert status == 200 and refused["total"] == 1 and refused["count"] == 1
    assert refused["items"][0]["id"] == "unknown-1"
    assert refused["items"][0]["attempts"] == 1
    status, metrics = await api.request("GET", "/metrics", token=None)
    assert "ntxcp_refused_gateways_total 1" in metrics
    status, _ = await api.post("/api/gateways", {"id": "unknown-1"})
    assert status == 201
    async with gateway(service.ws_url, "unknown-1") as gw:
        conf = await gw.boot_notification("DX-100")
        assert conf.status is core.RegistrationStatus.ACCEPTED and conf.interval == 120
        await gw.heartbeat()


async def test_sigterm_closes_with_1001_and_restart_keeps_data(
    tmp_path: Path, started: Any, http: aiohttp.ClientSession
) -> None:
    db = tmp_path / "kept.sqlite"
    service = started(tmp_path, "--api-token", TOKEN, db=db)
    api = Api(http, service.api_url, TOKEN)
    await api.post("/api/gateways", {"id": "keep-1", "password": "pw"})
    async with gateway(service.ws_url, "keep-1") as gw:
        await gw.boot_notification("DX-100", firmware_version="1.2.3")
        await gw.status_notification("1", "NoError", "Charging", timestamp=at(0))
        await gw.meter_values(
            1, [t.MeterValue(timestamp=at(0), sampled_value=[sample("1"), sample("2")])]
        )
        await gw.firmware_status_notification("Installed")
        await api.call("keep-1", "ClearCache", {})
    before = {
        path: (await api.get(path))[1]
        for path in (
            "/api/gateways/keep-1/meter-values",
            "/api/gateways/keep-1/status",
            "/api/gateways/keep-1/firmware-status",
            "/api/gateways/keep-1/messages",
            "/api/commands",
        )
    }
    ws = await raw_connect(http, service.ws_url, "watcher")
    await ws.send_str(json.dumps([2, "kept-id", "MeterValues", _METER_VALUES]))
    assert json.loads(await ws.receive_str(timeout=5)) == [3, "kept-id", {}]
    started_at = time.monotonic()
    service.signal(signal.SIGTERM)
    message = await ws.receive(timeout=10)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001  # spec §6.1, §6.3
    assert service.wait(10) == 0
    assert time.monotonic() - started_at < 10
    await ws.close()

    again = started(tmp_path, "--api-token", TOKEN, db=db)
    api = Api(http, again.api_url, TOKEN)
    _, item = await api.get("/api/gateways/keep-1")
    assert item["registered"] and item["hasPassword"] and item["connected"] is False
    assert item["bootInfo"] == {"dingxGatewayModel": "DX-100", "firmwareVersion": "1.2.3"}
    for path, old in before.items():
        _, new = await api.get(path)
        assert new == old, path
    assert before["/api/gateways/keep-1/meter-values"]["count"] == 2
    # A message re-sent after the restart is still recognised (spec §6.2).
    ws = await raw_connect(http, again.ws_url, "watcher")
    await ws.send_str(json.dumps([2, "kept-id", "MeterValues", _METER_VALUES]))
    assert json.loads(await ws.receive_str(timeout=5)) == [3, "kept-id", {}]
    await ws.close()
    _, samples = await api.get("/api/gateways/watcher/meter-values")
    assert samples["count"] == 1
    assert again.stop() == 0


async def test_sigint_stops_too_and_json_logs(tmp_path: Path, started: Any) -> None:
    service = started(tmp_path, "--log-format", "json", "--log-level", "debug")
    async with gateway(service.ws_url, "int-1") as gw:
        await gw.boot_notification("DX-100")
        service.signal(signal.SIGINT)
        assert await asyncio.to_thread(service.wait, 10) == 0
    records = [json.loads(line) for line in service.stderr().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "stopped" for r in records)
    assert any(r.get("gatewayId") == "int-1" for r in records)


async def test_demo_gateways(tmp_path: Path, started: Any, http: aiohttp.ClientSession) -> None:
    service = started(tmp_path, "--demo", "2", "--auth", "basic")
    api = Api(http, service.api_url, None)

    async def booted() -> bool:
        _, listing = await api.get("/api/gateways")
        demo = [g for g in listing["items"] if g["id"].startswith("demo-")]
        return len(demo) == 2 and all(g["connected"] and g["bootInfo"] for g in demo)

    await until(booted, timeout=10)
    status, answer = await api.call("demo-1", "GetConfiguration", {})
    assert status == 200 and answer["configurationKey"]
    assert service.stop() == 0


def test_non_loopback_api_without_token_is_refused(tmp_path: Path) -> None:
    result = run_cli(
        [
            "control-center",
            "--db",
            str(tmp_path / "x.sqlite"),
            "--api-host",
            "0.0.0.0",
            "--port",
            "0",
            "--api-port",
            "0",
        ]
    )
    assert result.returncode == 2
    assert "non-loopback" in result.stderr and "--api-token" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "x.sqlite").exists()


def test_bad_flags_and_config_files(tmp_path: Path) -> None:
    db = str(tmp_path / "x.sqlite")
    cases: list[tuple[list[str], str]] = [
        (["--port", "http"], "invalid int value"),
        (["--unknown-gateways", "maybe"], "invalid choice"),
        (["--config", str(tmp_path / "missing.toml")], "cannot read config file"),
        (["--port", "70000"], "--port must be 0..65535"),
        (["--certfile", str(tmp_path / "none.pem")], "no such file"),
        (["--call-timeout", "0"], "--call-timeout"),
    ]
    broken = tmp_path / "broken.toml"
    broken.write_text("port = [")
    cases.append((["--config", str(broken)], "not valid TOML"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'red'\n")
    cases.append((["--config", str(unknown)], "unknown key 'colour'"))
    typed = tmp_path / "typed.toml"
    typed.write_text("port = 'high'\n")
    cases.append((["--config", str(typed)], "must be an integer"))
    for args, needle in cases:
        result = run_cli(["control-center", "--db", db, *args])
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def test_port_in_use_and_bad_database(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag in ("--port", "--api-port"):
            other = "--api-port" if flag == "--port" else "--port"
            result = run_cli(
                ["control-center", "--db", str(tmp_path / "x.sqlite"), flag, str(port), other, "0"]
            )
            assert result.returncode == 1, result.stderr
            assert "cannot listen" in result.stderr and str(port) in result.stderr
            assert result.stdout == ""
    not_a_db = tmp_path / "text.sqlite"
    not_a_db.write_text("this is not a database" * 100)
    result = run_cli(["control-center", "--db", str(not_a_db), "--port", "0", "--api-port", "0"])
    assert result.returncode == 1 and "database" in result.stderr


def test_help_lists_the_subcommands() -> None:
    result = run_cli(["--help"])
    assert result.returncode == 0
    for command in (
        "control-center",
        "gateway",
        "gateways",
        "call",
        "meter-values",
        "status",
        "messages",
    ):
        assert command in result.stdout, command
    result = run_cli(["control-center", "--help"])
    for flag in (
        "--host",
        "--port",
        "--path",
        "--db",
        "--api-host",
        "--api-port",
        "--api-token",
        "--unknown-gateways",
        "--auth",
        "--certfile",
        "--keyfile",
        "--client-ca",
        "--heartbeat-interval",
        "--call-timeout",
        "--log-level",
        "--log-format",
        "--demo",
        "--config",
        "--frame-log-retention",
    ):
        assert flag in result.stdout, flag
    assert run_cli([]).returncode == 2


def test_keep_alive_settings_are_checked(tmp_path: Path) -> None:
    for flag, value in (("--ping-interval", "-1"), ("--ping-timeout", "0")):
        done = run_cli(["control-center", "--db", str(tmp_path / "x.sqlite"), flag, value])
        assert done.returncode == 2, done.stderr
        assert flag in done.stderr


async def _metric(http: aiohttp.ClientSession, service: ServiceProcess, name: str) -> float:
    async with http.get(service.api_url + "metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


async def test_admission_pacing_is_settable_and_shown_in_the_metrics(
    tmp_path: Path, started: Any, http: aiohttp.ClientSession
) -> None:
    # One connection every 5 s: the first takes the bucket's token, the second waits
    # in the listen backlog until the next one.
    service = started(tmp_path, "--max-handshakes", "1", "--accept-rate", "0.2")

    async def metric(name: str) -> float:
        return await _metric(http, service, "ntxcp_" + name)

    first = ntxcp.Gateway("paced-1", reconnect=False)
    second = ntxcp.Gateway("paced-2", reconnect=False)
    try:
        await first.start(service.ws_url)
        waiting = asyncio.ensure_future(second.start(service.ws_url))
        await until(lambda: _equals(metric("handshakes_waiting"), 1))
        assert not waiting.done()
        assert await metric("accepted_connections_total") == 1
        await asyncio.wait_for(waiting, 15)  # admitted, not refused
        await until(lambda: _equals(metric("handshakes_total"), 2))
        assert await metric("accepted_connections_total") == 2
        assert await metric("handshakes_in_progress") == 0
        assert await metric("accept_pauses_total") >= 1
    finally:
        await first.stop()
        await second.stop()


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)


def test_admission_pacing_settings_are_checked(tmp_path: Path) -> None:
    for flag, value in (("--max-handshakes", "-1"), ("--accept-rate", "-5")):
        done = run_cli(["control-center", "--db", str(tmp_path / "x.sqlite"), flag, value])
        assert done.returncode == 2, done.stderr
        assert flag in done.stderr
