"""The transport's small interface: what the endpoints see of a WebSocket (spec §1).

The endpoints never import the WebSocket library. They get a :class:`Link` per
connection, implement :class:`LinkHandler` to receive whole text messages, and see a
connection attempt as a :class:`HandshakeInfo` that they may refuse with
:class:`Refusal` before the upgrade.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

__all__ = [
    "SUBPROTOCOL",
    "HandshakeInfo",
    "Link",
    "LinkHandler",
    "Refusal",
    "detached",
    "gateway_id_from_path",
    "parse_basic_auth",
    "valid_gateway_id",
]

SUBPROTOCOL = "ntxcp1.0"
"""The WebSocket subprotocol of ntxcp 1.0 (spec §1)."""

# spec §1: 1..48 printable ASCII characters, no "/".
_GATEWAY_ID = re.compile(r"[\x21-\x2e\x30-\x7e ]{1,48}")


def valid_gateway_id(gateway_id: str) -> bool:
    """Whether ``gateway_id`` is a valid gateway id (spec §1)."""
    return _GATEWAY_ID.fullmatch(gateway_id) is not None


def gateway_id_from_path(path: str, base_path: str) -> str | None:
    """Extract the percent-decoded gateway id from a request path (spec §1).

    Args:
        path: the request target, e.g. ``/ntxcp/GW%2D1?x=1``.
        base_path: the configured base path, e.g. ``/ntxcp``.

    Returns:
        The gateway id (possibly invalid, check with :func:`valid_gateway_id`), or
        ``None`` when the path is not ``<base_path>/<one segment>``.
    """
    target = path.split("?", 1)[0]
    prefix = base_path.rstrip("/") + "/"
    if not target.startswith(prefix):
        return None
    segment = target[len(prefix) :]
    if "/" in segment:
        return None
    return unquote(segment, errors="strict") if "%" in segment else segment


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Decode an ``Authorization: Basic ...`` header into (username, password)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class Refusal(Exception):
    """Raised by an accept hook to refuse a connection before the upgrade (spec §1).

    Attributes:
        status: the HTTP status to answer (400, 401, 404, 409, ...).
        reason: a short text sent as the response body and reported.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {reason}")


def detached(refusal: Refusal) -> Refusal:
    """The same refusal as a new exception, without traceback or context.

    What keeps a refusal beyond the handler that caught it, or raises it again, takes
    this one: a traceback holds the frames it passed through, which hold the
    connection's objects, which hold the refusal — a cycle per refused connection,
    left for a full garbage collection (see service/memory.py).
    """
    return Refusal(refusal.status, refusal.reason)


@dataclass(frozen=True, slots=True)
class HandshakeInfo:
    """A WebSocket upgrade request, as the endpoints see it.

    Attributes:
        gateway_id: the percent-decoded last path segment (spec §1).
        path: the request path.
        headers: the request headers (case-insensitive mapping).
        remote_address: the peer's (host, port), when known.
        subprotocol: the subprotocol that will be answered (``None`` for a lenient
            connection that offered none).
        credentials: (username, password) from HTTP Basic auth, if sent (profile 1/2).
        tls: whether the connection is TLS (profiles 2/3).
        peer_certificate: the client certificate (``ssl.SSLSocket.getpeercert()``
            form) under mutual TLS (profile 3), else ``None``.
    """

    gateway_id: str
    path: str
    headers: Mapping[str, str]
    remote_address: tuple[str, int] | None = None
    subprotocol: str | None = SUBPROTOCOL
    credentials: tuple[str, str] | None = None
    tls: bool = False
    peer_certificate: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def certificate_common_name(self) -> str | None:
        """The CN of the client certificate's subject, if any (profile 3)."""
        if not self.peer_certificate:
            return None
        for rdn in self.peer_certificate.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None


class Link(Protocol):
    """One open WebSocket connection."""

    @property
    def is_open(self) -> bool:
        """Whether frames can still be sent."""
        ...

    def send(self, data: bytes) -> None:
        """Send one text message (UTF-8 bytes); never blocks."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code``; idempotent."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        ...


class LinkHandler(Protocol):
    """What the transport calls for one connection."""

    def on_open(self, link: Link) -> None:
        """The upgrade completed."""
        ...

    def on_message(self, data: bytes) -> None:
        """A whole text message arrived (fragments already joined)."""
        ...

    def on_close(self, code: int, reason: str) -> None:
        """The connection is gone; ``code`` is 1006 when no close frame arrived."""
        ...

    def on_responsive(self, answering: bool) -> None:
        """Server side: the peer missed a pong (``False``) or was heard again (``True``).

        See :mod:`ntxcp.transport.keepalive` for the timeline.
        """
        ...
