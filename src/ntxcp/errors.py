"""Error codes and the exception hierarchy of ntxcp.

This module is a leaf: every other layer imports it, it imports nothing of the
package. Every exception the library raises to an application derives from
:class:`NtxcpError`.

Hierarchy::

    NtxcpError
    ├── CallError                 the peer (or a local check) answered with an errorCode
    │   └── PayloadValidationError   a payload broke a rule of spec §4 (has a JSON path)
    ├── CallTimeoutError          no answer within the call's deadline (spec §2.3.2)
    ├── NotConnectedError         the gateway/control center is not connected (spec §6.1)
    │   └── DisconnectedError     the connection closed while the call was pending (§2.3.3)
    ├── QueueFullError            the per-connection FIFO is full (spec §2.3.1)
    ├── HandshakeRefusedError     the server refused the WebSocket upgrade (spec §1)
    └── EndpointError             a problem no caller waits for, on the error stream

A handler raises :class:`CallError` (with any :class:`ErrorCode`) to answer a CALL with
that code (spec §2.1).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "CallError",
    "CallTimeoutError",
    "DisconnectedError",
    "EndpointError",
    "ErrorCode",
    "ErrorKind",
    "HandshakeRefusedError",
    "NotConnectedError",
    "NtxcpError",
    "PayloadValidationError",
    "QueueFullError",
    "parse_error_code",
]


class ErrorCode(StrEnum):
    """The ``errorCode`` values of a CALLERROR (spec §2.1), spelled as senders write them."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


# spec §2.1: variants found in the field, accepted on receipt and mapped to the nearest code.
_SPELLING_VARIANTS: dict[str, ErrorCode] = {
    "OccurenceConstraintViolation": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "FormatViolation": ErrorCode.FORMATION_VIOLATION,
    "MessageTypeNotSupported": ErrorCode.NOT_SUPPORTED,
    "RpcFrameworkError": ErrorCode.GENERIC_ERROR,
}
_BY_TEXT: dict[str, ErrorCode] = {code.value: code for code in ErrorCode} | _SPELLING_VARIANTS


def parse_error_code(text: str) -> ErrorCode | None:
    """Map a received ``errorCode`` to an :class:`ErrorCode` (spec §2.1).

    Args:
        text: the code exactly as it arrived on the wire.

    Returns:
        The code, the nearest code for a known spelling variant, or ``None`` when the
        text is unknown (the caller then reports ``GenericError`` with the original text).
    """
    return _BY_TEXT.get(text)


class NtxcpError(Exception):
    """Base class of every error raised by ntxcp."""


class CallError(NtxcpError):
    """A CALL ended in a CALLERROR, or a handler wants to answer with one.

    Raise it from a handler to answer the peer with ``code`` (spec §2.1); catch it around
    a request to see what the peer answered.

    Attributes:
        code: the error code.
        description: the ``errorDescription`` text (may be empty).
        details: the ``errorDetails`` object (``{}`` when there is nothing to say).
    """

    def __init__(
        self,
        code: ErrorCode | str,
        description: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.description = description
        self.details: dict[str, Any] = {} if details is None else details
        super().__init__(f"{self.code.value}: {description}" if description else self.code.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.description!r}, {self.details!r})"


class PayloadValidationError(CallError):
    """A payload broke a constraint of spec §4.

    Attributes:
        path: JSON path of the offending field, e.g. ``meterValue[0].sampledValue``
            (empty for the payload as a whole).
    """

    def __init__(self, code: ErrorCode, path: str, message: str) -> None:
        self.path = path
        description = f"{message} at '{path}'" if path else message
        super().__init__(code, description)


class CallTimeoutError(NtxcpError, TimeoutError):
    """A CALL was not answered within its deadline (spec §2.3.2).

    Attributes:
        queued: ``True`` for a store-and-forward message that is still queued and
            will be delivered later with the same ``unique_id`` (spec §6.2): do not
            send it again.
    """

    def __init__(
        self, action: str, unique_id: str, timeout: float, *, queued: bool = False
    ) -> None:
        self.action = action
        self.unique_id = unique_id
        self.timeout = timeout
        self.queued = queued
        if queued:  # store-and-forward (spec §6.2): not lost, only late
            message = (
                f"{action} (id {unique_id}) not delivered within {timeout:g} s; it stays queued"
            )
        else:
            message = f"{action} (id {unique_id}) not answered within {timeout:g} s"
        super().__init__(message)


class NotConnectedError(NtxcpError, ConnectionError):
    """The peer is not connected, so the request was not sent (spec §6.1)."""


class DisconnectedError(NotConnectedError):
    """The connection closed while the CALL was pending or queued (spec §2.3.3)."""


class QueueFullError(NtxcpError):
    """The connection's FIFO of waiting CALLs is full (spec §2.3.1)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(f"request queue full ({capacity} waiting)")


class HandshakeRefusedError(NtxcpError, ConnectionError):
    """The server refused the WebSocket upgrade with an HTTP status (spec §1).

    Attributes:
        status: the HTTP status code (0 when the refusal was not an HTTP answer, e.g. a
            missing subprotocol in a 101 response).
        reason: the reason text or body sent by the server.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"handshake refused: HTTP {status} {reason}".rstrip())

    @property
    def permanent(self) -> bool:
        """Whether retrying soon cannot help (400 subprotocol/id refused, 401, 403, 404)."""
        return self.status in (0, 400, 401, 403, 404)


class ErrorKind(StrEnum):
    """What an :class:`EndpointError` on the error stream reports."""

    BAD_MESSAGE = "bad-message"
    """A received message broke a rule of spec §2.2."""
    BAD_MESSAGE_LIMIT = "bad-message-limit"
    """Too many bad messages per minute: the connection closes (spec §2.2 rule 7)."""
    UNMATCHED_RESPONSE = "unmatched-response"
    """A response matched no outstanding CALL (late, or unknown id; rule 5)."""
    HANDLER_ERROR = "handler-error"
    """An application handler raised something other than a CallError."""
    INVALID_CONFIRMATION = "invalid-confirmation"
    """A handler returned a confirmation that is not valid; InternalError was sent."""
    INBOUND_LIMIT = "inbound-limit"
    """A CALL was refused: too many CALLs wait for their answers already."""
    HANDSHAKE_REFUSED = "handshake-refused"
    """An upgrade was refused (server side), or refused for good (gateway side)."""
    CONNECTION_ERROR = "connection-error"
    """A connection attempt failed (the gateway retries)."""
    RECONNECT_ABANDONED = "reconnect-abandoned"
    """The gateway gave up reconnecting (``backoff.max_attempts``)."""
    BOOT_FAILED = "boot-failed"
    """The lifecycle's BootNotification failed; it is sent again."""
    HEARTBEAT_FAILED = "heartbeat-failed"
    """A lifecycle Heartbeat failed."""
    LIFECYCLE_ERROR = "lifecycle-error"
    """The lifecycle task met an unexpected error."""
    DELIVERY_RETRY = "delivery-retry"
    """A stored message was not answered in time; it is sent again (spec §6.2)."""
    DEAD_LETTER = "dead-letter"
    """A stored message can never be delivered: moved to the dead letters."""
    FORWARDER_ERROR = "forwarder-error"
    """The outbox could not be read or written; delivery resumes after a pause."""
    TRIGGER_FAILED = "trigger-failed"
    """The message a TriggerMessage asked for could not be sent (spec §4.3)."""


class EndpointError(NtxcpError):
    """A problem reported on an endpoint's error stream (Go API ``Errors()``).

    Attributes:
        gateway_id: the gateway concerned, when known.
        kind: what happened, an :class:`ErrorKind` (a string enum, so
            ``kind == "dead-letter"`` holds too).
        code: the CALLERROR code involved, if any.
        data: the offending message (truncated), if any.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        gateway_id: str | None = None,
        code: ErrorCode | None = None,
        data: str | None = None,
    ) -> None:
        self.kind = kind
        self.gateway_id = gateway_id
        self.code = code
        self.data = data
        where = f"[{gateway_id}] " if gateway_id else ""
        super().__init__(f"{where}{kind}: {message}")
