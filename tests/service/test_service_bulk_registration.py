"""Many gateways at once: ``ntxcp gateways import``, ``POST /api/gateway-imports`` and
``ntxcp gateway --secrets`` (spec §1 profiles 1/2). All or none, every mistake with its
line; generated secrets written once; the simulator uses each gateway's own secret.
"""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import TOKEN, Api, ServiceProcess, gateway, run_cli, until

from databases import Databases
from ntxcp.errors import HandshakeRefusedError
from ntxcp.service.backend import create_storage
from ntxcp.service.config import ServiceConfig

pytestmark = pytest.mark.timeout(120)

SECRET = "m" * 22  # the shortest machine secret an import accepts


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


async def test_storage_registers_all_or_none(databases: Databases) -> None:
    db = databases.new()
    storage = create_storage(ServiceConfig(db=db))
    await storage.start()
    try:
        storage.ensure_gateway("seen-1")  # seen, not registered: may be imported
        await storage.register_gateway("taken-1", "h0")
        assert await storage.register_gateways([("seen-1", "h1"), ("new-1", None)]) == []
        assert storage.gateways["seen-1"].registered
        assert await storage.register_gateways([("new-2", "h2"), ("taken-1", "h3")]) == ["taken-1"]
        assert "new-2" not in storage.gateways
        assert storage.gateways["taken-1"].password_hash == "h0"
        rows = await storage.fetch("SELECT id, registered, password_hash FROM gateways")
        assert sorted((gid, bool(reg), pw) for gid, reg, pw in rows) == [
            ("new-1", True, None),
            ("seen-1", True, "h1"),
            ("taken-1", True, "h0"),
        ]
    finally:
        await storage.close()
    again = create_storage(ServiceConfig(db=db))  # the mirror is what was stored
    await again.start()
    try:
        assert again.gateways["seen-1"].registered
        assert again.gateways["seen-1"].password_hash == "h1"
        assert "new-2" not in again.gateways
    finally:
        await again.close()


def _import(service: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["gateways", "import", *args, "--api", service.api_url, "--token", TOKEN])


async def test_import_from_csv_and_json_lines(service: ServiceProcess, tmp_path: Path) -> None:
    source = tmp_path / "fleet.csv"
    source.write_text(f"id,secret\nimp-1,generate\nimp-2,{SECRET}\n\nimp-3,\nimp-4,generate\n")
    out = tmp_path / "secrets.csv"
    done = _import(service, str(source), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "imported 4 gateways, 2 generated secrets" in done.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = _rows(out)
    assert rows[0] == ["id", "secret"] and [row[0] for row in rows[1:]] == ["imp-1", "imp-4"]
    assert all(len(row[1]) >= 43 for row in rows[1:])
    # The same file again: every line is already registered; the output must be new.
    again = _import(service, str(source), "--output", str(out))
    assert again.returncode == 2 and "exists" in again.stderr
    again = _import(service, str(source))
    assert again.returncode == 1, again.stderr
    assert "HTTP 409" in again.stderr and f"{source}:2: gateway 'imp-1' is already" in again.stderr
    # JSON lines, generated secrets to standard output.
    lines = tmp_path / "fleet.jsonl"
    lines.write_text('{"id": "imp-5", "secret": "generate"}\n\n{"id": "imp-6", "secret": null}\n')
    printed = _import(service, str(lines))
    assert printed.returncode == 0, printed.stderr
    assert "shown once" in printed.stderr
    rows = list(csv.reader(printed.stdout.splitlines()))
    assert rows[0] == ["id", "secret"] and [row[0] for row in rows[1:]] == ["imp-5"]


async def test_every_mistake_is_reported_with_its_line_and_nothing_is_registered(
    service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    source = tmp_path / "fleet.csv"
    source.write_text(
        f"id,secret\nbad-1,generate\nbad/2,generate\nbad-3,short\n\nbad-1,{SECRET}\n"
        f"bad-5,{'x' * 300}\n"
    )
    out = tmp_path / "out.csv"
    refused = _import(service, str(source), "--output", str(out))
    assert refused.returncode == 1, refused.stderr
    assert "4 of 5 entries are wrong; no gateway was registered" in refused.stderr
    for line in (3, 4, 6, 7):  # the header and the blank line count as lines
        assert f"{source}:{line}: " in refused.stderr, refused.stderr
    assert f"{source}:2: " not in refused.stderr and f"{source}:5: " not in refused.stderr
    assert "machine secret of 22..256 characters" in refused.stderr
    assert "appears more than once" in refused.stderr
    assert not out.exists()  # no secret was generated for good
    status, _ = await api.get("/api/gateways/bad-1")
    assert status == 404
    # Unreadable files are usage errors, with the line.
    source.write_text("a,b,c\n")
    malformed = _import(service, str(source))
    assert malformed.returncode == 2 and f"{source}:1: expected 'id,secret'" in malformed.stderr
    source.write_text('{"id": "x"}\n{oops\n')
    malformed = _import(service, str(source))
    assert malformed.returncode == 2 and f"{source}:2: not JSON" in malformed.stderr
    source.write_text("\n")
    empty = _import(service, str(source))
    assert empty.returncode == 2 and "no gateway" in empty.stderr


async def test_the_import_endpoint_checks_its_body(api: Api) -> None:
    status, body = await api.post("/api/gateway-imports", {"gateways": []})
    assert status == 422 and body["path"] == "gateways"
    status, body = await api.post("/api/gateway-imports", ["x"])
    assert status == 422 and body["code"] == "FormationViolation"
    status, body = await api.post("/api/gateway-imports", {"gateways": [], "extra": 1})
    assert status == 422
    status, body = await api.post("/api/gateway-imports", {"gateways": [{"id": 7}, "x"]})
    assert status == 422
    assert [(e["index"], e["path"]) for e in body["errors"]] == [(0, "id"), (1, "")]
    status, body = await api.post(
        "/api/gateway-imports",
        {"gateways": [{"id": "both-1", "password": SECRET, "generatePassword": True}]},
    )
    assert status == 422 and body["errors"][0]["path"] == "password"
    status, body = await api.request("POST", "/api/gateway-imports", data="{oops")
    assert status == 400
    status, body = await api.request(
        "POST", "/api/gateway-imports", data="x", content_type="text/csv"
    )
    assert status == 415
    huge = json.dumps({"gateways": [{"id": "big", "password": "p" * 200}] * 45_000})
    status, body = await api.request("POST", "/api/gateway-imports", data=huge)
    assert status == 413 and "larger than" in body["error"]
    status, body = await api.post(
        "/api/gateway-imports", {"gateways": [{"id": f"n-{n}"} for n in range(20_001)]}
    )
    assert status == 422 and "1..20000" in body["error"]


async def test_the_simulator_runs_each_gateway_with_its_own_secret(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    service = ServiceProcess(tmp_path, "--auth", "basic").start()
    try:
        source = tmp_path / "fleet.csv"
        source.write_text("".join(f"SIM-{n},generate\n" for n in range(30)))
        secrets = tmp_path / "secrets.csv"
        assert _import_open(service, source, secrets).returncode == 0
        rows = _rows(secrets)[1:]
        # Each secret is its own gateway's: another gateway's is refused.
        with pytest.raises(HandshakeRefusedError) as refused:
            async with gateway(service.ws_url, "SIM-0", password=rows[1][1]):
                pass
        assert refused.value.status == 401
        simulator = subprocess.Popen(
            [sys.executable, "-m", "ntxcp", "gateway", "--url", service.ws_url,
             "--secrets", str(secrets), "--meter-interval", "0", "--summary-interval", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        api = Api(http, service.api_url, None)

        async def all_connected() -> bool:
            _, page = await api.get("/api/gateways", limit="100")
            return sum(item["connected"] for item in page["items"]) == 30

        try:
            await until(all_connected, timeout=60, interval=0.2)
        finally:
            simulator.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(simulator.communicate, timeout=30)
        assert simulator.returncode == 0, err
        bad = tmp_path / "bad.csv"
        bad.write_text("SIM-0,generate\n")
        usage = run_cli(["gateway", "--url", service.ws_url, "--secrets", str(bad)])
        assert usage.returncode == 2 and "'generate' is for" in usage.stderr
        usage = run_cli(
            ["gateway", "--url", service.ws_url, "--secrets", str(secrets), "--password", "x"]
        )
        assert usage.returncode == 2 and "leave out --password" in usage.stderr
    finally:
        service.kill()


def _import_open(
    service: ServiceProcess, source: Path, out: Path
) -> subprocess.CompletedProcess[str]:
    return run_cli(["gateways", "import", str(source), "--output", str(out),
                    "--api", service.api_url])  # fmt: skip


async def _next_gateway_event(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The data of the next ``gateway`` event of a server-sent event stream."""
    kind = ""
    async with asyncio.timeout(30):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "gateway":
                data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return data


async def test_an_import_is_one_event_on_the_live_streams(
    service: ServiceProcess, api: Api, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = service.api_url + "api/events"
    async with (
        http.get(url, params={"kinds": "gateway"}, headers=headers) as overview,
        http.get(url, params={"gateway": "live-2"}, headers=headers) as page,
    ):
        assert overview.status == 200 and page.status == 200
        # A refused import registers nothing and says nothing.
        status, _ = await api.post(
            "/api/gateway-imports", {"gateways": [{"id": "live-1"}, {"id": "bad/1"}]}
        )
        assert status == 422
        status, _ = await api.post(
            "/api/gateway-imports", {"gateways": [{"id": f"live-{n}"} for n in (1, 2, 3)]}
        )
        assert status == 201
        expected = {"change": "imported", "count": 3, "gatewayIds": ["live-1", "live-2", "live-3"]}
        assert await _next_gateway_event(overview) == expected
        assert await _next_gateway_event(page) == expected  # an import is about no one gateway
        # The command line imports through the same endpoint.
        source = tmp_path / "live.csv"
        source.write_text("live-4,generate\nlive-5,\n")
        done = _import(service, str(source), "--output", str(tmp_path / "secrets.csv"))
        assert done.returncode == 0, done.stderr
        expected = {"change": "imported", "count": 2, "gatewayIds": ["live-4", "live-5"]}
        assert await _next_gateway_event(overview) == expected
