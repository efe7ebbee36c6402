"""The API-client commands against the real control center service (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from simulator_helpers import FAST_BACKOFF

from ntxcp.cli import main
from ntxcp.cli.api_client import build_payload
from ntxcp.cli.errors import UsageError
from ntxcp.simulator import SimulatedGateway
from waiting import eventually

TOKEN = "t0ken-for-tests"
READY = re.compile(r"gateways (?P<ws>ws://\S+)/<id>\s+api (?P<api>http://\S+)")


@dataclass
class RunningService:
    ws_url: str
    api_url: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """``ntxcp control-center`` on free ports, with an API token."""
    db = tmp_path_factory.mktemp("service") / "cc.sqlite"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ntxcp",
            "control-center",
            "--port",
            "0",
            "--api-port",
            "0",
            "--db",
            str(db),
            "--api-token",
            TOKEN,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(20.0, process.kill)  # a readline that never returns
    watchdog.start()
    assert process.stdout is not None
    line = process.stdout.readline()
    watchdog.cancel()
    match = READY.search(line)
    assert match is not None, f"service did not start: {line!r}"
    yield RunningService(match["ws"], match["api"].rstrip("/"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0  # spec §6.3


@dataclass
class Cli:
    """Runs ``ntxcp ...`` in a thread (the client blocks) and captures its output."""

    capsys: pytest.CaptureFixture[str]
    api: str

    async def __call__(self, *argv: str, token: bool = True) -> tuple[int, str, str]:
        args = [*argv, "--api", self.api]
        if token:
            args += ["--token", TOKEN]
        self.capsys.readouterr()
        try:
            code = await asyncio.to_thread(main, args)
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], service: RunningService) -> Cli:
    return Cli(capsys, service.api_url)


@pytest.fixture
async def sim(
    service: RunningService, request: pytest.FixtureRequest
) -> AsyncIterator[SimulatedGateway]:
    """A simulated gateway connected to the service, booted and sending meter values."""
    gateway_id = "CLI-" + re.sub(r"\W", "", request.node.name)[-30:]
    sim = SimulatedGateway(
        gateway_id, service.ws_url, meter_interval=0.1, backoff=FAST_BACKOFF, reboot_delay=0.05
    )
    await sim.start()
    await eventually(lambda: sim.registered and sim.messages_sent >= 6)
    yield sim
    await sim.stop()


@pytest.fixture
def gateway(sim: SimulatedGateway) -> str:
    """The id of :func:`sim`."""
    return sim.gateway_id


async def test_gateways_list_show_and_status(cli: Cli, gateway: str) -> None:
    code, out, _ = await cli("gateways", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "CONNECTED",
        "REGISTRATION",
        "MODEL",
        "FIRMWARE",
        "LAST",
        "SEEN",
    ]
    mine = next(row for row in rows if row.startswith(gateway))
    assert mine.split()[1:5] == ["yes", "Accepted", "DX-SIM", "1.0.0"]

    code, out, _ = await cli("gateways", "show", gateway)
    assert code == 0
    assert re.search(r"^registrationStatus\s+Accepted$", out, re.M)
    assert re.search(r"^connected\s+yes$", out, re.M)

    code, out, _ = await cli("status", gateway)
    assert code == 0 and "current:" in out
    current = out.split("current:")[1].split("history:")[0]
    assert re.search(r"^1\s+Charging\s+NoError", current, re.M)

    code, out, _ = await cli("gateways", "show", gateway, "--json")
    assert json.loads(out)["id"] == gateway


async def stored(cli: Cli, gateway: str, *filters: str, at_least: int) -> bool:
    """Whether the service has stored ``at_least`` samples of ``gateway`` (with ``filters``)."""
    code, out, err = await cli("meter-values", gateway, *filters, "--limit", "3", "--json")
    assert code == 0, err
    return len(json.loads(out)["items"]) >= at_least


async def test_meter_values_and_messages(cli: Cli, gateway: str) -> None:
    voltage_of_2 = ("--service", "2", "--measurand", "Voltage")
    await eventually(lambda: stored(cli, gateway, *voltage_of_2, at_least=2))
    await eventually(lambda: stored(cli, gateway, at_least=3))
    code, out, _ = await cli(
        "meter-values", gateway, "--service", "2", "--measurand", "Voltage", "--limit", "2"
    )
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "TIMESTAMP",
        "SERVICE",
        "MEASURAND",
        "VALUE",
        "UNIT",
        "PHASE",
        "CONTEXT",
    ]
    assert len(rows) == 2
    for row in rows:
        _, service_id, measurand, value, unit, *_ = row.split()
        assert (service_id, measurand, unit) == ("2", "Voltage", "V")
        assert 220 < float(value) < 240

    code, out, _ = await cli("meter-values", gateway, "--limit", "3", "--json")
    answer = json.loads(out)
    assert answer["count"] == 3 and len(answer["items"]) == 3

    code, out, _ = await cli("messages", gateway, "--action", "BootNotification", "--limit", "5")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["TIME", "DIR", "TYPE", "ACTION"]
    assert {row.split()[2] for row in rows} == {"CALL", "CALLRESULT"}
    assert all(row.split()[3] == "BootNotification" for row in rows)


async def test_call_converts_arguments_to_the_request_types(cli: Cli, gateway: str) -> None:
    code, out, _ = await cli(
        "call", gateway, "GetConfiguration", "key=HeartbeatInterval", "key=Vendor.Note", "key=X"
    )
    assert code == 0
    assert re.search(r"^unknownKey\s+\[\"X\"\]$", out, re.M)
    assert re.search(r"^HeartbeatInterval\s+no\s+300$", out, re.M)

    payload = '{"key":"Vendor.Note","value":"set from the CLI"}'
    code, out, _ = await cli("call", gateway, "ChangeConfiguration", payload)
    assert (code, out.split()) == (0, ["status", "Accepted"])

    code, out, err = await cli(
        "call", gateway, "CaptureProcess", "serviceId=1", "datapointIds=temperature", "--json"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["status"] == "Accepted"
    assert [p["datapointId"] for p in answer["datapoints"]] == ["temperature"]

    code, out, _ = await cli(
        "call", gateway, "DataTransfer", "vendorId=Ding.X", "messageId=echo", "data=42"
    )
    assert code == 0 and re.search(r"^data\s+42$", out, re.M)  # a string, not converted

    code, out, _ = await cli(
        "call", gateway, "TriggerMessage", "requestedMessage=StatusNotification", "serviceId=1"
    )
    assert (code, out.split()) == (0, ["status", "Accepted"])


async def test_call_reset_reboots_the_gateway(
    cli: Cli, gateway: str, sim: SimulatedGateway
) -> None:
    code, out, _ = await cli("call", gateway, "Reset", "type=Soft")
    assert (code, out.split()) == (0, ["status", "Accepted"])
    await eventually(lambda: sim.boots == 2)


async def test_call_errors(cli: Cli, gateway: str) -> None:
    code, out, err = await cli("call", gateway, "Reset", "type=Sometimes")
    assert (code, out) == (1, "")
    assert err.strip() == (
        "error: HTTP 422 PropertyConstraintViolation: "
        "type: must be one of Hard, Soft, not 'Sometimes'"
    )  # the allowed values, the path once
    code, _, err = await cli("call", "NOT-THERE", "Reset", "type=Soft")
    assert code == 1 and "HTTP 404" in err and "NOT-THERE" in err
    code, _, err = await cli("call", gateway, "Rest", "type=Soft")
    assert code == 2 and "unknown action 'Rest'" in err
    code, _, err = await cli("call", gateway, "Heartbeat")
    assert code == 2 and "sent by gateways" in err
    code, _, err = await cli("call", gateway, "Reset", "kind=Soft")
    assert code == 2 and "its fields: type" in err
    code, _, err = await cli("call", gateway, "GetDiagnostics", "location=http://h/", "retries=x")
    assert code == 2 and "retries" in err


async def test_gateways_add_and_remove(cli: Cli) -> None:
    assert (await cli("gateways", "add", "NEW-1", "--password", "s3cret"))[:2] == (
        0,
        "added gateway NEW-1\n",
    )
    code, _, err = await cli("gateways", "add", "NEW-1", "--password", "s3cret")
    assert code == 1 and "HTTP 409" in err
    code, _, err = await cli("gateways", "add", "bad/id")
    assert code == 1 and "HTTP 422" in err and "(at id)" in err
    code, out, _ = await cli("gateways", "show", "NEW-1")
    assert code == 0 and re.search(r"^hasPassword\s+yes$", out, re.M)
    code, out, _ = await cli("gateways", "remove", "NEW-1")
    removed, note = out.splitlines()
    assert (code, removed) == (0, "removed gateway NEW-1")
    # --auth none admits any id: the operator is told a running gateway comes back.
    assert note.startswith("note: the service admits any gateway id (--auth none)"), note
    assert "NEW-1 is still running" in note and "--auth basic" in note
    code, _, err = await cli("gateways", "show", "NEW-1")
    assert code == 1 and "HTTP 404" in err


async def test_token_and_environment(
    cli: Cli, service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = await cli("gateways", "list", token=False)
    assert code == 1 and "HTTP 401" in err and "bearer token" in err
    monkeypatch.setenv("NTXCP_API_TOKEN", TOKEN)
    assert (await cli("gateways", "list", token=False))[0] == 0
    monkeypatch.setenv("NTXCP_API", service.api_url)
    cli.capsys.readouterr()
    code = await asyncio.to_thread(main, ["gateways", "list", "--json"])
    assert code == 0 and "items" in json.loads(cli.capsys.readouterr().out)


async def test_unreachable_api_exits_3(cli: Cli) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli.api = f"http://127.0.0.1:{port}"
    code, _, err = await cli("gateways", "list")
    assert code == 3 and "cannot reach the API" in err


@pytest.fixture
async def failing_api() -> AsyncIterator[str]:
    """An HTTP server answering every call with the service's 502 and 504 bodies."""

    async def call(request: web.Request) -> web.Response:
        if request.match_info["action"] == "Reset":
            body = {
                "error": "gateway answered Reset with CALLERROR NotSupported",
                "code": "NotSupported",
                "description": "no handler for Reset",
                "details": {},
            }
            return web.json_response(body, status=502)
        return web.json_response({"error": "Heartbeat not answered within 30 s"}, status=504)

    app = web.Application()
    app.router.add_post("/api/gateways/{id}/calls/{action}", call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_gateway_errors_are_reported(cli: Cli, failing_api: str) -> None:
    cli.api = failing_api
    code, out, err = await cli("call", "GW", "Reset", "type=Hard", "--json")
    assert code == 1
    assert err.startswith("error: HTTP 502 NotSupported: gateway answered Reset")
    assert "no handler for Reset" in err
    assert json.loads(out)["code"] == "NotSupported"
    code, _, err = await cli("call", "GW", "ClearCache")
    assert code == 1 and err.startswith("error: HTTP 504: Heartbeat not answered")


@pytest.mark.parametrize(
    ("action", "arguments", "payload"),
    [
        ("Reset", ["type=Soft"], {"type": "Soft"}),
        ("GetConfiguration", ["key=A", "key=B"], {"key": ["A", "B"]}),
        ("GetConfiguration", ["key=A"], {"key": ["A"]}),
        ("GetConfiguration", [], {}),
        ("ChangeConfiguration", ['{"key":"K","value":"60"}'], {"key": "K", "value": "60"}),
        ("ChangeConfiguration", ["key=K", "value=60"], {"key": "K", "value": "60"}),
        (
            "GetDiagnostics",
            ["location=http://h/up", "retries=2", "retryInterval=0"],
            {"location": "http://h/up", "retries": 2, "retryInterval": 0},
        ),
        ("CaptureProcess", ['datapointIds:=["a","b"]'], {"datapointIds": ["a", "b"]}),
        ("CaptureProcess", ["datapointIds=a", "datapointIds=b"], {"datapointIds": ["a", "b"]}),
        ("TriggerMessage", ["serviceId=1"], {"serviceId": "1"}),
        ("DataTransfer", ["data=a=b"], {"data": "a=b"}),
    ],
)
def test_build_payload(action: str, arguments: list[str], payload: dict[str, object]) -> None:
    assert build_payload(action, arguments) == payload


@pytest.mark.parametrize(
    ("action", "arguments", "message"),
    [
        ("Reset", ["type"], "expected field=value"),
        ("Reset", ["=Soft"], "expected field=value"),
        ("Reset", ["{not json"], "not valid JSON"),
        ("Reset", ["[1]"], "expected field=value"),
        ("GetDiagnostics", ["retries=1.5"], "retries"),
        ("CaptureProcess", ["datapointIds:=[oops"], "datapointIds"),
        ("BootNotification", [], "sent by gateways"),
    ],
)
def test_build_payload_refuses(action: str, arguments: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_payload(action, arguments)
