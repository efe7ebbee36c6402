"""Checking gateway passwords without letting strangers slow anyone down (spec §1).

Security profiles 1 and 2 (spec §1) authenticate a gateway with HTTP Basic auth on the
upgrade request, before anything else is known about the peer. A password check costs
one scrypt run (tens of milliseconds of CPU, see :mod:`.passwords`), so an
unauthenticated peer can make the service work by merely connecting. The
:class:`GatewayAuthenticator` keeps that work bounded and uninformative:

* the KDF runs in a small thread pool, never on the event loop, and the upgrade answer
  waits for it (:meth:`ntxcp.ControlCenter.set_async_basic_auth_handler`);
* at most ``max_concurrent`` checks run and ``max_waiting`` more wait; beyond that a
  connection is refused with HTTP 503 at once (the gateway retries after its backoff);
* each source address may fail ``failure_burst`` checks, then one every
  ``60 / failures_per_minute`` seconds; beyond that its checks that would need a KDF
  run are refused with HTTP 429 (a gateway whose password was already verified in
  this process still gets in: that answer comes from the cache, without a KDF run);
* a generated secret (stored as a keyed fast hash, :mod:`.machine_secrets`) is checked
  on the loop in microseconds, without a thread, a queue or the failure limit (no
  online guess has a chance against 256 random bits);
* an unknown or unregistered gateway id, or one without a password, is checked against
  a dummy fast hash, so it costs what a gateway with a generated secret costs: a
  fleet of such gateways cannot be told from unknown ids by the response time. A
  gateway with a secret chosen by a person (scrypt) answers a wrong password tens of
  milliseconds later, so its id can be told apart; such checks are what the failure
  limit counts, which bounds how fast ids can be probed that way.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ntxcp.service.machine_secrets import (
    generate_secret,
    hash_machine_secret,
    is_machine_hash,
    verify_machine_secret,
)
from ntxcp.service.passwords import PasswordVerifier, verify_password
from ntxcp.transport import HandshakeInfo, Refusal

__all__ = [
    "DEFAULT_FAILURES_PER_MINUTE",
    "DEFAULT_FAILURE_BURST",
    "DEFAULT_MAX_WAITING",
    "FailureLimiter",
    "GatewayAuthenticator",
]

DEFAULT_FAILURE_BURST = 20
"""Failed password checks a source address may make before it is slowed down."""

DEFAULT_FAILURES_PER_MINUTE = 20
"""Failed password checks per minute a source address may make after its burst."""

DEFAULT_MAX_WAITING = 256
"""Password checks that may wait for a thread; more are refused with HTTP 503."""

_MAX_ADDRESSES = 10_000
_MAX_PASSWORD_BYTES = 1024


def default_max_concurrent() -> int:
    """Threads for password checks: half the CPUs (at least one), so the loop keeps one."""
    return max(1, (os.cpu_count() or 2) // 2)


class FailureLimiter:
    """A token bucket of failed checks per source address.

    Args:
        burst: failures allowed at once (the bucket's size).
        per_minute: how fast the bucket refills.
        max_addresses: addresses remembered (the least recently failing are forgotten).
        clock: the time source (seconds).
    """

    def __init__(
        self,
        burst: int = DEFAULT_FAILURE_BURST,
        per_minute: float = DEFAULT_FAILURES_PER_MINUTE,
        max_addresses: int = _MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, address: str, now: float) -> float:
        bucket = self._buckets.get(address)
        if bucket is None:
            return float(self.burst)
        tokens, since = bucket
        return min(float(self.burst), tokens + (now - since) * self.rate)

    def allowed(self, address: str) -> bool:
        """Whether ``address`` may make another check that could fail."""
        return self._tokens(address, self._clock()) >= 1.0

    def failed(self, address: str) -> None:
        """Count one failed check of ``address``."""
        now = self._clock()
        self._buckets[address] = (self._tokens(address, now) - 1.0, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class GatewayAuthenticator:
    """Checks Basic-auth passwords of gateways off the event loop, within bounds.

    Args:
        stored_hash: returns the stored hash of a registered gateway with a password,
            else ``None``.
        verifier: the cache of outcomes.
        max_concurrent: KDF runs at the same time (threads).
        max_waiting: checks that may wait for a thread.
        limiter: failed checks per source address.
        on_outcome: told every outcome (``accepted``, ``rejected``, ``rate-limited``,
            ``busy``), e.g. to count it in the metrics.
    """

    def __init__(
        self,
        stored_hash: Callable[[str], str | None],
        verifier: PasswordVerifier | None = None,
        *,
        max_concurrent: int | None = None,
        max_waiting: int = DEFAULT_MAX_WAITING,
        limiter: FailureLimiter | None = None,
        on_outcome: Callable[[str], object] | None = None,
    ) -> None:
        self._stored_hash = stored_hash
        self.verifier = verifier if verifier is not None else PasswordVerifier()
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.max_waiting = max_waiting
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self._executor: ThreadPoolExecutor | None = None
        self._server_key: bytes | None = None
        # A check of an unknown id runs against this, with a key of its own: the same
        # work as a real check, and nothing derived from the server key.
        self._dummy_key = secrets.token_bytes(32)
        self._dummy_hash = hash_machine_secret(self._dummy_key, generate_secret())
        self._pending = 0
        self._on_outcome = on_outcome
        self.counts: dict[str, int] = {}
        """Outcomes so far: ``accepted``, ``rejected``, ``rate-limited``, ``busy``."""
        self.fast_checks = 0
        """Checks answered with the keyed fast hash (generated secrets, unknown ids)."""

    @property
    def pending(self) -> int:
        """Checks running or waiting for a thread now."""
        return self._pending

    async def start(self, server_key: bytes) -> None:
        """Start the threads of the KDF runs.

        Args:
            server_key: the key of generated secrets (:func:`.load_server_key`).
        """
        self._server_key = server_key
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_concurrent, "ntxcp-password")

    def close(self) -> None:
        """Stop the threads (checks still waiting are dropped)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    async def __call__(self, gateway_id: str, password: str, handshake: HandshakeInfo) -> bool:
        """Whether ``password`` is the secret of ``gateway_id``.

        Raises:
            Refusal: 429 when the peer's address failed too often, 503 when too many
                checks are already waiting.
        """
        address = handshake.remote_address[0] if handshake.remote_address else ""
        return await self.check(gateway_id, password, address)

    async def check(self, gateway_id: str, password: str, address: str) -> bool:
        """Whether ``password`` is the secret of ``gateway_id``; see :meth:`__call__`."""
        stored = self._stored_hash(gateway_id)
        key = self._server_key
        if key is None or self._executor is None:
            raise Refusal(503, "control center starting")
        if len(password.encode("utf-8", "replace")) > _MAX_PASSWORD_BYTES:
            self._count("rejected")
            return False
        if stored is None or is_machine_hash(stored):
            self.fast_checks += 1
            if stored is None:  # the same work as for a known id, never a match
                verify_machine_secret(self._dummy_key, password, self._dummy_hash)
                outcome = False
            else:
                outcome = verify_machine_secret(key, password, stored)
        else:
            cached = self.verifier.cached(gateway_id, password, stored)
            if cached is None:
                cached = await self._run_kdf(gateway_id, password, stored, address)
            outcome = cached
        self._count("accepted" if outcome else "rejected")
        return outcome

    async def _run_kdf(self, gateway_id: str, password: str, stored: str, address: str) -> bool:
        if not self.limiter.allowed(address):
            self._count("rate-limited")
            raise Refusal(429, "too many failed authentication attempts; retry later")
        if self._pending >= self.max_concurrent + self.max_waiting:
            self._count("busy")
            raise Refusal(503, "too many authentication checks in progress; retry later")
        executor = self._executor
        assert executor is not None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            self.verifier.kdf_runs += 1
            outcome = await loop.run_in_executor(executor, verify_password, password, stored)
        finally:
            self._pending -= 1
        self.verifier.remember(gateway_id, password, stored, outcome)
        if not outcome:
            self.limiter.failed(address)
        return outcome
