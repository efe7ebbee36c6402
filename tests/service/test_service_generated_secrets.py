"""Generated gateway secrets: printed once, stored as a keyed fast hash (spec §1 profiles 1/2).

The server key is created at first start beside the database (owner-only permissions)
and survives restarts; a gateway with a generated secret connects again after the
control center is killed and restarted; person-chosen passwords keep scrypt.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import Api, ServiceProcess, gateway, run_cli

from databases import BACKENDS, Databases
from ntxcp.errors import HandshakeRefusedError
from ntxcp.service.config import ServiceConfig
from ntxcp.service.machine_secrets import (
    MIN_SECRET_CHARS,
    ServerKeyError,
    generate_secret,
    hash_machine_secret,
    is_machine_hash,
    load_server_key,
    verify_machine_secret,
)

pytestmark = pytest.mark.timeout(120)


def test_the_server_key_is_created_once_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "server.key"
    key = load_server_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_server_key(path) == key  # read, not replaced
    path.chmod(0o640)
    with pytest.raises(ServerKeyError, match="chmod 600"):
        load_server_key(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(ServerKeyError, match="32 bytes"):
        load_server_key(path)
    (tmp_path / "a-file").write_text("")
    for unusable in (tmp_path / "a-file" / "server.key", tmp_path / "a-file" / "x" / "key"):
        with pytest.raises(ServerKeyError, match="cannot create"):
            load_server_key(unusable)


def test_generated_secrets_hash_and_verify() -> None:
    key, other_key = os.urandom(32), os.urandom(32)
    secret = generate_secret()
    assert len(secret) >= MIN_SECRET_CHARS and secret.isascii()
    assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert generate_secret() != secret
    stored = hash_machine_secret(key, secret)
    assert is_machine_hash(stored) and secret not in stored
    assert hash_machine_secret(key, secret) != stored  # salted
    assert verify_machine_secret(key, secret, stored)
    assert not verify_machine_secret(key, secret + "x", stored)
    assert not verify_machine_secret(other_key, secret, stored)  # keyed
    for malformed in ("hmac-sha256$x", "scrypt$a$b", "hmac-sha256$!!$??", ""):
        assert not verify_machine_secret(key, secret, malformed), malformed
    with pytest.raises(ValueError, match="at least"):
        hash_machine_secret(key, "short")
    with pytest.raises(ValueError, match="longer"):
        hash_machine_secret(key, "x" * 1025)


def test_where_the_server_key_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceConfig(db="/data/cc.sqlite").server_key_path() == Path("/data/cc.sqlite.key")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    pg = ServiceConfig(db="postgresql://cc@db/ntxcp")
    assert pg.server_key_path() == tmp_path / "ntxcp" / "server.key"
    pg.server_key_file = "/etc/ntxcp/key"
    assert pg.server_key_path() == Path("/etc/ntxcp/key")


def _cli(service: ServiceProcess, *args: str) -> Any:
    return run_cli([*args, "--api", service.api_url])


def _printed_secret(stdout: str) -> str:
    lines = stdout.strip().splitlines()
    assert "shown once" in lines[0], stdout
    return lines[-1]


async def _refused(url: str, gateway_id: str, password: str) -> int:
    with pytest.raises(HandshakeRefusedError) as refused:
        async with gateway(url, gateway_id, password=password):
            pass
    return refused.value.status


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_generated_secret_from_the_cli_survives_a_restart(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    db = Databases(backend, request, tmp_path).new()
    service = ServiceProcess(tmp_path, "--auth", "basic", db=db).start()
    try:
        added = _cli(service, "gateways", "add", "GW-7", "--generate-password")
        assert added.returncode == 0, added.stderr
        secret = _printed_secret(added.stdout)
        assert len(secret) >= 43
        key_file = Path(db + ".key") if backend == "sqlite" else tmp_path / "state/ntxcp/server.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        async with gateway(service.ws_url, "GW-7", password=secret) as gw:
            await gw.heartbeat()
        wrong = secret[:-1] + ("y" if secret.endswith("x") else "x")  # never the secret
        assert await _refused(service.ws_url, "GW-7", wrong) == 401
        # Killed and started again: the same key, the same secret still admits.
        service.kill()
        service = ServiceProcess(tmp_path, "--auth", "basic", db=db).start()
        async with gateway(service.ws_url, "GW-7", password=secret) as gw:
            await gw.heartbeat()
        # A new generated secret replaces the old one.
        changed = _cli(service, "gateways", "set-password", "GW-7", "--generate-password")
        assert changed.returncode == 0, changed.stderr
        new_secret = _printed_secret(changed.stdout)
        assert new_secret != secret
        assert await _refused(service.ws_url, "GW-7", secret) == 401
        async with gateway(service.ws_url, "GW-7", password=new_secret) as gw:
            await gw.heartbeat()
        # Back to a password chosen by a person (scrypt), then none.
        chosen = _cli(service, "gateways", "set-password", "GW-7", "--password", "right horse")
        assert chosen.returncode == 0 and "shown once" not in chosen.stdout, chosen.stderr
        async with gateway(service.ws_url, "GW-7", password="right horse") as gw:
            await gw.heartbeat()
        cleared = _cli(service, "gateways", "set-password", "GW-7", "--clear")
        assert cleared.returncode == 0, cleared.stderr
        assert await _refused(service.ws_url, "GW-7", "right horse") == 401
        usage = _cli(service, "gateways", "set-password", "GW-7")
        assert usage.returncode == 2 and "--generate-password" in usage.stderr
        both = _cli(service, "gateways", "add", "GW-8", "--password", "p", "--generate-password")
        assert both.returncode == 2 and "not allowed with" in both.stderr
    finally:
        service.kill()


async def test_the_api_answers_a_generated_secret_once(
    service: ServiceProcess, api: Api, http: aiohttp.ClientSession
) -> None:
    status, body = await api.post("/api/gateways", {"id": "gen-1", "generatePassword": True})
    assert status == 201 and body["hasPassword"] is True, body
    secret = body["password"]
    assert len(secret) >= 43
    status, body = await api.get("/api/gateways/gen-1")
    assert status == 200 and "password" not in body
    async with gateway(service.ws_url, "gen-1", password=secret) as gw:
        await gw.heartbeat()  # --auth none: accepted anyway; the registration is the point
    status, body = await api.post(
        "/api/gateways", {"id": "gen-2", "password": "p", "generatePassword": True}
    )
    assert status == 422 and body["path"] == "generatePassword", body
    status, body = await api.post("/api/gateways", {"id": "gen-2", "generatePassword": "yes"})
    assert status == 422 and body["path"] == "generatePassword", body
    status, body = await api.request(
        "PUT", "/api/gateways/gen-1/password", json={"generatePassword": True}
    )
    assert status == 200 and body["hasPassword"] is True and body["password"] != secret
    status, body = await api.request("PUT", "/api/gateways/gen-1/password", json={})
    assert status == 200 and body == {"gatewayId": "gen-1", "hasPassword": False}
    status, body = await api.request(
        "PUT", "/api/gateways/nobody/password", json={"generatePassword": True}
    )
    assert status == 404
    status, body = await api.request("PUT", "/api/gateways/gen-1/password", data="{oops")
    assert status == 400
