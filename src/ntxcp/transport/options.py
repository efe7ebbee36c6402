"""Settings of the WebSocket server and client (spec §1), with the spec's defaults."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field

from ntxcp.transport._base import SUBPROTOCOL
from ntxcp.transport._pacing import DEFAULT_ACCEPT_RATE, DEFAULT_MAX_HANDSHAKES

__all__ = [
    "DEFAULT_ACCEPT_RATE",
    "DEFAULT_MAX_HANDSHAKES",
    "DEFAULT_SEND_BUFFER",
    "ClientOptions",
    "ServerOptions",
    "client_tls_context",
    "server_tls_context",
]

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
"""Largest message accepted, in bytes (spec §1: 1 MiB)."""


DEFAULT_SEND_BUFFER = 64 * 1024
"""Bytes a server connection may have unsent before it stops reading from its peer."""


@dataclass(slots=True)
class ServerOptions:
    """How the control center listens (spec §1).

    Attributes:
        host: address to bind.
        port: TCP port; 0 picks a free one (read it back from the server).
        path: base path; gateways connect to ``<path>/<gatewayId>``.
        ssl: a server TLS context for ``wss://`` (profiles 2 and 3, see
            :func:`server_tls_context`).
        accept_missing_subprotocol: accept clients that offer no subprotocol
            (lenient; default refuse, spec §1).
        ping_interval: seconds of silence from a gateway before a WebSocket ping
            (``None``/0: off).
        ping_timeout: seconds to wait for the pong: one missed makes the gateway
            unresponsive, two in a row close it (see :mod:`ntxcp.transport.keepalive`).
        handshake_timeout: seconds a client has to complete its upgrade request.
        max_message_size: largest message in bytes; larger closes with 1009.
        backlog: listen backlog: connections the kernel holds while accepting is
            paused (see ``max_handshakes``); at least the largest storm expected (Linux
            caps it at ``net.core.somaxconn``).
        max_handshakes: connections whose upgrade is not decided yet (TLS handshake,
            request, authentication) at most; more wait in the backlog (0: no limit).
        accept_rate: connections accepted per second at most; more wait in the
            backlog (0: no limit).
        send_buffer: bytes a connection may have unsent (socket buffer and our own
            buffer each) before we stop reading from its peer; small, so a peer that
            sends but never reads is throttled after a few thousand answers instead
            of after megabytes (``None``: the system's defaults).
    """

    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/ntxcp"
    ssl: ssl.SSLContext | None = None
    accept_missing_subprotocol: bool = False
    ping_interval: float | None = 30.0
    ping_timeout: float = 30.0
    handshake_timeout: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    backlog: int = 16384
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    accept_rate: float = DEFAULT_ACCEPT_RATE
    send_buffer: int | None = DEFAULT_SEND_BUFFER


@dataclass(slots=True)
class ClientOptions:
    """How a gateway connects (spec §1, §6.2).

    Attributes:
        credentials: (gateway id, secret) for HTTP Basic auth (profiles 1 and 2).
        ssl: a client TLS context (custom CA, client certificate for profile 3, see
            :func:`client_tls_context`); default system trust for ``wss://``.
        subprotocols: offered subprotocols (default ``ntxcp1.0``).
        extra_headers: more HTTP headers for the upgrade request.
        connect_timeout: seconds for TCP + TLS + upgrade.
        ping_interval: seconds of silence before a ping (``None``/0: off).
        ping_timeout: seconds to wait for the pong before closing.
        max_message_size: largest message accepted in bytes.
    """

    credentials: tuple[str, str] | None = None
    ssl: ssl.SSLContext | None = None
    subprotocols: tuple[str, ...] = (SUBPROTOCOL,)
    extra_headers: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    ping_interval: float | None = 30.0
    ping_timeout: float = 30.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    def basic_auth_header(self) -> str:
        """The ``Authorization`` header value for :attr:`credentials`."""
        assert self.credentials is not None
        user, password = self.credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def server_tls_context(
    certfile: str, keyfile: str | None = None, *, client_ca: str | None = None
) -> ssl.SSLContext:
    """Build a server TLS context, TLS 1.2 or newer (profile 2).

    Args:
        certfile: PEM server certificate (chain).
        keyfile: PEM private key (when not in ``certfile``).
        client_ca: PEM CA bundle; when given, clients must present a certificate it
            signed (mutual TLS, profile 3).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_cert_chain(context, certfile, keyfile)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls_context(
    cafile: str | None = None, *, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """Build a client TLS context, TLS 1.2 or newer.

    Args:
        cafile: PEM CA bundle to trust (default: the system's).
        certfile: PEM client certificate for mutual TLS (profile 3).
        keyfile: its private key (when not in ``certfile``).
    """
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        _load_cert_chain(context, certfile, keyfile)
    return context


def _load_cert_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None) -> None:
    """Load a certificate and its key, saying which is missing when OpenSSL cannot.

    OpenSSL reports a certificate file without a private key (and no key file given)
    only as ``[SSL] PEM lib``; this says so in words.

    Raises:
        ssl.SSLError: the certificate or key cannot be used (with the reason).
        OSError: a file cannot be read.
    """
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        if keyfile is None and not _holds_private_key(certfile):
            raise _CertificateFileError(
                f"{certfile} holds a certificate but no private key: give the key file "
                "too (--keyfile)"
            ) from exc
        raise


class _CertificateFileError(ssl.SSLError):
    """An ``ssl.SSLError`` whose text is a sentence (``SSLError`` shows its args tuple)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _holds_private_key(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return b"PRIVATE KEY-----" in file.read(1 << 20)
    except OSError:
        return True  # unreadable: the original error says more
