"""Named API tokens with roles: every route's role, 401 and 403, revocation, the command log.

The services run in-process on real loopback sockets, against each storage backend
(SQLite file, PostgreSQL server); the CLI runs as a real subprocess.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import WAIT, Api, gateway

from databases import Databases
from ntxcp.service import Service, ServiceConfig, api_tokens, migrations, queries
from ntxcp.service.access import ROUTE_OPERATIONS
from ntxcp.service.api import create_app
from ntxcp.service.api_contract import OPERATIONS, REQUIRED_ROLES
from ntxcp.service.api_tokens import Role
from ntxcp.service.backend import DatabaseUnavailableError, create_storage
from pg_server import PostgresServer
from waiting import eventually

pytestmark = pytest.mark.timeout(120)

BOOTSTRAP = "bootstrap-token-0123456789"
_RANK = {"none": -1, **{role.value: rank for rank, role in enumerate(Role)}}


@pytest.fixture
async def service(databases: Databases) -> AsyncIterator[Service]:
    """A service with ``--api-token`` (the bootstrap admin token), on each backend."""
    config = ServiceConfig(port=0, api_port=0, db=databases.new(), api_token=BOOTSTRAP)
    async with Service(config) as svc:
        yield svc


async def _new_token(api: Api, name: str, role: str) -> str:
    status, answer = await api.post("/api/tokens", {"name": name, "role": role})
    assert status == 201, answer
    assert answer["name"] == name and answer["role"] == role
    token: str = answer["token"]
    return token


async def _status(http: aiohttp.ClientSession, method: str, url: str, token: str) -> Any:
    """Status and JSON body (``None`` for a stream or no JSON) of one request."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.request(
        method, url, json={}, headers=headers, timeout=aiohttp.ClientTimeout(total=WAIT * 3)
    ) as response:
        if response.content_type != "application/json":
            return response.status, None  # e.g. the event stream: do not read it
        return response.status, await response.json()


def _concrete(path: str) -> str:
    """A documented path with its parameters filled in (names that do not exist)."""
    return path.replace("{id}", "no-such-gateway").replace("{name}", "no-such-token")


# --- the route table -------------------------------------------------------------------


async def test_every_route_declares_the_role_it_needs(tmp_path: Path) -> None:
    async with Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "r.sqlite"))) as svc:
        app = svc.app
        assert app is not None
        declared = app[ROUTE_OPERATIONS]
        for route in app.router.routes():
            key = (route.method, route.resource.canonical if route.resource else "")
            assert key in declared, f"{key} declares no role"
            assert declared[key] in REQUIRED_ROLES
    # Every documented operation has a role, and the routes outside /api are the only
    # ones that need none.
    assert set(OPERATIONS) <= set(REQUIRED_ROLES)
    for operation, role in REQUIRED_ROLES.items():
        assert (role is None) == (operation in _PUBLIC), operation


_PUBLIC = {"health", "metrics", "openapi", "docs", "dashboard", "dashboardAsset"}


async def test_a_route_added_without_a_role_is_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = ServiceConfig(port=0, api_port=0, db=str(tmp_path / "u.sqlite"), api_token=BOOTSTRAP)
    async with Service(config) as service:
        assert service.app is not None
        # The application is frozen once served: a route without a declaration can
        # only come from a new application built the same way.
        app = create_app(service)

        async def secret(request: aiohttp.web.Request) -> aiohttp.web.Response:
            return aiohttp.web.json_response({"leaked": True})

        app.router.add_get("/api/undeclared", secret)
        app.router.add_get("/undeclared", secret)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            for path in ("/api/undeclared", "/undeclared"):
                status, body = await _status(
                    http, "GET", f"http://127.0.0.1:{port}{path}", BOOTSTRAP
                )
                assert status == 403, (path, body)
                assert "declares no required role" in body["error"]
        finally:
            await runner.cleanup()


async def test_the_document_states_each_operations_role(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    status, doc = await api.request("GET", "/openapi.json", token=None)
    assert status == 200
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            op_id = operation["operationId"]
            role = REQUIRED_ROLES["call" if op_id.startswith("call") else op_id]
            assert operation["x-required-role"] == ("none" if role is None else role.value)
            assert ("403" in operation["responses"]) == (role in (Role.OPERATOR, Role.ADMIN)), (
                path,
                method,
            )


# --- 401 and 403, route by route from the document ------------------------------------


async def test_each_role_gets_exactly_the_routes_it_allows(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    tokens = {
        "read-only": await _new_token(api, "reader", "read-only"),
        "operator": await _new_token(api, "operator-1", "operator"),
        "admin": await _new_token(api, "admin-1", "admin"),
    }
    _, doc = await api.request("GET", "/openapi.json", token=None)
    writes = 0
    base = service.api_url.rstrip("/")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            needed = operation["x-required-role"]
            if needed == "none":
                continue
            writes += method != "get"
            for role, token in tokens.items():
                status, body = await _status(http, method.upper(), base + _concrete(path), token)
                where = (method, path, role, status, body)
                if _RANK[role] < _RANK[needed]:
                    assert status == 403, where
                    assert body["requiredRole"] == needed and body["role"] == role, where
                    assert f"needs the {needed} role" in body["error"], where
                else:
                    assert status not in (401, 403), where
                    if operation["operationId"].startswith("call"):
                        assert status == 404, where  # no such gateway: 2xx or 404
    assert writes > 10  # every call action, registration, passwords, imports, tokens


async def test_a_read_only_token_gets_403_on_every_write_route(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    reader = await _new_token(api, "read-only-1", "read-only")
    _, doc = await api.request("GET", "/openapi.json", token=None)
    base = service.api_url.rstrip("/")
    methods = {(path, method) for path, item in doc["paths"].items() for method in item}
    writes = [(path, method) for path, method in methods if method != "get"]
    assert len(writes) > 10
    for path, method in sorted(writes):
        status, body = await _status(http, method.upper(), base + _concrete(path), reader)
        assert status == 403, (method, path, status, body)
        assert body["requiredRole"] in ("operator", "admin")


async def test_wrong_unknown_and_revoked_tokens_get_401(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    token = await _new_token(api, "short-lived", "operator")
    name, _, secret = token.partition(".")
    who = Api(http, service.api_url, token)
    assert await who.get("/api/whoami") == (
        200,
        {
            "name": "short-lived",
            "role": "operator",
            "authenticated": True,
            "gatewayAdmission": "open",
        },
    )
    wrong_secret = f"{name}.{secret[:-2]}xx"
    unknown_name = f"nobody.{secret}"
    for bad in (wrong_secret, unknown_name, secret, "", f"{BOOTSTRAP}x"):
        status, body = await Api(http, service.api_url, bad).get("/api/whoami")
        assert status == 401, (bad, body)
        assert "bearer token" in body["error"]
    status, body = await api.request("DELETE", "/api/tokens/short-lived")
    assert status == 200 and body["revokedAt"] is not None
    status, _ = await who.get("/api/gateways")
    assert status == 401
    # Revoking again changes nothing; an unknown name is 404.
    assert (await api.request("DELETE", "/api/tokens/short-lived"))[0] == 200
    assert (await api.request("DELETE", "/api/tokens/nobody"))[0] == 404


async def test_unknown_name_and_wrong_secret_cost_the_same_check(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    token = await _new_token(api, "timed", "read-only")
    name, _, secret = token.partition(".")
    checked: list[tuple[str, str]] = []
    real = api_tokens.verify_machine_secret

    def counting(key: bytes, given: str, stored: str) -> bool:
        checked.append((given, stored))
        return real(key, given, stored)

    monkeypatch.setattr(api_tokens, "verify_machine_secret", counting)
    registry = service.tokens
    assert registry.authenticate(f"{name}.{secret}x") is None
    assert registry.authenticate(f"nobody.{secret}x") is None
    assert registry.authenticate(BOOTSTRAP) is not None
    # One keyed hash each, against a stored hash of the same form: an unknown name
    # takes the work of a wrong secret (and the bootstrap token too).
    assert len(checked) == 3
    forms = [stored.split("$")[0] + f"${len(stored)}" for _, stored in checked]
    assert len(set(forms)) == 1, forms


# --- management while the service runs ------------------------------------------------


async def test_tokens_are_stored_hashed_and_listed_without_secrets(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    token = await _new_token(api, "listed", "read-only")
    secret = token.partition(".")[2]
    rows = await service.storage.fetch(
        "SELECT name, role, secret_hash, last_used_at, revoked_at FROM api_tokens"
    )
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("listed", "read-only", None, None)]
    assert secret not in rows[0][2] and rows[0][2].startswith("hmac-sha256$")
    assert (await Api(http, service.api_url, token).get("/api/gateways"))[0] == 200
    status, listing = await api.get("/api/tokens")
    assert status == 200 and listing["count"] == 1
    (item,) = listing["items"]
    assert set(item) == {"name", "role", "createdAt", "lastUsedAt", "revokedAt"}
    assert item["lastUsedAt"] is not None
    # The last use is written to the database (with the next batch).
    await service.storage.sync()
    stored = await service.storage.fetch("SELECT last_used_at FROM api_tokens")
    assert stored == [(item["lastUsedAt"],)]
    # Names are unique for ever, and checked.
    status, body = await api.post("/api/tokens", {"name": "listed", "role": "admin"})
    assert status == 409, body
    for bad in ({"name": "a.b", "role": "admin"}, {"name": "x", "role": "root"}, {}):
        assert (await api.post("/api/tokens", bad))[0] == 422, bad
    assert (await api.post("/api/tokens", {"name": "bootstrap", "role": "admin"}))[0] == 409


async def test_tokens_survive_a_restart(databases: Databases, http: aiohttp.ClientSession) -> None:
    db = databases.new()
    config = ServiceConfig(port=0, api_port=0, db=db, api_token=BOOTSTRAP)
    async with Service(config) as first:
        api = Api(http, first.api_url, BOOTSTRAP)
        kept = await _new_token(api, "kept", "operator")
        gone = await _new_token(api, "gone", "operator")
        assert (await api.request("DELETE", "/api/tokens/gone"))[0] == 200
    async with Service(ServiceConfig(port=0, api_port=0, db=db, api_token=BOOTSTRAP)) as second:
        assert (await Api(http, second.api_url, kept).get("/api/whoami"))[0] == 200
        assert (await Api(http, second.api_url, gone).get("/api/whoami"))[0] == 401


async def test_revoking_a_token_ends_its_event_streams(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    watcher = await _new_token(api, "watcher", "read-only")
    other = await _new_token(api, "other-watcher", "read-only")
    url = f"{service.api_url}api/events"

    async def open_stream(token: str) -> aiohttp.ClientResponse:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        await response.content.readline()  # the stream is open
        return response

    revoked_stream = await open_stream(watcher)
    kept_stream = await open_stream(other)
    try:
        assert (await api.request("DELETE", "/api/tokens/watcher"))[0] == 200
        async with asyncio.timeout(WAIT):
            while await revoked_stream.content.readline():
                pass  # read to the end: the server closed the stream
        assert not kept_stream.content.at_eof()
        service.events.publish("gateway", "GW-1", {"change": "removed"})
        async with asyncio.timeout(WAIT):
            while b"event: gateway" not in await kept_stream.content.readline():
                pass
    finally:
        revoked_stream.close()
        kept_stream.close()


async def test_processes_sharing_a_database_learn_of_new_and_revoked_tokens(
    postgres: PostgresServer, http: aiohttp.ClientSession
) -> None:
    url = postgres.create_database("ntxcp_shared_tokens")
    config = ServiceConfig(port=0, api_port=0, db=url, api_token=BOOTSTRAP)
    async with Service(config) as first, Service(config) as second:
        admin = Api(http, first.api_url, BOOTSTRAP)
        token = await _new_token(admin, "shared", "operator")
        on_second = Api(http, second.api_url, token)

        async def answers(expected: int) -> bool:
            status, _ = await on_second.get("/api/whoami")
            return status == expected

        await eventually(lambda: answers(200), timeout=WAIT * 2, what="known there")
        stream = await http.get(
            f"{second.api_url}api/events", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            assert stream.status == 200
            await stream.content.readline()
            assert (await admin.request("DELETE", "/api/tokens/shared"))[0] == 200
            await eventually(lambda: answers(401), timeout=WAIT * 2, what="revoked there")
            async with asyncio.timeout(WAIT):
                while await stream.content.readline():
                    pass  # the stream opened on the other process ended too
        finally:
            stream.close()


async def test_a_revocation_the_database_missed_is_written_when_repeated(
    postgres: PostgresServer,
) -> None:
    storage = create_storage(ServiceConfig(db=postgres.create_database("ntxcp_missed")))
    await storage.start()
    try:
        registry = api_tokens.TokenRegistry(storage, BOOTSTRAP, lambda: "2026-12-05T00:00:00Z")
        await registry.load(b"k" * 32)
        _, token = await registry.add("missed", Role.OPERATOR)
        await asyncio.to_thread(postgres.stop, "immediate")
        try:
            with pytest.raises(DatabaseUnavailableError):
                await registry.revoke("missed")
            assert registry.authenticate(token) is None  # refused at once all the same
        finally:
            await asyncio.to_thread(postgres.start)

        async def reconnected() -> bool:
            storage.check_disk()
            return storage.unreachable is None

        await eventually(reconnected, timeout=20, interval=0.2)
        await registry.revoke("missed")  # again: now it is written
        reloaded = api_tokens.TokenRegistry(storage, BOOTSTRAP, lambda: "")
        await reloaded.load(b"k" * 32)
        assert reloaded.tokens["missed"].revoked_at == "2026-12-05T00:00:00Z"
        assert reloaded.authenticate(token) is None
    finally:
        await storage.close()


# --- the open API on loopback ----------------------------------------------------------


async def test_the_first_token_of_an_open_api_is_an_admin_and_closes_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "o.sqlite"))) as svc:
        anyone = Api(http, svc.api_url, None)
        assert await anyone.get("/api/whoami") == (
            200,
            {"name": None, "role": "admin", "authenticated": False, "gatewayAdmission": "open"},
        )
        status, body = await anyone.post("/api/tokens", {"name": "ops", "role": "operator"})
        assert status == 409 and "admin" in body["error"], body
        admin = await _new_token(anyone, "first-admin", "admin")
        assert (await anyone.get("/api/gateways"))[0] == 401  # closed from now on
        api = Api(http, svc.api_url, admin)
        status, body = await api.request("DELETE", "/api/tokens/first-admin")
        assert status == 409 and "last admin token" in body["error"], body
        second = await _new_token(api, "second-admin", "admin")
        assert (await api.request("DELETE", "/api/tokens/first-admin"))[0] == 200
        assert (await Api(http, svc.api_url, second).get("/api/whoami"))[0] == 200
        status, doc = await anyone.request("GET", "/openapi.json")
        assert doc["paths"]["/api/gateways"]["get"]["security"] == [{"bearerAuth": []}]


# --- the command log -----------------------------------------------------------------


async def test_the_command_log_names_the_token_that_sent_each_command(
    service: Service, http: aiohttp.ClientSession
) -> None:
    api = Api(http, service.api_url, BOOTSTRAP)
    operator = await _new_token(api, "night-shift", "operator")
    async with gateway(service.ws_url, "GW-T1"):
        status, answer = await Api(http, service.api_url, operator).call(
            "GW-T1", "Reset", {"type": "Soft"}
        )
        assert status == 200, answer
        status, answer = await api.call("GW-T1", "ClearCache", {})
        assert status == 200, answer
    status, log = await api.get("/api/commands", gateway="GW-T1")
    assert status == 200
    assert [(c["action"], c["tokenName"]) for c in log["items"]] == [
        ("ClearCache", "bootstrap"),
        ("Reset", "night-shift"),
    ]
    cli = await _cli(service, "commands", "--gateway", "GW-T1", token=BOOTSTRAP)
    assert cli.returncode == 0, cli.stderr
    header, *rows = cli.stdout.splitlines()
    assert header.split()[-1] == "TOKEN"
    assert [row.split()[-1] for row in rows] == ["bootstrap", "night-shift"]


_OLD_COMMAND = (
    "INSERT INTO commands (id, gateway_id, action, request, sent_at, outcome) "
    "VALUES (1, 'GW-OLD', 'Reset', '{}', '2026-11-23T18:00:00.000Z', 'ok')"
)


async def _database_before_tokens(databases: Databases, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database at schema version 4 (before tokens) holding one command."""
    db = databases.new()
    with monkeypatch.context() as patch:
        if databases.backend == "sqlite":
            conn = sqlite3.connect(db, isolation_level=None)
            patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:4])
            assert migrations.migrate(conn) == [1, 2, 3, 4]
            conn.execute(_OLD_COMMAND)
            conn.close()
        else:
            import asyncpg

            from ntxcp.service import pg_schema

            patch.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:2])
            pg = await asyncpg.connect(db)
            try:
                assert await pg_schema.migrate(pg) == [3, 4]
                await pg.execute(_OLD_COMMAND)
            finally:
                await pg.close()
    return db


async def test_commands_logged_before_tokens_had_names_read_null(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await _database_before_tokens(databases, monkeypatch)
    storage = create_storage(ServiceConfig(db=db))
    await storage.start()
    try:
        items = await storage.read(queries.commands, None, None, 10)
        assert [(c["gatewayId"], c["tokenName"]) for c in items] == [("GW-OLD", None)]
        assert await storage.fetch("SELECT count(*) FROM api_tokens") == [(0,)]
    finally:
        await storage.close()


# --- the command line ------------------------------------------------------------------


async def _cli(service: Service, *args: str, token: str | None = None) -> Any:
    command = [sys.executable, "-m", "ntxcp", *args, "--api", service.api_url]
    if token is not None:
        command += ["--token", token]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    return _Result(process.returncode or 0, out.decode(), err.decode())


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


async def test_cli_adds_lists_and_revokes_tokens_while_the_service_runs(
    service: Service,
) -> None:
    added = await _cli(service, "tokens", "add", "ci-bot", "--role", "operator", token=BOOTSTRAP)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("ci-bot.") and len(token) > 40
    who = await _cli(service, "whoami", token=token)
    assert (who.returncode, who.stdout.strip()) == (0, "ci-bot (operator)")
    listed = await _cli(service, "tokens", "list", token=BOOTSTRAP)
    assert listed.returncode == 0, listed.stderr
    assert "ci-bot" in listed.stdout and "operator" in listed.stdout
    assert token.partition(".")[2] not in listed.stdout
    # An operator may not manage tokens: exit 1 with the API's message.
    refused = await _cli(service, "tokens", "list", token=token)
    assert refused.returncode == 1 and "needs the admin role" in refused.stderr
    revoked = await _cli(service, "tokens", "revoke", "ci-bot", token=BOOTSTRAP)
    assert (revoked.returncode, revoked.stdout.strip()) == (0, "revoked token ci-bot")
    after = await _cli(service, "whoami", token=token)
    assert after.returncode == 1 and "revoked" in after.stderr
    usage = await _cli(service, "tokens", "add", "x", "--role", "root", token=BOOTSTRAP)
    assert usage.returncode == 2
    await eventually(lambda: service.tokens.tokens["ci-bot"].revoked_at is not None)
