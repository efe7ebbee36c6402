"""Gateway secrets: hashing with a memory-hard KDF and a cached verifier (spec §1).

Security profiles 1 and 2 (spec §1) authenticate a gateway with HTTP Basic auth on the
upgrade request. The control center stores only a salted :func:`hashlib.scrypt` hash of
each secret, in a self-describing text form::

    scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>

A KDF run takes tens of milliseconds of CPU, so the service runs it in a thread
(:mod:`.admission`), never on the event loop. The :class:`PasswordVerifier` remembers
each outcome under an HMAC of the password keyed with a secret that lives only in this
process: the KDF runs at most once per (gateway, password, stored hash) per process,
and no plain password is kept in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict

__all__ = [
    "PasswordVerifier",
    "hash_password",
    "verify_password",
]

_SCHEME = "scrypt"
# n = 2**14, r = 8, p = 1: 16 MiB and about 45 ms per run on the reference machine.
# The parameters are stored with every hash, so they can be raised later without
# invalidating existing hashes.
_LOG2_N = 14
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAX_MEM = 256 * 1024 * 1024
_MAX_PASSWORD_BYTES = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kdf(password: str, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAX_MEM, dklen=length
    )


def hash_password(password: str) -> str:
    """Hash a gateway secret for storage, with a fresh random salt.

    Args:
        password: the secret (any text of at most 1024 UTF-8 bytes).

    Returns:
        The self-describing hash text (``scrypt$...``).

    Raises:
        ValueError: the password is empty or too long.
    """
    if not password:
        raise ValueError("password must not be empty")
    if len(password.encode("utf-8")) > _MAX_PASSWORD_BYTES:
        raise ValueError(f"password longer than {_MAX_PASSWORD_BYTES} bytes")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _kdf(password, salt, _LOG2_N, _R, _P, _HASH_BYTES)
    return f"{_SCHEME}${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash (runs the KDF; constant-time compare).

    Args:
        password: the password presented.
        stored: a hash made by :func:`hash_password`.

    Returns:
        Whether the password matches; ``False`` for a malformed stored hash.
    """
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _kdf(
            password,
            base64.b64decode(salt, validate=True),
            int(log2_n),
            int(r),
            int(p),
            len(expected),
        )
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


class PasswordVerifier:
    """Verifies gateway passwords, running the KDF at most once per combination.

    A verification outcome is cached under
    ``HMAC-SHA256(process secret, gateway id, stored hash, password)``; the process
    secret is random and never leaves memory, so the cache reveals nothing about the
    passwords. A new stored hash (a changed password) gives new keys, so stale
    outcomes are never used.

    Failures are kept apart, in a smaller cache: guesses are free to invent, so they
    must not fill memory nor push the outcomes of real gateways out.

    Args:
        capacity: successful outcomes kept (least recently used forgotten first).
        failure_capacity: failed outcomes kept.
    """

    def __init__(self, capacity: int = 100_000, failure_capacity: int = 4096) -> None:
        self._secret = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._failures: OrderedDict[bytes, bool] = OrderedDict()
        self._capacity = capacity
        self._failure_capacity = failure_capacity
        self.kdf_runs = 0
        """How many times the KDF ran (the rest were answered from the cache)."""

    def _key(self, gateway_id: str, stored: str, password: str) -> bytes:
        message = b"\x00".join(
            (gateway_id.encode("utf-8"), stored.encode("ascii", "replace"), password.encode())
        )
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def verify(self, gateway_id: str, password: str, stored: str | None) -> bool:
        """Whether ``password`` is the secret of ``gateway_id``.

        Args:
            gateway_id: the gateway (the Basic-auth username).
            password: the password presented.
            stored: the gateway's stored hash; ``None`` (no secret set) never matches.

        Returns:
            The outcome, from the cache when this combination was seen before.
        """
        if stored is None or len(password.encode("utf-8", "replace")) > _MAX_PASSWORD_BYTES:
            return False
        cached = self.cached(gateway_id, password, stored)
        if cached is not None:
            return cached
        self.kdf_runs += 1
        outcome = verify_password(password, stored)
        self.remember(gateway_id, password, stored, outcome)
        return outcome

    def cached(self, gateway_id: str, password: str, stored: str) -> bool | None:
        """The remembered outcome of this combination, or ``None`` (a KDF run is needed).

        Args:
            gateway_id: the gateway (the Basic-auth username).
            password: the password presented.
            stored: the stored hash it is checked against.
        """
        key = self._key(gateway_id, stored, password)
        for cache in (self._cache, self._failures):
            cached = cache.get(key)
            if cached is not None:
                cache.move_to_end(key)
                return cached
        return None

    def remember(self, gateway_id: str, password: str, stored: str, outcome: bool) -> None:
        """Keep the outcome of a KDF run for this combination (see :meth:`cached`)."""
        cache, capacity = (
            (self._cache, self._capacity) if outcome else (self._failures, self._failure_capacity)
        )
        cache[self._key(gateway_id, stored, password)] = outcome
        if len(cache) > capacity:
            cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every cached outcome (e.g. after passwords were changed in bulk)."""
        self._cache.clear()
        self._failures.clear()

    def __len__(self) -> int:
        return len(self._cache) + len(self._failures)
