"""Generated gateway secrets: a keyed fast hash checked in microseconds (spec §1).

Security profiles 1 and 2 (spec §1, as in OCPP 1.6-J) authenticate a gateway with HTTP
Basic auth. The secret is configured into a machine, not remembered by a person, so
the control center can generate it: 32 random bytes (256 bits), written as URL-safe
Base64 text. No guess has a chance against such a secret, so a slow KDF adds no
protection and only costs CPU when a whole fleet reconnects at once. A generated secret
is stored as::

    hmac-sha256$<salt, base64>$<HMAC-SHA-256(server key, salt + secret), base64>

The server key (32 random bytes) lives in a file beside the database, not in it: a copy
of the database alone does not even let one test a guess. :func:`load_server_key`
creates it at first start, readable by its owner only. A check is one HMAC and a
constant-time comparison: a few microseconds, on the event loop, without threads.
Secrets chosen by a person keep the slow KDF of :mod:`.passwords`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "MIN_SECRET_CHARS",
    "SCHEME",
    "ServerKeyError",
    "generate_secret",
    "hash_machine_secret",
    "is_machine_hash",
    "load_server_key",
    "verify_machine_secret",
]

SCHEME = "hmac-sha256"
_PREFIX = SCHEME + "$"
_SECRET_BYTES = 32
_KEY_BYTES = 32
_SALT_BYTES = 16
MIN_SECRET_CHARS = 22
"""Shortest secret stored with the fast hash: 22 Base64 characters carry 128 bits."""
_MAX_SECRET_BYTES = 1024


class ServerKeyError(Exception):
    """The server key file cannot be read or created; the message says why."""


def generate_secret() -> str:
    """A new gateway secret: 256 random bits as 43 URL-safe Base64 characters."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _mac(key: bytes, salt: bytes, secret: str) -> bytes:
    return hmac.new(key, salt + secret.encode("utf-8"), hashlib.sha256).digest()


def hash_machine_secret(key: bytes, secret: str) -> str:
    """The stored form of a machine secret (see the module text).

    Args:
        key: the server key (:func:`load_server_key`).
        secret: the secret, at least :data:`MIN_SECRET_CHARS` characters.

    Raises:
        ValueError: the secret is too short or longer than 1024 UTF-8 bytes.
    """
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"a machine secret has at least {MIN_SECRET_CHARS} characters")
    if len(secret.encode("utf-8")) > _MAX_SECRET_BYTES:
        raise ValueError(f"secret longer than {_MAX_SECRET_BYTES} bytes")
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"{_PREFIX}{_b64(salt)}${_b64(_mac(key, salt, secret))}"


def is_machine_hash(stored: str) -> bool:
    """Whether ``stored`` was made by :func:`hash_machine_secret`."""
    return stored.startswith(_PREFIX)


def verify_machine_secret(key: bytes, secret: str, stored: str) -> bool:
    """Check a presented secret against its stored form (constant-time comparison).

    Returns:
        Whether it matches; ``False`` for a malformed stored form.
    """
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _mac(key, base64.b64decode(salt, validate=True), secret)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load_server_key(path: str | Path) -> bytes:
    """Read the server key, creating it (owner read/write only) when it does not exist.

    Args:
        path: the key file.

    Returns:
        The key's 32 bytes.

    Raises:
        ServerKeyError: the file cannot be created or read, has the wrong size, or can be
            read by other users.
    """
    path = Path(path)
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.parent.is_dir():  # the key is there already
            fd = -1
        else:
            raise ServerKeyError(f"cannot create the server key {path}: not a directory") from None
    except OSError as exc:
        raise ServerKeyError(f"cannot create the server key {path}: {exc.strerror}") from None
    if fd >= 0:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(_KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as exc:
        raise ServerKeyError(f"cannot read the server key {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServerKeyError(f"the server key {path} can be read by other users: chmod 600 {path}")
    if len(key) != _KEY_BYTES:
        raise ServerKeyError(f"the server key {path} is not {_KEY_BYTES} bytes long")
    return key
