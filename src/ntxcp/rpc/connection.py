"""The ntxcpj state machine of one connection, without I/O and without a clock.

Feed it every text message received (:meth:`RpcConnection.receive`), ask it to send
CALLs (:meth:`RpcConnection.send_call`) and answers (:meth:`RpcConnection.send_result`,
:meth:`RpcConnection.send_error`), and tell it the time when a deadline passes
(:meth:`RpcConnection.expire`). It returns :mod:`events <ntxcp.rpc.events>` and
collects the frames to write (:meth:`RpcConnection.data_to_send`).

Every receiving rule of spec §2.2 is decided in :meth:`RpcConnection.receive` and the
helpers it calls; every sending rule of §2.3 in the ``send_*``/``expire``/``close``
methods.

Receiving, in one table (spec §2.2)::

    message                                   answer                          event
    ---------------------------------------   -----------------------------   ---------------
    not JSON / not an array / bad type id     [4, id|"-1", FormationViolation] BadMessage
    CALL with bad layout (rule 2)             [4, id|"-1", FormationViolation] BadMessage
    CALL, unknown action (rule 3)             [4, id, NotImplemented]          BadMessage
    CALL, action not handled here (rule 3)    [4, id, NotSupported]            BadMessage
    CALL, invalid payload (rule 4)            [4, id, <constraint code>]       BadMessage
    CALL, valid                               (the application answers)        CallReceived
    CALLRESULT/CALLERROR, unknown id (rule 5) none                             UnmatchedResponse
    CALLRESULT, invalid payload (rule 6)      none                             CallFailed+BadMessage
    CALLRESULT, valid                         none                             CallAnswered
    CALLERROR                                 none                             CallFailed
    malformed CALLRESULT/CALLERROR            none                             CallFailed|Unmatched
                                                                               +BadMessage
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from enum import StrEnum
from typing import Any

import msgspec

from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    ErrorCode,
    NotConnectedError,
    PayloadValidationError,
    QueueFullError,
    parse_error_code,
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
from ntxcp.rpc.frames import (
    MAX_UNIQUE_ID_LENGTH,
    UNKNOWN_ID,
    CallErrorFrame,
    CallFrame,
    CallResultFrame,
    MessageType,
    decode_frame,
    encode_call,
    encode_error,
    encode_result,
    is_json_object,
    new_unique_id,
)
from ntxcp.v10 import AnyRequest, Confirmation, Direction, Profile
from ntxcp.v10.codec import DECODE_ERRORS, decode_payload, encode_payload
from ntxcp.v10.registry import ACTIONS, ActionSpec

__all__ = [
    "DEFAULT_BAD_MESSAGE_LIMIT",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_QUEUE_CAPACITY",
    "Role",
    "RpcConnection",
]

DEFAULT_CALL_TIMEOUT = 30.0
"""Seconds a CALL may stay unanswered (spec §2.3.2)."""

DEFAULT_QUEUE_CAPACITY = 1000
"""Requests that may wait behind the CALL in flight (spec §2.3.1)."""

DEFAULT_BAD_MESSAGE_LIMIT = 50
"""Bad messages per minute tolerated before closing (spec §2.2 rule 7)."""

_WINDOW = 60.0
_MAX_REPORTED_DATA = 1024
_NOT_JSON: Any = object()  # unlike None, never the value of a JSON text


class Role(StrEnum):
    """Which end of the link this connection is; decides the actions it handles (§5)."""

    CONTROL_CENTER = "control_center"
    GATEWAY = "gateway"

    def handles(self, spec: ActionSpec) -> bool:
        """Whether CALLs of this action are ever handled by this role (spec §5)."""
        if spec.direction is Direction.BOTH:
            return True
        if self is Role.CONTROL_CENTER:
            return spec.direction is Direction.GATEWAY_TO_CONTROL_CENTER
        return spec.direction is Direction.CONTROL_CENTER_TO_GATEWAY

    def sends(self, spec: ActionSpec) -> bool:
        """Whether this role may send CALLs of this action (spec §4 directions)."""
        other = Role.GATEWAY if self is Role.CONTROL_CENTER else Role.CONTROL_CENTER
        return other.handles(spec)


_HANDLED: dict[Role, dict[str, ActionSpec]] = {
    role: {name: spec for name, spec in ACTIONS.items() if role.handles(spec)} for role in Role
}


def _error_frame(unique_id: str, error: CallError) -> bytes:
    """Encode a CALLERROR; details or text that cannot be encoded are replaced."""
    try:
        return encode_error(unique_id, error.code.value, error.description, error.details)
    except (TypeError, ValueError, msgspec.EncodeError):
        description = error.description.encode("utf-8", "replace").decode("utf-8")
        unique_id = unique_id.encode("utf-8", "replace").decode("utf-8")
        return encode_error(unique_id, error.code.value, description, {"note": "details not JSON"})


def _excerpt(data: bytes | str) -> str:
    text = (
        data
        if isinstance(data, str)
        else bytes(data[:_MAX_REPORTED_DATA]).decode("utf-8", "replace")
    )
    return text[:_MAX_REPORTED_DATA]


class RpcConnection:
    """The RPC state of one WebSocket connection (spec §2).

    Args:
        role: which end this is; decides the actions handled (spec §5).
        profiles: the profiles with a registered handler; CALLs of other profiles are
            answered ``NotSupported`` (spec §5). Kept by reference, so an endpoint can
            share one live set with all its connections.
        strict: reject unknown payload fields (spec §4); ``False`` ignores them.
        call_timeout: default seconds before an unanswered CALL fails (spec §2.3.2).
        queue_capacity: CALLs that may wait behind the one in flight (spec §2.3.1).
        bad_message_limit: bad messages per minute before
            :class:`~ntxcp.rpc.events.BadMessageLimitExceeded` (spec §2.2 rule 7);
            ``None`` disables the limit.
        id_factory: makes a fresh ``uniqueId`` (default: UUID4 text).

    Attributes:
        record_frame_info: record a :class:`~ntxcp.rpc.events.FrameInfo` for every
            frame in (:attr:`received_info`) and out (:meth:`data_to_send_with_info`),
            for a frame tap; off by default (it costs an object per frame).
    """

    def __init__(
        self,
        role: Role,
        *,
        profiles: Collection[Profile] = frozenset(),
        strict: bool = True,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        bad_message_limit: int | None = DEFAULT_BAD_MESSAGE_LIMIT,
        id_factory: Callable[[], str] = new_unique_id,
    ) -> None:
        if call_timeout <= 0:
            raise ValueError("call_timeout must be > 0")
        if queue_capacity < 0:
            raise ValueError("queue_capacity must be >= 0")
        self.role = role
        self.profiles = profiles
        self.strict = strict
        self.call_timeout = call_timeout
        self.queue_capacity = queue_capacity
        self.bad_message_limit = bad_message_limit
        self._new_id = id_factory
        self._handled = _HANDLED[role]
        self._in_flight: OutgoingCall | None = None
        # Lists, not deques: an empty deque costs ~600 bytes per connection and these
        # hold at most queue_capacity items.
        self._queue: list[OutgoingCall] = []
        self._outgoing: list[bytes] = []
        # Answers to received CALLs leave in arrival order (spec §2.3.4): one slot per
        # received CALL, [uniqueId, frame or None while the application works on it].
        self._answers: list[list[Any]] = []
        self._expired_ids: list[str] = []
        self._bad_times: list[float] = []  # a list: far smaller than a deque per connection
        self._limit_reported = False
        self._closed = False
        self.record_frame_info = False
        self._sent_info: list[FrameInfo | None] = []
        self.received_info: FrameInfo | None = None
        """What the last message given to :meth:`receive` was (when recording)."""

    # --- state -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def in_flight(self) -> OutgoingCall | None:
        """The CALL sent and not yet answered, if any."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """How many CALLs wait behind the one in flight."""
        return len(self._queue)

    @property
    def bad_messages_last_minute(self) -> int:
        """Bad messages counted in the current one-minute window (spec §2.2 rule 7)."""
        return len(self._bad_times)

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the frames to write, in order."""
        out, self._outgoing = self._outgoing, []
        self._sent_info = []
        return out

    def data_to_send_with_info(self) -> list[tuple[bytes, FrameInfo | None]]:
        """Like :meth:`data_to_send`, each frame with its :class:`FrameInfo`.

        The info is ``None`` for frames queued while :attr:`record_frame_info` was off.
        """
        out, self._outgoing = self._outgoing, []
        info, self._sent_info = self._sent_info, []
        info.extend([None] * (len(out) - len(info)))
        return list(zip(out, info, strict=True))

    def _out(self, frame: bytes, info: FrameInfo | None) -> None:
        self._outgoing.append(frame)
        if self.record_frame_info:
            self._sent_info.extend([None] * (len(self._outgoing) - 1 - len(self._sent_info)))
            self._sent_info.append(info)

    def _call_out(self, call: OutgoingCall) -> None:
        info = None
        if self.record_frame_info:
            info = FrameInfo(MessageType.CALL, call.unique_id, call.action)
        self._out(call.frame, info)

    # --- sending (spec §2.3) -----------------------------------------------------------

    def send_call(
        self,
        request: AnyRequest,
        now: float,
        timeout: float | None = None,
        *,
        unique_id: str | None = None,
        payload: bytes | None = None,
    ) -> OutgoingCall:
        """Send a CALL now, or queue it behind the one in flight (spec §2.3.1).

        Args:
            request: the request; validated before anything is queued.
            now: the current time.
            timeout: seconds before it fails, counted from now and covering the time
                spent queued (default :attr:`call_timeout`).
            unique_id: the id to use (a re-sent stored message keeps its first id,
                spec §6.2); default a fresh one from ``id_factory``.
            payload: the request already encoded by
                :func:`~ntxcp.v10.codec.encode_payload` (validated), to skip encoding
                it again; it must be the encoding of ``request``.

        Returns:
            The call handle; its outcome arrives later as
            :class:`~ntxcp.rpc.events.CallAnswered` or
            :class:`~ntxcp.rpc.events.CallFailed`.

        Raises:
            NotConnectedError: the connection is closed.
            QueueFullError: the FIFO is full; nothing was queued.
            PayloadValidationError: the request breaks a rule of spec §4.
            ValueError: this role never sends this action.
        """
        if self._closed:
            raise NotConnectedError("connection is closed")
        spec = ACTIONS.get(request.ACTION)
        if spec is None or not isinstance(request, spec.request) or not self.role.sends(spec):
            raise ValueError(f"a {self.role.value} does not send {type(request).__name__}")
        if self._in_flight is not None and len(self._queue) >= self.queue_capacity:
            raise QueueFullError(self.queue_capacity)
        if payload is None:
            payload = encode_payload(request)
        if unique_id is None:
            unique_id = self._new_id()
        elif not 0 < len(unique_id) <= MAX_UNIQUE_ID_LENGTH:
            raise ValueError(f"uniqueId must be 1..{MAX_UNIQUE_ID_LENGTH} characters")
        timeout = self.call_timeout if timeout is None else timeout
        call = OutgoingCall(
            unique_id, request, encode_call(unique_id, spec.action, payload), now + timeout, timeout
        )
        if self._in_flight is None:
            self._in_flight = call
            self._call_out(call)
        else:
            self._queue.append(call)
        return call

    def send_result(self, call: CallReceived, confirmation: Confirmation) -> CallError | None:
        """Answer a received CALL with its confirmation.

        An invalid confirmation (wrong class or a broken constraint) is never put on
        the wire: the peer gets an ``InternalError`` CALLERROR instead (issue:
        handlers returning bad data) and the problem is returned for reporting.

        Returns:
            ``None`` when the CALLRESULT was queued for sending, else the error sent.
        """
        expected = call.spec.confirmation
        if type(confirmation) is not expected:
            error = CallError(
                ErrorCode.INTERNAL_ERROR,
                f"handler returned {type(confirmation).__name__}, expected {expected.__name__}",
            )
        else:
            try:
                payload = encode_payload(confirmation)
            except (PayloadValidationError, TypeError, ValueError) as exc:
                error = CallError(
                    ErrorCode.INTERNAL_ERROR, f"handler returned an invalid confirmation: {exc}"
                )
            else:
                self._answer(
                    call.unique_id, encode_result(call.unique_id, payload), MessageType.CALLRESULT
                )
                return None
        self.send_error(call.unique_id, error)
        return error

    def send_error(self, unique_id: str, error: CallError) -> None:
        """Answer a received CALL with a CALLERROR (spec §2.1)."""
        self._answer(
            unique_id, _error_frame(unique_id, error), MessageType.CALLERROR, error.code.value
        )

    def _answer(
        self, unique_id: str, frame: bytes, kind: MessageType, code: str | None = None
    ) -> None:
        """Fill the answer slot of a received CALL, then release answers in order."""
        if self._closed:
            return
        answers = self._answers
        for slot in answers:
            if slot[1] is None and slot[0] == unique_id:
                slot[1] = frame
                if self.record_frame_info:  # slot[2]: the CALL's action, now the info
                    slot[2] = FrameInfo(kind, unique_id, slot[2], code)
                break
        else:  # not a CALL we reported (e.g. an application answering twice)
            info = FrameInfo(kind, unique_id, None, code) if self.record_frame_info else None
            self._emit(frame, info)
            return
        while answers and answers[0][1] is not None:
            slot = answers.pop(0)
            info = slot[2]
            self._out(slot[1], info if isinstance(info, FrameInfo) else None)

    def _emit(self, frame: bytes, info: FrameInfo | None) -> None:
        """Queue an answer behind every earlier received CALL still unanswered."""
        if self._answers:
            self._answers.append([None, frame, info])
        else:
            self._out(frame, info)

    def expire(self, now: float) -> list[Event]:
        """Fail every CALL whose deadline has passed (spec §2.3.2); send the next one."""
        events: list[Event] = []
        if self._queue:
            keep: list[OutgoingCall] = []
            for queued in self._queue:
                if queued.deadline <= now:
                    events.append(CallFailed(queued, self._timeout_error(queued)))
                else:
                    keep.append(queued)
            self._queue = keep
        call = self._in_flight
        if call is not None and call.deadline <= now:
            events.append(CallFailed(call, self._timeout_error(call)))
            self._send_next()
        return events

    def close(self) -> list[Event]:
        """The connection is gone: fail every CALL in flight and queued (spec §2.3.3).

        Returns:
            One :class:`~ntxcp.rpc.events.CallFailed` per CALL, in sending order.
        """
        self._closed = True
        calls = [] if self._in_flight is None else [self._in_flight]
        calls.extend(self._queue)
        self._in_flight = None
        self._queue.clear()
        self._outgoing.clear()
        self._sent_info.clear()
        self._answers.clear()
        return [
            CallFailed(
                call, DisconnectedError(f"connection closed before {call.action} was answered")
            )
            for call in calls
        ]

    def _timeout_error(self, call: OutgoingCall) -> CallTimeoutError:
        # Remember the id: its answer may still come, late (not a bad message).
        self._expired_ids.append(call.unique_id)
        del self._expired_ids[:-32]
        return CallTimeoutError(call.action, call.unique_id, call.timeout)

    def _send_next(self) -> None:
        self._in_flight = self._queue.pop(0) if self._queue else None
        if self._in_flight is not None:
            self._call_out(self._in_flight)

    # --- receiving (spec §2.2) ---------------------------------------------------------

    def receive(self, data: bytes | str, now: float) -> list[Event]:
        """Process one received text message.

        Args:
            data: the message (UTF-8 bytes or text).
            now: the current time (for the bad-message window, rule 7).

        Returns:
            The events it caused; answers to send are in :meth:`data_to_send`.
        """
        try:
            frame = decode_frame(data)
        except DECODE_ERRORS:
            return self._bad_frame(data, now)
        if type(frame) is CallFrame:
            return self._receive_call(frame, data, now)
        if type(frame) is CallResultFrame:
            return self._receive_result(frame, data, now)
        assert type(frame) is CallErrorFrame
        return self._receive_error(frame, data, now)

    def _receive_call(self, frame: CallFrame, data: bytes | str, now: float) -> list[Event]:
        unique_id = frame.unique_id
        if self.record_frame_info:
            self.received_info = FrameInfo(MessageType.CALL, unique_id, frame.action)
        if len(unique_id) > MAX_UNIQUE_ID_LENGTH:
            return self._reject(
                data, now, unique_id, ErrorCode.FORMATION_VIOLATION,
                f"uniqueId longer than {MAX_UNIQUE_ID_LENGTH} characters",
            )  # fmt: skip
        if not is_json_object(frame.payload):
            return self._reject(
                data, now, unique_id, ErrorCode.FORMATION_VIOLATION, "CALL payload is not an object"
            )
        spec = self._handled.get(frame.action)
        if spec is None:
            if frame.action not in ACTIONS:  # rule 3
                return self._reject(
                    data,
                    now,
                    unique_id,
                    ErrorCode.NOT_IMPLEMENTED,
                    f"unknown action {frame.action!r}",
                )
            spec = ACTIONS[frame.action]
        if spec.profile not in self.profiles or not self.role.handles(spec):  # rule 3, §5
            return self._reject(
                data, now, unique_id, ErrorCode.NOT_SUPPORTED,
                f"{spec.action} is not supported by this {self.role.value}",
            )  # fmt: skip
        try:
            request = decode_payload(spec.request, frame.payload, strict=self.strict)
        except PayloadValidationError as exc:  # rule 4
            return self._reject(data, now, unique_id, exc.code, exc.description)
        self._answers.append([unique_id, None, spec.action])
        return [CallReceived(unique_id, spec, request)]

    def _receive_result(self, frame: CallResultFrame, data: bytes | str, now: float) -> list[Event]:
        call = self._match(frame.unique_id)
        if self.record_frame_info:
            self.received_info = FrameInfo(
                MessageType.CALLRESULT, frame.unique_id, None if call is None else call.action
            )
        if call is None:  # rule 5
            return self._unmatched(frame.unique_id, data, now)
        self._send_next()
        error: CallError
        if not is_json_object(frame.payload):
            error = CallError(ErrorCode.FORMATION_VIOLATION, "CALLRESULT payload is not an object")
        else:
            try:
                confirmation = decode_payload(
                    call.request.CONFIRMATION, frame.payload, strict=self.strict
                )
            except PayloadValidationError as exc:  # rule 6
                error = exc
            else:
                return [CallAnswered(call, confirmation)]
        events: list[Event] = [CallFailed(call, error)]
        events.extend(self._count_bad(error, frame.unique_id, False, data, now))
        return events

    def _receive_error(self, frame: CallErrorFrame, data: bytes | str, now: float) -> list[Event]:
        call = self._match(frame.unique_id)
        if self.record_frame_info:
            self.received_info = FrameInfo(
                MessageType.CALLERROR,
                frame.unique_id,
                None if call is None else call.action,
                frame.error_code,
            )
        if call is None:  # rule 5
            return self._unmatched(frame.unique_id, data, now)
        self._send_next()
        code = parse_error_code(frame.error_code)
        description = frame.error_description
        if code is None:  # spec §2.1: unknown code kept as GenericError, text preserved
            code = ErrorCode.GENERIC_ERROR
            description = f"{frame.error_code}: {description}" if description else frame.error_code
        details: dict[str, Any] = {}
        if is_json_object(frame.error_details):
            try:
                details = msgspec.json.decode(frame.error_details)
            except DECODE_ERRORS:  # the frame decoder skipped it without checking UTF-8
                details = {}
        return [CallFailed(call, CallError(code, description, details))]

    def _match(self, unique_id: str) -> OutgoingCall | None:
        call = self._in_flight
        if call is not None and call.unique_id == unique_id:
            return call
        return None

    def _unmatched(self, unique_id: str, data: bytes | str, now: float) -> list[Event]:
        events: list[Event] = [UnmatchedResponse(unique_id, _excerpt(data))]
        if unique_id in self._expired_ids:  # a late answer is not a bad message
            self._expired_ids.remove(unique_id)
        else:
            events.extend(self._count(now))
        return events

    def _bad_frame(self, data: bytes | str, now: float) -> list[Event]:
        """Classify a message that is not a well-formed frame (spec §2.2 rules 1-2)."""
        try:
            value: Any = msgspec.json.decode(data)
        except DECODE_ERRORS:
            value = _NOT_JSON
        unique_id = UNKNOWN_ID
        if isinstance(value, list) and len(value) > 1 and isinstance(value[1], str):
            unique_id = value[1]
        kind = value[0] if isinstance(value, list) and value else None
        if self.record_frame_info:
            self.received_info = _bad_frame_info(value, kind, unique_id, self._match(unique_id))
        if type(kind) is int and kind in (3, 4):
            # A broken response: never answered (rule 6); it fails the call it names.
            error = CallError(ErrorCode.FORMATION_VIOLATION, "malformed CALLRESULT/CALLERROR")
            call = self._match(unique_id)
            if call is None:
                return self._unmatched(unique_id, data, now)
            self._send_next()
            events: list[Event] = [CallFailed(call, error)]
            events.extend(self._count_bad(error, unique_id, False, data, now))
            return events
        if value is _NOT_JSON:
            description = "message is not valid JSON"
        elif not isinstance(value, list):
            description = "message is not a JSON array"
        elif type(kind) is not int or kind not in (2, 3, 4):
            description = "message type is not 2, 3 or 4"
        else:
            description = "CALL does not follow [2, uniqueId, action, {payload}]"
        return self._reject(data, now, unique_id, ErrorCode.FORMATION_VIOLATION, description)

    def _reject(
        self, data: bytes | str, now: float, unique_id: str, code: ErrorCode, description: str
    ) -> list[Event]:
        """Answer a received message with a CALLERROR and report it."""
        error = CallError(code, description)
        if not self._closed:
            info = None
            if self.record_frame_info:
                received = self.received_info
                action = None if received is None else received.action
                info = FrameInfo(MessageType.CALLERROR, unique_id, action, code.value)
            self._emit(_error_frame(unique_id, error), info)
        return self._count_bad(error, unique_id, True, data, now)

    def _count_bad(
        self, error: CallError, unique_id: str, answered: bool, data: bytes | str, now: float
    ) -> list[Event]:
        events: list[Event] = [BadMessage(error, unique_id, answered, _excerpt(data))]
        events.extend(self._count(now))
        return events

    def _count(self, now: float) -> list[Event]:
        """Count one bad message in the sliding minute (spec §2.2 rule 7)."""
        limit = self.bad_message_limit
        if limit is None:
            return []
        times = self._bad_times
        times.append(now)
        expired = 0
        while expired < len(times) and times[expired] <= now - _WINDOW:
            expired += 1
        if expired:
            del times[:expired]
        if len(times) > limit and not self._limit_reported:
            self._limit_reported = True
            return [BadMessageLimitExceeded(len(times), limit)]
        return []


def _bad_frame_info(
    value: Any, kind: Any, unique_id: str, matched: OutgoingCall | None
) -> FrameInfo:
    """What can be read of a message that is not a well-formed frame (spec §2.2)."""
    message_type = kind if type(kind) is int and kind in (2, 3, 4) else None
    known_id = None if unique_id == UNKNOWN_ID else unique_id
    action: str | None = None
    if message_type == MessageType.CALL:
        if len(value) > 2 and isinstance(value[2], str):
            action = value[2]
    elif message_type is not None and matched is not None:
        action = matched.action
    return FrameInfo(message_type, known_id, action)
