"""The service on a PostgreSQL server that requires TLS (docs/deployment.md).

The server has a certificate of the test CA and accepts TCP connections over TLS only.
``--db postgresql://...?sslmode=verify-full&sslrootcert=<the CA>`` connects and stores
a gateway's data; with another CA, a certificate for another name, or without TLS, the
service does not start and says why (exit code 1, the reason on standard error), and a
missing CA file is named. ``verify-ca`` checks the CA only, not the name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from service_helpers import TOKEN, Api, gateway, run_cli, sample

from ntxcp.v10 import types as t
from pg_server import PostgresServer
from pki import Pki, make_pki
from service_process import ServiceProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tls_postgres(pki: Pki) -> Iterator[PostgresServer]:
    """A PostgreSQL server with the test CA's certificate; TCP only over TLS."""
    server = PostgresServer(tls=(pki.server_cert, pki.server_key)).start()
    yield server
    server.remove()


def verify_full(server: PostgresServer, ca: Path) -> str:
    """The server's URL with the node's settings of the deployment guide."""
    return f"{server.url}?sslmode=verify-full&sslrootcert={ca}"


async def refused_start(db: str) -> str:
    """Start the service on ``db``, expecting a refusal; its standard error."""
    result = await asyncio.to_thread(
        run_cli, ["control-center", "--db", db, "--port", "0", "--api-port", "0"]
    )
    assert result.returncode == 1, result
    assert "ready" not in result.stdout, result.stdout
    return result.stderr


async def test_verify_full_with_the_ca_connects_and_stores(
    tmp_path: Path, tls_postgres: PostgresServer, pki: Pki
) -> None:
    db = verify_full(tls_postgres, pki.ca_cert)
    service = ServiceProcess(tmp_path, "--api-token", TOKEN, db=db).start(timeout=30)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, service.api_url, TOKEN)
            async with gateway(service.ws_url, "pg-tls-1") as gw:
                await gw.boot_notification("DX-100")
                now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
                await gw.meter_values(1, [t.MeterValue(timestamp=now, sampled_value=[sample("7")])])
            status, body = await api.get("/api/gateways/pg-tls-1/meter-values")
            assert (status, body["count"]) == (200, 1), body
    finally:
        service.stop()


async def test_a_server_certificate_of_another_ca_is_refused(
    tmp_path: Path, tls_postgres: PostgresServer
) -> None:
    other = make_pki(tmp_path, "another CA")
    stderr = await refused_start(verify_full(tls_postgres, other.ca_cert))
    assert "cannot connect to database" in stderr, stderr
    assert "certificate verify failed" in stderr, stderr


async def test_without_tls_the_server_refuses_the_service(tls_postgres: PostgresServer) -> None:
    # The server takes TCP over TLS only: the successful test above did use TLS.
    stderr = await refused_start(f"{tls_postgres.url}?sslmode=disable")
    assert "cannot connect to database" in stderr, stderr
    assert "no encryption" in stderr, stderr


async def test_a_missing_ca_file_is_named(tmp_path: Path, tls_postgres: PostgresServer) -> None:
    missing = tmp_path / "no-such-ca.pem"
    result = await asyncio.to_thread(
        run_cli,
        ["control-center", "--db", verify_full(tls_postgres, missing), "--port", "0",
         "--api-port", "0"],
    )  # fmt: skip
    assert result.returncode != 0, result
    assert f"--db: sslrootcert: no such file: {missing}" in result.stderr, result.stderr


async def test_verify_full_checks_the_name_and_verify_ca_does_not(tmp_path: Path) -> None:
    elsewhere = make_pki(tmp_path, "name CA", server_names=("db.example",))
    server = PostgresServer(tls=(elsewhere.server_cert, elsewhere.server_key)).start()
    try:
        stderr = await refused_start(verify_full(server, elsewhere.ca_cert))
        assert "cannot connect to database" in stderr, stderr
        assert "mismatch" in stderr, stderr  # "IP address mismatch, certificate is not valid"
        db = f"{server.url}?sslmode=verify-ca&sslrootcert={elsewhere.ca_cert}"
        service = ServiceProcess(tmp_path, db=db).start(timeout=30)
        service.stop()
    finally:
        server.remove()
