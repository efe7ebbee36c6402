"""Password checks of the service under attack (spec §1 profiles 1/2; issue: hostile peers).

The KDF runs in a thread while the event loop serves others; checks are bounded in
number; a source address that fails too often is refused with 429. Generated secrets
are checked with a keyed fast hash on the loop, without a KDF run; unknown ids cost
the same fast check, so timing does not tell them from gateways with generated secrets.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from service_helpers import gateway, until

import ntxcp.service.admission as admission
from ntxcp.service import Service, ServiceConfig
from ntxcp.service.admission import FailureLimiter, GatewayAuthenticator
from ntxcp.service.config import AuthMode
from ntxcp.service.passwords import hash_password

pytestmark = pytest.mark.timeout(60)

HELD = 10.0  # seconds a held KDF run waits at most for the test to release it


class HeldKdf:
    """Replaces the KDF run of the authenticator: waits until released, notes its thread."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[int] = []
        self.real = admission.verify_password

    def __call__(self, password: str, stored: str) -> bool:
        self.threads.append(threading.get_ident())
        self.release.wait(HELD)
        return self.real(password, stored)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service with Basic auth, gateways ``GW-0`` .. ``GW-7`` registered with the
    password ``right`` (chosen by a person: scrypt)."""
    config = ServiceConfig(port=0, api_port=0, db=str(tmp_path / "a.sqlite"), auth=AuthMode.BASIC)
    service = Service(config)
    await service.start()
    stored = await asyncio.to_thread(hash_password, "right")
    for n in range(8):
        await service.storage.set_password(f"GW-{n}", stored)
    try:
        yield service
    finally:
        await service.stop()


async def handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
    """101 for an accepted upgrade, else the refusal's HTTP status."""
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, protocols=("ntxcp1.0",), headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def _status(service: Service, user: str, password: str) -> int:
    return await handshake_status(f"{service.ws_url}/{user}", _basic(user, password))


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) until ``predicate()`` holds."""

    async def holds() -> bool:
        return predicate()

    await until(holds, interval=0.01)


async def test_kdf_runs_in_a_thread_while_the_loop_serves_others(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldKdf()
    monkeypatch.setattr(admission, "verify_password", held)
    attempt = asyncio.ensure_future(_status(service, "GW-1", "guess"))
    await eventually(lambda: len(held.threads) == 1)
    # The check is stuck in its thread; the API and the gateway listener still answer.
    async with aiohttp.ClientSession() as http, http.get(service.api_url + "healthz") as response:
        assert response.status == 200
    assert await handshake_status(f"{service.ws_url}/GW-1") == 401  # no credentials
    assert not attempt.done()
    assert held.threads[0] != threading.get_ident()
    held.release.set()
    assert await attempt == 401
    assert service.metrics.gateway_auth.value(("rejected",)) == 1


async def test_checks_are_bounded(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldKdf()
    monkeypatch.setattr(admission, "verify_password", held)
    authenticator = service.authenticator
    monkeypatch.setattr(authenticator, "max_waiting", 2)
    running = authenticator.max_concurrent
    attempts = [
        asyncio.ensure_future(_status(service, f"GW-{n}", "guess"))
        for n in range(running + authenticator.max_waiting)
    ]
    # Every attempt is waiting and the pool's threads have all entered the KDF (a
    # thread may start a moment after its check was counted as pending).
    await eventually(
        lambda: authenticator.pending == len(attempts) and len(held.threads) == running
    )
    assert await _status(service, "GW-7", "guess") == 503  # at once, no KDF run
    assert len(held.threads) == running
    held.release.set()
    assert await asyncio.gather(*attempts) == [401] * len(attempts)
    assert service.metrics.gateway_auth.value(("busy",)) == 1


async def test_failed_attempts_are_rate_limited_per_address(service: Service) -> None:
    service.authenticator.limiter = FailureLimiter(burst=3, per_minute=0.01)
    async with gateway(service.ws_url, "GW-1", password="right") as gw:
        assert gw.is_connected  # verified once: remembered
    for n in range(3):
        assert await _status(service, "GW-1", f"guess {n}") == 401
    assert await _status(service, "GW-1", "guess 3") == 429
    # An unknown id costs a fast check, which needs no limit: refused, not slowed down.
    assert await _status(service, "GW-unknown", "guess") == 401
    runs = service.verifier.kdf_runs
    # The gateway that knows its password still gets in (answered from the cache) ...
    async with gateway(service.ws_url, "GW-1", password="right") as gw:
        assert gw.is_connected
    # ... and a guess already made is answered from the cache too, without a KDF run.
    assert await _status(service, "GW-1", "guess 0") == 401
    assert service.verifier.kdf_runs == runs
    assert service.metrics.gateway_auth.value(("rate-limited",)) == 1
    assert 'ntxcp_gateway_auth_total{outcome="rate-limited"} 1' in service.metrics.render()


async def test_unknown_ids_cost_what_a_generated_secret_costs(service: Service) -> None:
    secret, stored = service.new_generated_secret()
    await service.storage.set_password("GW-gen", stored)
    await service.storage.register_gateway("GW-nopassword", None)
    service.storage.ensure_gateway("GW-seen")  # known, never registered
    authenticator, verifier = service.authenticator, service.verifier
    for user in ("GW-gen", "GW-unknown", "GW-nopassword", "GW-seen"):
        runs, fast = verifier.kdf_runs, authenticator.fast_checks
        assert await _status(service, user, "guess") == 401
        assert (verifier.kdf_runs, authenticator.fast_checks) == (runs, fast + 1), user
    # A password chosen by a person still costs its KDF run.
    runs = verifier.kdf_runs
    assert await _status(service, "GW-1", "guess") == 401
    assert verifier.kdf_runs == runs + 1
    assert await _status(service, "GW-1", "right") == 101
    assert await _status(service, "GW-gen", secret) == 101
    # Admitted connections are counted: their rate is the admission rate.
    await eventually(lambda: service.metrics.gateway_connections.value(()) == 2)
    assert "ntxcp_gateway_connections_total 2" in service.metrics.render()


async def test_a_generated_secret_is_checked_on_the_loop_without_a_thread(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldKdf()
    monkeypatch.setattr(admission, "verify_password", held)
    monkeypatch.setattr(service.authenticator, "max_waiting", 0)
    secret, stored = service.new_generated_secret()
    await service.storage.set_password("GW-gen", stored)
    # Every KDF thread is busy and nothing may wait: a scrypt check would get 503.
    stuck = [
        asyncio.ensure_future(_status(service, f"GW-{n}", "guess"))
        for n in range(service.authenticator.max_concurrent)
    ]
    await eventually(lambda: len(held.threads) == len(stuck))
    assert await _status(service, "GW-1", "guess") == 503
    async with gateway(service.ws_url, "GW-gen", password=secret) as gw:
        assert gw.is_connected
    wrong = secret[:-1] + ("B" if secret.endswith("A") else "A")  # never the secret itself
    assert await _status(service, "GW-gen", wrong) == 401
    assert len(held.threads) == len(stuck)  # no KDF ran for the generated secret
    held.release.set()
    assert await asyncio.gather(*stuck) == [401] * len(stuck)


def test_failure_limiter_refills_per_address() -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    limiter = FailureLimiter(burst=2, per_minute=6, max_addresses=2, clock=clock)
    assert limiter.allowed("a")
    limiter.failed("a")
    limiter.failed("a")
    assert not limiter.allowed("a")
    assert limiter.allowed("b")  # another address has its own bucket
    now[0] = 9.9
    assert not limiter.allowed("a")
    now[0] = 10.0  # 6 per minute: one more after 10 s
    assert limiter.allowed("a")
    limiter.failed("b")
    limiter.failed("c")  # a third address: the one that failed longest ago is forgotten
    assert len(limiter) == 2
    assert limiter.allowed("a")


async def test_authenticator_refuses_before_start() -> None:
    authenticator = GatewayAuthenticator(lambda gateway_id: None)
    with pytest.raises(Exception) as refused:
        await authenticator.check("GW-1", "x", "127.0.0.1")
    assert getattr(refused.value, "status", None) == 503
    await authenticator.start(b"k" * 32)
    try:
        assert not await authenticator.check("GW-1", "x" * 2000, "127.0.0.1")  # too long
        assert authenticator.verifier.kdf_runs == 0
    finally:
        authenticator.close()
