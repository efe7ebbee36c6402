"""ntxcp: the ntxcp 1.0 protocol between Ding.X Gateways and a Ding.X Control Center.

Layers (each imports only those above it)::

    ntxcp.errors      error codes and exceptions
    ntxcp.v10         typed messages, validation, JSON Schemas        (no I/O)
    ntxcp.rpc         ntxcpj frames and the per-connection state machine (no I/O)
    ntxcp.transport   WebSocket server/client (the only code that knows the socket library)
    ntxcp.endpoints   asyncio ControlCenter and Gateway
    ntxcp.sync        a blocking Gateway for programs without asyncio

Logging: the library logs under ``ntxcp.*`` and adds only a ``logging.NullHandler``
to the ``ntxcp`` logger, so an application that configures no logging sees nothing.
Records about one gateway carry its id as ``record.gateway_id`` (the ``extra`` field).
"""

import logging

from ntxcp.endpoints import (
    Backoff,
    CallContext,
    ControlCenter,
    Gateway,
    GatewayConnection,
    current_call,
)
from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    EndpointError,
    ErrorCode,
    ErrorKind,
    HandshakeRefusedError,
    NotConnectedError,
    NtxcpError,
    PayloadValidationError,
    QueueFullError,
)
from ntxcp.transport import HandshakeInfo, client_tls_context, server_tls_context

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Backoff",
    "CallContext",
    "CallError",
    "CallTimeoutError",
    "ControlCenter",
    "DisconnectedError",
    "EndpointError",
    "ErrorCode",
    "ErrorKind",
    "Gateway",
    "GatewayConnection",
    "HandshakeInfo",
    "HandshakeRefusedError",
    "NotConnectedError",
    "NtxcpError",
    "PayloadValidationError",
    "QueueFullError",
    "__version__",
    "client_tls_context",
    "current_call",
    "server_tls_context",
]
