"""The ``ntxcp`` command as an operator types it: real subprocesses against a real service.

Usage errors show the sub-command's own usage, near-miss actions get a suggestion,
payload errors name the path once with the allowed values, ``call --timeout`` reaches
the service, and TLS files are explained.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import ServiceProcess, raw_connect

from ntxcp.v10 import ACTIONS, Direction
from service_process import run_cli
from waiting import wait_until

CLI_BOUND = 20.0  # s: every command here ends long before (a hung one fails the test)


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service with one simulated gateway and a long call timeout (60 s)."""
    process = ServiceProcess(
        tmp_path_factory.mktemp("cli"), "--demo", "1", "--call-timeout", "60"
    ).start()
    yield process
    try:
        assert process.stop() == 0, process.stderr()
    finally:
        process.kill()


def test_a_bad_flag_shows_the_sub_commands_usage() -> None:
    result = run_cli(["control-center", "--prot", "48000"])
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ntxcp control-center "), result.stderr
    assert result.stderr.rstrip().endswith(
        "ntxcp control-center: error: unrecognized arguments: --prot 48000"
    )
    result = run_cli(["gateways", "list", "--bogus"])
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ntxcp gateways list "), result.stderr
    assert "ntxcp gateways list: error: unrecognized arguments: --bogus" in result.stderr


def test_unknown_actions_get_a_suggestion_and_only_callable_actions() -> None:
    callable_actions = sorted(
        name
        for name, spec in ACTIONS.items()
        if spec.direction is not Direction.GATEWAY_TO_CONTROL_CENTER
    )
    for typed, suggestion in [("reset", "Reset"), ("ClearCash", "ClearCache"), ("Zzz", None)]:
        result = run_cli(["call", "GW-7", typed])
        assert result.returncode == 2, result.stderr
        hint = f"(did you mean {suggestion!r}?)"
        assert (hint in result.stderr) is (suggestion is not None), result.stderr
        listed = result.stderr.rsplit("can be sent are: ", 1)[1].strip()
        assert listed.split(", ") == callable_actions
    result = run_cli(["call", "GW-7", "Heartbeat"])
    assert result.returncode == 2 and "sent by gateways" in result.stderr
    assert "BootNotification" not in result.stderr
    result = run_cli(["call", "GW-7", "Reset", "tpye=Soft"])
    assert result.returncode == 2 and "(did you mean 'type'?)" in result.stderr


def test_enum_errors_list_the_values_and_the_path_once(slow_service: ServiceProcess) -> None:
    result = run_cli(["call", "--api", slow_service.api_url, "demo-1", "Reset", "type=Sotf"])
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: HTTP 422 PropertyConstraintViolation: type: must be one of Hard, Soft, not 'Sotf'"
    )


async def test_call_timeout_reaches_the_service(slow_service: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as session:
        silent = await raw_connect(session, slow_service.ws_url, "SILENT-1")  # never answers
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ntxcp",
                "call",
                "--api",
                slow_service.api_url,
                "--timeout",
                "1",
                "SILENT-1",
                "ClearCache",
                stdin=subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            # Without --timeout the service would wait its 60 s: far past this bound.
            _, err = await asyncio.wait_for(process.communicate(), CLI_BOUND)
        finally:
            await silent.close()
    assert process.returncode == 1, err
    assert err.decode().startswith("error: HTTP 504"), err
    result = run_cli(["call", "GW-7", "ClearCache", "--timeout", "0.5"])
    assert result.returncode == 2 and "expected seconds from 1 to 600" in result.stderr


def test_a_certificate_without_its_key_is_explained(tmp_path: Path, pki: Any) -> None:
    cert = pki.server_cert  # its key is in another file, not given
    expected = f"{cert} holds a certificate but no private key: give the key file too (--keyfile)"
    db = str(tmp_path / "cc.sqlite")
    result = run_cli(
        ["control-center", "--db", db, "--port", "0", "--api-port", "0", "--certfile", str(cert)]
    )
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "PEM lib" not in result.stderr
    result = run_cli(
        ["gateway", "--url", "wss://127.0.0.1:1/ntxcp", "--id", "A", "--certfile", str(cert)]
    )
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    # With the key, the same certificate loads (the service starts and stops).
    service = ServiceProcess(
        tmp_path, "--certfile", str(cert), "--keyfile", str(pki.server_key)
    ).start()
    try:
        assert service.ws_url.startswith("wss://")
        assert service.stop() == 0, service.stderr()
    finally:
        service.kill()


def _gateway_process(service: ServiceProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ntxcp", "gateway", "--url", service.ws_url, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _energy(service: ServiceProcess, gateway_id: str) -> list[float]:
    result = run_cli(
        ["meter-values", "--api", service.api_url, "--json", gateway_id, "--service", "1",
         "--measurand", "Energy.Active.Import.Register", "--limit", "1000"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    return [float(item["value"]) for item in sorted(items, key=lambda item: item["timestamp"])]


def test_the_energy_register_never_goes_backwards_across_restarts(
    slow_service: ServiceProcess,
) -> None:
    for run in (1, 2):
        process = _gateway_process(
            slow_service, "--id", "E-1", "--meter-interval", "0.2", "--duration", "1.5"
        )
        _, err = process.communicate(timeout=CLI_BOUND)
        assert process.returncode == 0, err
        values = _energy(slow_service, "E-1")
        assert len(values) >= 2 * run, values  # samples of this run arrived
    assert values == sorted(values), values


def test_the_readme_walk_through_shows_meter_values(slow_service: ServiceProcess) -> None:
    api = ["--api", slow_service.api_url]
    assert run_cli(["gateways", "add", *api, "GW-7", "--password", "s3cret"]).returncode == 0
    process = _gateway_process(slow_service, "--id", "GW-7", "--password", "s3cret")
    try:
        # As a person types the next lines: the gateway has connected meanwhile.
        wait_until(
            lambda: (
                '"connected": true' in run_cli(["gateways", "show", *api, "--json", "GW-7"]).stdout
            ),
            interval=0.2,
            what="GW-7 connected",
        )
        calls = [
            ["call", *api, "GW-7", "GetConfiguration", "key=HeartbeatInterval"],
            ["call", *api, "GW-7", "Reset", "type=Soft"],
        ]
        for command in calls:
            result = run_cli(command)
            assert result.returncode == 0, result.stderr
        result = run_cli(["meter-values", *api, "GW-7", "--limit", "4"])
        assert result.returncode == 0, result.stderr
        assert "(no meter values)" not in result.stdout
        assert "Energy.Active.Import.Register" in result.stdout, result.stdout
    finally:
        process.terminate()
        process.communicate(timeout=CLI_BOUND)


def test_the_api_over_https(tmp_path: Path, pki: Any) -> None:
    service = ServiceProcess(
        tmp_path,
        "--api-certfile", str(pki.server_cert),
        "--api-keyfile", str(pki.server_key),
    ).start()  # fmt: skip
    try:
        assert service.api_url.startswith("https://127.0.0.1:"), service.ready_line
        # The CLI reaches it, trusting the test CA (OpenSSL's SSL_CERT_FILE).
        result = subprocess.run(
            [sys.executable, "-m", "ntxcp", "gateways", "list", "--api", service.api_url, "--json"],
            env={**os.environ, "SSL_CERT_FILE": str(pki.ca_cert)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_BOUND,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["items"] == []
        # Plain HTTP on the same port gets no answer from the API.
        plain = run_cli(["gateways", "list", "--api", service.api_url.replace("https", "http")])
        assert plain.returncode == 3, plain.stderr
        assert service.stop() == 0, service.stderr()
    finally:
        service.kill()
    result = run_cli(
        ["control-center", "--db", str(tmp_path / "x.sqlite"), "--api-keyfile", str(pki.server_key)]
    )
    assert result.returncode == 2 and "--api-keyfile needs --api-certfile" in result.stderr
