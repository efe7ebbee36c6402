"""Nodes on a NATS server that requires TLS and a password (docs/deployment.md).

The server has a certificate of the test CA and one user. A node given
``--cluster tls://user:password@127.0.0.1:PORT`` and ``SSL_CERT_FILE=<the CA>`` connects
(over TLS, as the server's monitoring shows) and routes commands to another such node.
Without the CA it refuses the server's certificate, and with a wrong password the server
refuses it: the bus stays down with the reason in ``/healthz`` and the log (never the
password), and the node still serves its gateways (ingest never waits for the bus).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from cluster_helpers import (
    WAIT,
    cluster_database,
    cluster_state,
    health,
    node_apis,
    stopped_at_exit,
    wait_subscribed,
)
from service_helpers import TOKEN, Api, gateway, sample

from ntxcp.localservers.nats import NatsServer
from ntxcp.v10 import types as t
from pg_server import PostgresServer
from pki import Pki
from service_process import ServiceProcess
from waiting import eventually

pytestmark = pytest.mark.timeout(180)

USER = "ntxcp"
PASSWORD = "s3cret:/@%"  # reserved URL characters: percent-encoded in the URL


@pytest.fixture(scope="module")
def tls_nats(pki: Pki) -> Iterator[NatsServer]:
    """A NATS server that requires TLS (the test CA's certificate) and the password."""
    server = NatsServer(tls=(pki.server_cert, pki.server_key), user=USER, password=PASSWORD).start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> str:
    return cluster_database(postgres)


def start_tls_node(
    directory: Path, cluster_url: str, db: str, node_id: str, ca: Path | None
) -> ServiceProcess:
    """A node on the bus at ``cluster_url``, trusting ``ca`` (``None``: the system's)."""
    node_dir = directory / node_id
    node_dir.mkdir()
    return ServiceProcess(
        node_dir,
        "--cluster", cluster_url, "--node-id", node_id, "--api-token", TOKEN,
        db=db,
        env={"SSL_CERT_FILE": None if ca is None else str(ca)},
    ).start(timeout=30)  # fmt: skip


async def bus_error(api: Api, fragment: str) -> str:
    """Wait until the node's bus is down with ``fragment`` in its error; the error."""
    seen: dict[str, object] = {}

    async def reached() -> bool:
        bus = (await cluster_state(api))["bus"]
        seen.update(bus)
        return bus["connected"] is False and fragment in str(bus["error"])

    try:
        await eventually(reached, WAIT, what=f"bus error with {fragment!r} at {api.base}")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last: {seen})") from None
    return str(seen["error"])


async def stores_meter_values(node: ServiceProcess, api: Api, gateway_id: str) -> None:
    """A gateway on the node boots and its meter value is stored (read back by the API)."""
    async with gateway(node.ws_url, gateway_id) as gw:
        await gw.boot_notification("DX-100")
        now = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
        await gw.meter_values(1, [t.MeterValue(timestamp=now, sampled_value=[sample("7")])])
    status, body = await api.get(f"/api/gateways/{gateway_id}/meter-values")
    assert (status, body["count"]) == (200, 1), body


async def test_nodes_trusting_the_ca_connect_over_tls_and_route_commands(
    tmp_path: Path, tls_nats: NatsServer, database: str, pki: Pki
) -> None:
    url = tls_nats.url_as(USER, PASSWORD)
    assert url.startswith("tls://") and "%40" in url
    a = start_tls_node(tmp_path, url, database, "a", pki.ca_cert)
    b = start_tls_node(tmp_path, url, database, "b", pki.ca_cert)
    with stopped_at_exit(a, b):
        async with node_apis((a, b)) as (api_a, api_b, session):
            async with gateway(a.ws_url, "tls-gw-1") as gw:
                await gw.boot_notification("DX-100")
                await wait_subscribed(api_a, 1)
                status, body = await api_b.call("tls-gw-1", "ClearCache", {})
                assert (status, body) == (200, {"status": "Accepted"}), body
            _, metrics = await api_b.get("/metrics")
            assert "ntxcp_cluster_bus_connected 1" in str(metrics)
            # The server's view: both nodes' connections are TLS.
            async with session.get(tls_nats.monitor_url + "/connz") as response:
                connz = await response.json()
            tls_of = {c.get("name"): c.get("tls_version") for c in connz["connections"]}
            assert tls_of.get("a") and tls_of.get("b"), connz["connections"]


async def test_a_node_without_the_ca_refuses_the_server_and_still_serves_gateways(
    tmp_path: Path, tls_nats: NatsServer, database: str
) -> None:
    node = start_tls_node(tmp_path, tls_nats.url_as(USER, PASSWORD), database, "c", None)
    with stopped_at_exit(node):
        async with aiohttp.ClientSession() as session:
            api = Api(session, node.api_url, TOKEN)
            error = await bus_error(api, "CERTIFICATE_VERIFY_FAILED")
            assert "***" in error and "s3cret" not in str(await health(api))
            await stores_meter_values(node, api, "no-ca-gw-1")
            assert (await cluster_state(api))["bus"]["connected"] is False
    log = node.stderr()
    assert "bus not connected" in log and "CERTIFICATE_VERIFY_FAILED" in log, log
    assert "s3cret" not in log


async def test_a_wrong_password_is_refused(
    tmp_path: Path, tls_nats: NatsServer, database: str, pki: Pki
) -> None:
    url = tls_nats.url_as(USER, "wrong-password")
    node = start_tls_node(tmp_path, url, database, "d", pki.ca_cert)
    with stopped_at_exit(node):
        async with aiohttp.ClientSession() as session:
            api = Api(session, node.api_url, TOKEN)
            await bus_error(api, "")

            def refused() -> bool:
                return "Authorization Violation" in node.stderr()

            await eventually(refused, WAIT, what="the server's refusal in the node's log")
            assert (await cluster_state(api))["bus"]["connected"] is False
            assert "wrong-password" not in str(await health(api))
    assert "wrong-password" not in node.stderr()
