"""What the RPC state machine reports to the I/O layer.

:meth:`ntxcp.rpc.RpcConnection.receive` and :meth:`~ntxcp.rpc.RpcConnection.expire`
return lists of these events; the frames to write are collected separately
(:meth:`~ntxcp.rpc.RpcConnection.data_to_send`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ntxcp.errors import CallError, ErrorCode, NtxcpError
from ntxcp.v10 import AnyRequest, Confirmation
from ntxcp.v10.registry import ActionSpec

__all__ = [
    "BadMessage",
    "BadMessageLimitExceeded",
    "CallAnswered",
    "CallFailed",
    "CallReceived",
    "Event",
    "FrameInfo",
    "OutgoingCall",
    "UnmatchedResponse",
]


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What the RPC layer knows of one frame in or out, for frame taps (spec §2).

    Recorded only when :attr:`~ntxcp.rpc.RpcConnection.record_frame_info` is on.

    Attributes:
        message_type: 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR); ``None`` for a
            message whose type cannot be read.
        unique_id: the frame's ``uniqueId``, when it can be read.
        action: the CALL's action; for a CALLRESULT or CALLERROR, the action of the
            CALL it answers (``None`` when it answers none this side knows of).
        error_code: a CALLERROR's error code, as written in the frame.
    """

    message_type: int | None
    unique_id: str | None
    action: str | None
    error_code: str | None = None


class OutgoingCall:
    """A CALL this endpoint sends (queued, in flight or finished).

    Attributes:
        unique_id: the CALL's id.
        request: the typed request.
        frame: the encoded CALL frame.
        deadline: time (same clock as ``now``) after which it fails with a timeout.
        timeout: the timeout it was given, in seconds.
        context: free slot for the I/O layer (e.g. a future and a timer handle).
    """

    __slots__ = ("context", "deadline", "frame", "request", "timeout", "unique_id")

    def __init__(
        self, unique_id: str, request: AnyRequest, frame: bytes, deadline: float, timeout: float
    ) -> None:
        self.unique_id = unique_id
        self.request = request
        self.frame = frame
        self.deadline = deadline
        self.timeout = timeout
        self.context: Any = None

    @property
    def action(self) -> str:
        """The action name of the request."""
        return self.request.ACTION

    def __repr__(self) -> str:
        return f"OutgoingCall({self.action!r}, id={self.unique_id!r})"


@dataclass(frozen=True, slots=True)
class CallReceived:
    """The peer sent a valid CALL for an action this endpoint handles (spec §5).

    Answer it with :meth:`~ntxcp.rpc.RpcConnection.send_result` or
    :meth:`~ntxcp.rpc.RpcConnection.send_error`, in arrival order (spec §2.3.4).

    Attributes:
        unique_id: the CALL's id.
        spec: the action.
        request: the validated request.
    """

    unique_id: str
    spec: ActionSpec
    request: AnyRequest

    def __repr__(self) -> str:
        return f"CallReceived({self.spec.action!r}, id={self.unique_id!r})"


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """An outgoing CALL got a valid CALLRESULT.

    Attributes:
        call: the CALL.
        confirmation: its validated confirmation.
    """

    call: OutgoingCall
    confirmation: Confirmation

    def __repr__(self) -> str:
        return f"CallAnswered({self.call!r})"


@dataclass(frozen=True, slots=True)
class CallFailed:
    """An outgoing CALL failed: CALLERROR, invalid CALLRESULT, timeout or disconnect.

    Attributes:
        call: the CALL.
        error: why it failed.
    """

    call: OutgoingCall
    error: NtxcpError

    def __repr__(self) -> str:
        return f"CallFailed({self.call!r}, {self.error!r})"


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A received message broke a rule of spec §2.2; reported on the error stream.

    Attributes:
        error: what was wrong, as the CALLERROR code and description it earned.
        unique_id: the id the answer used (``"-1"`` when unreadable), or the id of the
            response that was bad.
        answered: whether a CALLERROR was sent back (never for responses, rule 6).
        data: the message as received (truncated to 1 KiB).
    """

    error: CallError
    unique_id: str
    answered: bool
    data: str

    @property
    def code(self) -> ErrorCode:
        """The error code of the problem."""
        return self.error.code

    def __repr__(self) -> str:
        return f"BadMessage({self.error!r}, id={self.unique_id!r}, answered={self.answered})"


@dataclass(frozen=True, slots=True)
class UnmatchedResponse:
    """A CALLRESULT/CALLERROR matched no outstanding CALL and was dropped (rule 5).

    Attributes:
        unique_id: the response's id.
        data: the response as received (truncated to 1 KiB).
    """

    unique_id: str
    data: str

    def __repr__(self) -> str:
        return f"UnmatchedResponse(id={self.unique_id!r})"


@dataclass(frozen=True, slots=True)
class BadMessageLimitExceeded:
    """More bad messages than allowed per minute: close with 1008 (spec §2.2 rule 7).

    Attributes:
        count: bad messages in the last minute.
        limit: the limit per minute.
    """

    count: int
    limit: int

    def __repr__(self) -> str:
        return f"BadMessageLimitExceeded({self.count} > {self.limit}/min)"


Event = (
    CallReceived
    | CallAnswered
    | CallFailed
    | BadMessage
    | UnmatchedResponse
    | BadMessageLimitExceeded
)
