"""Named API tokens with roles: who may read, who may send commands, who may administer.

Three roles, each allowing what the one before it allows:

* ``read-only``: every list and detail (gateways, statuses, meter values, messages,
  commands, events);
* ``operator``: also the C→G requests (``POST /api/gateways/{id}/calls/{Action}``);
* ``admin``: everything, including registration, removal, passwords, imports and the
  tokens themselves.

Which role each route needs is declared once, in
:data:`ntxcp.service.api_contract.REQUIRED_ROLES`.

A token is ``<name>.<secret>``: the name says who sent a request (the command log
records it), the secret is 256 random bits (:func:`.machine_secrets.generate_secret`).
Only the keyed fast hash of the secret is stored (HMAC-SHA-256 with the server key,
:mod:`.machine_secrets`): a secret with that much entropy needs no slow KDF, and a
check costs microseconds. An unknown name is checked against a dummy hash, so the time
of a refusal does not tell an unknown name from a wrong secret.

``--api-token`` stays the ``bootstrap`` admin token (compared in constant time, never
stored). Without ``--api-token`` and before the first token is created, the API is
open (it then listens on loopback only, see :class:`~.config.ServiceConfig`): every
request acts as an admin without a name. Once a token exists (revoked or not), every
``/api`` request needs one; the first token must therefore be an admin token, and the
last active admin token cannot be revoked while no ``--api-token`` is configured
(either would lock every administrator out of the running service).

The tokens are kept in memory (loaded at start-up, changed through
:class:`TokenRegistry`), so a check never waits for the database. Control-center
processes sharing one PostgreSQL database read the table again every
:data:`REFRESH_INTERVAL` seconds, so a token created or revoked through one of them is
known to the others within that time. The time a token was last used is written at
most once a minute per token (:data:`LAST_USED_RESOLUTION`).
"""

from __future__ import annotations

import enum
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ntxcp.service.machine_secrets import (
    generate_secret,
    hash_machine_secret,
    verify_machine_secret,
)

if TYPE_CHECKING:
    from ntxcp.service.backend import StorageBackend

__all__ = [
    "BOOTSTRAP",
    "LAST_USED_RESOLUTION",
    "NAME_PATTERN",
    "REFRESH_INTERVAL",
    "ApiToken",
    "Principal",
    "Role",
    "TokenError",
    "TokenRegistry",
]

BOOTSTRAP: Final = "bootstrap"
"""The name of the ``--api-token`` admin token (reserved: no stored token has it)."""
NAME_PATTERN: Final = "^[A-Za-z0-9_-]{1,64}$"
"""A token name: 1..64 letters, digits, ``_`` or ``-`` (no ``.``: it ends the name)."""
_NAME = re.compile(NAME_PATTERN.strip("^$"))
LAST_USED_RESOLUTION: Final = 60.0
"""Seconds: a token's last use is written when the stored one is older than this."""
REFRESH_INTERVAL: Final = 2.0
"""Seconds between two reads of the tokens other processes sharing a PostgreSQL database
created or revoked (:meth:`TokenRegistry.refresh`)."""

# The stored tokens, on both backends (PostgreSQL numbers the ``?`` placeholders).
SELECT_TOKENS = (
    "SELECT name, role, secret_hash, created_at, last_used_at, revoked_at FROM api_tokens"
)
INSERT_TOKEN = "INSERT INTO api_tokens (name, role, secret_hash, created_at) VALUES (?, ?, ?, ?)"
REVOKE_TOKEN = "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"
TOUCH_TOKEN = "UPDATE api_tokens SET last_used_at = ? WHERE name = ?"


class Role(enum.StrEnum):
    """What a token may do; each role allows what the roles before it allow."""

    READ_ONLY = "read-only"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether a token of this role may use a route that needs ``needed``."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class TokenError(Exception):
    """A token cannot be created or revoked; ``status`` is the HTTP answer (409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class ApiToken:
    """A stored token (never its secret).

    Attributes:
        name: the unique name (:data:`NAME_PATTERN`).
        role: what it may do.
        secret_hash: the keyed fast hash of its secret (:mod:`.machine_secrets`).
        created_at: when it was created (spec §3 date-time).
        last_used_at: when it was last used, to :data:`LAST_USED_RESOLUTION`.
        revoked_at: when it was revoked (``None``: it is active).
    """

    name: str
    role: Role
    secret_hash: str
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None

    def public(self) -> dict[str, Any]:
        """What the API shows of the token (never the secret nor its hash)."""
        return {
            "name": self.name,
            "role": self.role.value,
            "createdAt": self.created_at,
            "lastUsedAt": self.last_used_at,
            "revokedAt": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request.

    Attributes:
        name: the token's name (``None``: the open API, no token).
        role: what it may do.
    """

    name: str | None
    role: Role


class TokenRegistry:
    """The API tokens of a running service: checks, creation, revocation.

    Args:
        storage: the database (the ``api_tokens`` table).
        bootstrap: the ``--api-token`` (``None``: none).
        now: the current time as a spec §3 date-time.
    """

    def __init__(
        self, storage: StorageBackend, bootstrap: str | None, now: Callable[[], str]
    ) -> None:
        self.storage = storage
        self.key = b""
        self._bootstrap = None if bootstrap is None else bootstrap.encode("utf-8")
        self._now = now
        self.tokens: dict[str, ApiToken] = {}
        self._dummy = ""
        self._last_written: dict[str, float] = {}
        self.on_revoke: list[Callable[[str], object]] = []
        """Called with the name of each revoked token (e.g. to end its event streams)."""

    async def load(self, key: bytes) -> None:
        """Read the stored tokens (at start-up).

        Args:
            key: the server key of the keyed hash (:mod:`.machine_secrets`).
        """
        self.key = key
        # A hash no secret matches: an unknown name costs the same check as a known one.
        self._dummy = hash_machine_secret(key, generate_secret())
        self.tokens = {}
        await self.refresh()

    async def refresh(self) -> None:
        """Take in the tokens created or revoked by other processes sharing the database.

        A token revoked elsewhere is refused from now on and its event streams end, as
        if it had been revoked here.
        """
        for name, role, secret_hash, created, last_used, revoked in await self.storage.fetch(
            SELECT_TOKENS
        ):
            token = self.tokens.get(name)
            if token is None:
                self.tokens[name] = ApiToken(
                    name, Role(role), secret_hash, created, last_used, revoked
                )
            elif revoked is not None and token.revoked_at is None:
                token.revoked_at = revoked
                for callback in self.on_revoke:
                    callback(name)

    @property
    def open(self) -> bool:
        """Whether the API needs no token: no ``--api-token`` and no token ever created."""
        return self._bootstrap is None and not self.tokens

    def authenticate(self, credentials: str) -> Principal | None:
        """Who presents these bearer credentials (``None``: nobody, answer 401).

        The work does not depend on which part is wrong: the bootstrap comparison and
        one keyed hash are computed for every presented token.
        """
        given = credentials.encode("utf-8", "replace")
        is_bootstrap = self._bootstrap is not None and hmac.compare_digest(given, self._bootstrap)
        name, _, secret = credentials.partition(".")
        token = self.tokens.get(name)
        stored = self._dummy if token is None else token.secret_hash
        matches = verify_machine_secret(self.key, secret, stored)
        if is_bootstrap:
            return Principal(BOOTSTRAP, Role.ADMIN)
        if token is None or not matches or token.revoked_at is not None:
            return None
        self._note_use(token)
        return Principal(token.name, token.role)

    def _note_use(self, token: ApiToken) -> None:
        """Remember the use; write it when the stored time is a minute old or more."""
        now = time.monotonic()
        last = self._last_written.get(token.name)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        self._last_written[token.name] = now
        token.last_used_at = self._now()
        self.storage.post_execute(TOUCH_TOKEN, token.last_used_at, token.name)

    async def add(self, name: str, role: Role) -> tuple[ApiToken, str]:
        """Create a token; returns it and its full ``<name>.<secret>`` (shown once).

        Raises:
            TokenError: the name is invalid (422), taken or reserved (409), or the first
                token of an open API is not an admin token (409).
        """
        if not _NAME.fullmatch(name):
            raise TokenError(
                422, "a token name is 1..64 letters, digits, '_' or '-' (no '.', no spaces)"
            )
        if name == BOOTSTRAP:
            raise TokenError(409, f"{BOOTSTRAP!r} is the name of --api-token: choose another")
        if name in self.tokens:
            raise TokenError(409, f"a token named {name!r} exists already (names are not reused)")
        if self.open and role is not Role.ADMIN:
            raise TokenError(
                409,
                "the first token closes the open API: it must be an admin token, or no "
                "one could manage tokens afterwards",
            )
        secret = generate_secret()
        token = ApiToken(name, role, hash_machine_secret(self.key, secret), self._now())
        self.tokens[name] = token  # before the await: a second add of the name fails
        try:
            await self.storage.execute(
                INSERT_TOKEN, token.name, token.role.value, token.secret_hash, token.created_at
            )
        except BaseException:
            del self.tokens[name]
            raise
        return token, f"{name}.{secret}"

    async def revoke(self, name: str) -> ApiToken | None:
        """Revoke a token at once (``None``: no such token); revoking again changes nothing.

        The token is refused, and its event streams end, before the revocation is
        written; should the write fail (the database away), the token stays refused in
        this process and revoking it again writes it.

        Raises:
            TokenError: it is the last active admin token and no ``--api-token`` is
                configured (409).
        """
        token = self.tokens.get(name)
        if token is None:
            return None
        if token.revoked_at is None:
            self._check_not_last_admin(token)
            token.revoked_at = self._now()
            for callback in self.on_revoke:
                callback(name)
        await self.storage.execute(REVOKE_TOKEN, token.revoked_at, name)
        return token

    def _check_not_last_admin(self, token: ApiToken) -> None:
        """Refuse to revoke the last active admin token while no ``--api-token`` is set.

        Raises:
            TokenError: it is (409).
        """
        if token.role is not Role.ADMIN or self._bootstrap is not None:
            return
        admins = [t for t in self.tokens.values() if t.role is Role.ADMIN and not t.revoked_at]
        if admins == [token]:
            raise TokenError(
                409,
                f"{token.name!r} is the last admin token and no --api-token is set: create "
                "another admin token first",
            )

    def listing(self) -> list[dict[str, Any]]:
        """Every token (active and revoked), by name."""
        return [self.tokens[name].public() for name in sorted(self.tokens)]
