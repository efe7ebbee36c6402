"""ntxcpj, the RPC layer of ntxcp 1.0 (spec §2): frames and a sans-I/O state machine.

Nothing here does I/O or reads a clock: :class:`RpcConnection` is fed received text and
the current time, and hands back events and frames to write. The asyncio endpoints
(:mod:`ntxcp.endpoints`) drive it.
"""

from ntxcp.rpc.connection import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    Role,
    RpcConnection,
)
from ntxcp.rpc.events import (
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    Event,
    FrameInfo,
    OutgoingCall,
    UnmatchedResponse,
)
from ntxcp.rpc.frames import MessageType

__all__ = [
    "DEFAULT_BAD_MESSAGE_LIMIT",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_QUEUE_CAPACITY",
    "BadMessage",
    "BadMessageLimitExceeded",
    "CallAnswered",
    "CallFailed",
    "CallReceived",
    "Event",
    "FrameInfo",
    "MessageType",
    "OutgoingCall",
    "Role",
    "RpcConnection",
    "UnmatchedResponse",
]
