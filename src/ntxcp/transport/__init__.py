"""WebSocket transport of ntxcp 1.0 (spec §1): the only layer that knows the socket library.

It knows text messages, handshakes, TLS and keep-alive; it knows nothing of RPC.
"""

from ntxcp.transport._base import (
    SUBPROTOCOL,
    HandshakeInfo,
    Link,
    LinkHandler,
    Refusal,
    gateway_id_from_path,
    parse_basic_auth,
    valid_gateway_id,
)
from ntxcp.transport._pacing import AdmissionCounts
from ntxcp.transport._picows import PicowsLink, WebSocketServer, connect, listen
from ntxcp.transport.options import (
    ClientOptions,
    ServerOptions,
    client_tls_context,
    server_tls_context,
)

__all__ = [
    "SUBPROTOCOL",
    "AdmissionCounts",
    "ClientOptions",
    "HandshakeInfo",
    "Link",
    "LinkHandler",
    "PicowsLink",
    "Refusal",
    "ServerOptions",
    "WebSocketServer",
    "client_tls_context",
    "connect",
    "gateway_id_from_path",
    "listen",
    "parse_basic_auth",
    "server_tls_context",
    "valid_gateway_id",
]
