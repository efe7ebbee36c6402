"""One connection of an endpoint: joins the RPC state machine to a WebSocket link.

The reader (:meth:`Session.on_message`) only feeds the state machine and resolves
futures; handlers never block it (spec §6.4). CALLs from the peer are answered in
arrival order (spec §2.3.4): a plain ``def`` handler runs at once when nothing is
waiting before it (it cannot await, so it cannot hold the reader up any longer than
the work it does), anything else goes to a per-connection worker task that exists
only while there is work.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, assert_never, cast

from ntxcp.errors import CallError, EndpointError, ErrorCode, ErrorKind, NotConnectedError
from ntxcp.rpc import (
    BadMessage,
    BadMessageLimitExceeded,
    CallAnswered,
    CallFailed,
    CallReceived,
    Event,
    FrameInfo,
    OutgoingCall,
    RpcConnection,
    UnmatchedResponse,
)
from ntxcp.transport import Link
from ntxcp.v10 import Confirmation, Request

if TYPE_CHECKING:
    from ntxcp.endpoints._dispatch import Dispatcher

__all__ = ["CallContext", "FrameTap", "Session", "current_call"]

FrameTap = Callable[[str, str, bytes, FrameInfo], object]
"""``tap(gateway_id, direction, frame, info)``: direction ``"in"`` or ``"out"``, the raw
frame, and what the RPC layer read of it (message type, uniqueId, action, error code;
for an answer, the action of the CALL it answers)."""
_UNREAD = FrameInfo(None, None, None)


class CallContext:
    """The CALL a handler is answering right now (see :func:`current_call`).

    Attributes:
        gateway_id: the gateway on the other end.
        unique_id: the CALL's ``uniqueId``; a gateway that re-sends a stored message
            keeps its id (spec §6.2), so a control center can drop duplicates by it.
        action: the action name.
    """

    __slots__ = ("action", "gateway_id", "unique_id")

    def __init__(self, gateway_id: str, unique_id: str, action: str) -> None:
        self.gateway_id = gateway_id
        self.unique_id = unique_id
        self.action = action

    def __repr__(self) -> str:
        return f"CallContext({self.gateway_id!r}, {self.unique_id!r}, {self.action!r})"


_CURRENT_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "ntxcp_current_call", default=None
)


def current_call() -> CallContext | None:
    """The CALL being handled, when called from inside a handler; else ``None``."""
    return _CURRENT_CALL.get()


C = TypeVar("C", bound=Confirmation)

_TIMER_SLACK = 0.001
"""Seconds a timer may run early: uvloop's clock has millisecond resolution."""

MAX_PENDING_INBOUND = 64
"""Received CALLs that may wait for a handler per connection before more are refused."""

_Work = tuple[CallReceived, Callable[..., Any] | None, Awaitable[Any] | None]


class Session:
    """The live state of one connection (either side).

    Args:
        rpc: the connection's RPC state machine.
        dispatcher: finds the handler method for a received CALL.
        handler_args: leading arguments of every handler call (the gateway id on the
            control center side, nothing on the gateway side).
        report: where problems go (the endpoint's error stream).
        on_closed: called once when the link closes.
        gateway_id: the gateway this connection belongs to.
        logger: the side's logger.
        on_opened: called once when the link opens.
        tap: told about every frame in and out.
        after_answer: called after a received CALL was answered.
        on_responsive: called when the peer misses a pong (``False``) or answers
            again (``True``); server side only.
    """

    def __init__(
        self,
        rpc: RpcConnection,
        dispatcher: Dispatcher,
        handler_args: tuple[Any, ...],
        report: Callable[[EndpointError], None],
        on_closed: Callable[[Session, int, str], None],
        gateway_id: str,
        logger: logging.Logger,
        on_opened: Callable[[Session], None] | None = None,
        tap: FrameTap | None = None,
        after_answer: Callable[[CallReceived, Confirmation], object] | None = None,
        on_responsive: Callable[[Session, bool], None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.gateway_id = gateway_id
        self.link: Link | None = None
        self.close_code: int | None = None
        self._dispatcher = dispatcher
        self._handler_args = handler_args
        self._report = report
        self._on_closed = on_closed
        self._on_opened = on_opened
        self._on_responsive = on_responsive
        self._log = logger
        self._extra = {"gateway_id": gateway_id}  # structured, for log handlers
        self._loop = asyncio.get_running_loop()
        self._work: list[_Work] = []  # a list: an empty deque costs ~600 B per connection
        self._worker: asyncio.Task[None] | None = None
        self._closed_event: asyncio.Event | None = None
        self.tap = tap
        rpc.record_frame_info = tap is not None
        self._after_answer = after_answer
        self._draining = False

    # --- LinkHandler -----------------------------------------------------------------

    def on_open(self, link: Link) -> None:
        """The WebSocket is up."""
        self.link = link
        if self._on_opened is not None:
            self._on_opened(self)

    def on_message(self, data: bytes) -> None:
        """Feed one message to the state machine and act on what it says."""
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug(
                "[%s] <- %s",
                self.gateway_id,
                data[:2048].decode("utf-8", "replace"),
                extra=self._extra,
            )
        events = self.rpc.receive(data, self._loop.time())
        if self.tap is not None:  # after receive: the RPC layer has read the frame
            self._tap("in", data, self.rpc.received_info or _UNREAD)
        for event in events:
            self._handle(event)
        self._flush()

    def on_responsive(self, answering: bool) -> None:
        """The peer missed a pong, or answers again (server side, see the keep-alive)."""
        if self._on_responsive is not None:
            self._on_responsive(self, answering)

    def on_close(self, code: int, reason: str) -> None:
        """The link is gone: fail every pending CALL at once (spec §2.3.3)."""
        self.close_code = code
        self.link = None
        for event in self.rpc.close():
            self._handle(event)
        self._work.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        if self._closed_event is not None:
            self._closed_event.set()
        self._on_closed(self, code, reason)

    # --- calls to the peer -----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the link is up and not closing."""
        return self.link is not None and self.link.is_open and not self.rpc.closed

    def send_call(
        self,
        request: Request[C],
        timeout: float | None,
        unique_id: str | None = None,
        payload: bytes | None = None,
    ) -> asyncio.Future[C]:
        """Send (or queue) a CALL; the future gets its confirmation or error.

        Raises:
            NotConnectedError: the link is not open.
            QueueFullError: the FIFO is full.
            PayloadValidationError: the request is invalid.
        """
        if not self.is_open:
            raise NotConnectedError(f"gateway {self.gateway_id!r} is not connected")
        call = self.rpc.send_call(
            request, self._loop.time(), timeout, unique_id=unique_id, payload=payload
        )
        future: asyncio.Future[C] = self._loop.create_future()
        call.context = (future, self._loop.call_at(call.deadline, self._expire))
        self._flush()
        return future

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start closing the link."""
        link = self.link
        if link is not None:
            link.close(code, reason)

    def drain(self) -> None:
        """Stop taking new CALLs from the peer; those already received still run.

        Used by a graceful stop: a CALL that arrives afterwards is not answered (the
        connection closes soon, and the peer sends it again after reconnecting).
        """
        self._draining = True

    @property
    def busy(self) -> bool:
        """Whether a received CALL still waits for its answer, or an own CALL for the peer's."""
        return bool(self._work) or self.rpc.in_flight is not None

    async def wait_closed(self) -> None:
        """Wait until :meth:`on_close` has run."""
        if self.rpc.closed:
            return
        if self._closed_event is None:
            self._closed_event = asyncio.Event()
        await self._closed_event.wait()

    def _expire(self) -> None:
        # A deadline is now + timeout in floating point; a millisecond clock (uvloop)
        # runs the timer at a time that can be a hair below it. Without the slack,
        # nothing would expire and no timer would be left to fail the call.
        for event in self.rpc.expire(self._loop.time() + _TIMER_SLACK):
            self._handle(event)
        self._flush()

    def _flush(self) -> None:
        if self.tap is not None:
            self._flush_tapped()
            return
        frames = self.rpc.data_to_send()
        link = self.link
        if frames and link is not None:
            debug = self._log.isEnabledFor(logging.DEBUG)
            for frame in frames:
                if debug:
                    self._log.debug(
                        "[%s] -> %s", self.gateway_id, frame[:2048].decode(), extra=self._extra
                    )
                link.send(frame)

    def _flush_tapped(self) -> None:
        frames = self.rpc.data_to_send_with_info()
        link = self.link
        if frames and link is not None:
            debug = self._log.isEnabledFor(logging.DEBUG)
            for frame, info in frames:
                if debug:
                    self._log.debug(
                        "[%s] -> %s", self.gateway_id, frame[:2048].decode(), extra=self._extra
                    )
                self._tap("out", frame, info or _UNREAD)
                link.send(frame)

    def _tap(self, direction: str, data: bytes, info: FrameInfo) -> None:
        assert self.tap is not None
        try:
            self.tap(self.gateway_id, direction, data, info)
        except Exception:
            self._log.exception("[%s] frame tap raised", self.gateway_id, extra=self._extra)

    # --- events ----------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        match event:
            case CallReceived():
                self._received(event)
            case CallAnswered(call=call, confirmation=confirmation):
                future = self._settle(call)
                if future is not None:
                    future.set_result(confirmation)
            case CallFailed(call=call, error=error):
                future = self._settle(call)
                if future is not None:
                    future.set_exception(error)
            case BadMessage():
                self._report(
                    EndpointError(
                        ErrorKind.BAD_MESSAGE,
                        str(event.error),
                        gateway_id=self.gateway_id,
                        code=event.code,
                        data=event.data,
                    )
                )
            case UnmatchedResponse(unique_id=unique_id, data=data):
                self._report(
                    EndpointError(
                        ErrorKind.UNMATCHED_RESPONSE,
                        f"no outstanding CALL with id {unique_id!r}; dropped",
                        gateway_id=self.gateway_id,
                        data=data,
                    )
                )
            case BadMessageLimitExceeded():
                self._report(
                    EndpointError(
                        ErrorKind.BAD_MESSAGE_LIMIT, str(event), gateway_id=self.gateway_id
                    )
                )
                self.close(1008, "too many bad messages")  # spec §2.2 rule 7
            case _:
                assert_never(event)

    @staticmethod
    def _settle(call: OutgoingCall) -> asyncio.Future[Confirmation] | None:
        context = call.context
        if context is None:
            return None
        future, timer = context
        call.context = None
        timer.cancel()
        return None if future.done() else cast("asyncio.Future[Confirmation]", future)

    # --- handling received CALLs (spec §6.4) -------------------------------------------

    def _received(self, event: CallReceived) -> None:
        if self._draining:  # stopping: see drain()
            return
        if len(self._work) >= MAX_PENDING_INBOUND:
            # A peer must wait for each answer (spec §2.3.1); a flood is refused, not queued.
            self.rpc.send_error(
                event.unique_id,
                CallError(ErrorCode.GENERIC_ERROR, "too many CALLs waiting for an answer"),
            )
            self._report(
                EndpointError(
                    ErrorKind.INBOUND_LIMIT,
                    f"{event.spec.action} refused: {len(self._work)} CALLs already waiting",
                    gateway_id=self.gateway_id,
                )
            )
            return
        entry = self._dispatcher.lookup(event.spec)
        method = None if entry is None else entry[0]
        if self._work or method is None or entry[1]:  # type: ignore[index]
            self._work.append((event, method, None))
            self._ensure_worker()
            return
        token = _CURRENT_CALL.set(CallContext(self.gateway_id, event.unique_id, event.spec.action))
        try:
            result = method(*self._handler_args, event.request)
        except Exception as exc:
            self._answer_error(event, exc)
            return
        finally:
            _CURRENT_CALL.reset(token)
        if isinstance(result, Confirmation) or not inspect.isawaitable(result):
            self._answer(event, result)
        else:
            self._work.append((event, None, result))
            self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._run_worker())

    async def _run_worker(self) -> None:
        work = self._work
        while work:
            event, method, awaitable = work[0]
            _CURRENT_CALL.set(CallContext(self.gateway_id, event.unique_id, event.spec.action))
            try:
                if awaitable is None:
                    if method is None:
                        raise self._dispatcher.not_supported(event.spec)
                    result = method(*self._handler_args, event.request)
                    if inspect.isawaitable(result):
                        result = await result
                else:
                    result = await awaitable
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if work and work[0][0] is event:
                    work.pop(0)
                self._answer_error(event, exc)
            else:
                if work and work[0][0] is event:
                    work.pop(0)
                self._answer(event, result)
            self._flush()

    def _answer(self, event: CallReceived, result: Any) -> None:
        error: CallError | None
        if isinstance(result, Confirmation):
            error = self.rpc.send_result(event, result)
            if error is None and self._after_answer is not None:
                self._after_answer(event, result)
        else:
            error = CallError(
                ErrorCode.INTERNAL_ERROR,
                f"handler returned {type(result).__name__}, "
                f"expected {event.spec.confirmation.__name__}",
            )
            self.rpc.send_error(event.unique_id, error)
        if error is not None:
            self._report(
                EndpointError(
                    ErrorKind.INVALID_CONFIRMATION,
                    f"{event.spec.action}: {error.description}",
                    gateway_id=self.gateway_id,
                    code=error.code,
                )
            )

    def _answer_error(self, event: CallReceived, exc: Exception) -> None:
        if isinstance(exc, CallError):
            self.rpc.send_error(event.unique_id, exc)
        else:
            description = f"{type(exc).__name__}: {exc}"
            self._log.error(
                "[%s] handler for %s raised\n%s",
                self.gateway_id,
                event.spec.action,
                "".join(traceback.format_exception(exc)),
                extra=self._extra,
            )
            self.rpc.send_error(event.unique_id, CallError(ErrorCode.INTERNAL_ERROR, description))
            self._report(
                EndpointError(
                    ErrorKind.HANDLER_ERROR,
                    f"{event.spec.action}: {description}",
                    gateway_id=self.gateway_id,
                    code=ErrorCode.INTERNAL_ERROR,
                )
            )
