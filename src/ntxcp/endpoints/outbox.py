"""The gateway's store-and-forward outbox: one part, one delivery-outcome path (spec §6.2).

``MeterValues``, ``StatusNotification``, ``DiagnosticsStatusNotification`` and
``FirmwareStatusNotification`` are written to a :class:`~ntxcp.endpoints.store.MessageStore`
with a ``uniqueId`` they keep on every attempt, and delivered in order, one at a time,
whenever the gateway is ready. A message is put on the wire either by the caller (when
nothing is queued ahead and nothing is on the wire: no hand-over to a task) or by the
forwarder task; either way its outcome goes through :meth:`Outbox._outcome`:

* CALLRESULT: removed from the outbox, waiters get the confirmation;
* connection lost (maybe after the control center handled it): stays first, goes again
  after the reconnect with the same ``uniqueId``;
* no answer in time on a live connection: reported as ``delivery-retry``, sent again
  after ``retry_delay()``;
* CALLERROR or invalid CALLRESULT: moved to the dead letters, waiters fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ntxcp.endpoints._session import Session
from ntxcp.endpoints.store import (
    STORED_ACTIONS,
    MessageStore,
    StoredMessage,
    StoreFullError,
    open_store,
)
from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    EndpointError,
    ErrorCode,
    ErrorKind,
    NotConnectedError,
    QueueFullError,
)
from ntxcp.rpc.frames import new_unique_id
from ntxcp.v10 import ACTIONS, AnyRequest, Confirmation, Request
from ntxcp.v10.codec import decode_payload, encode_payload

__all__ = ["Outbox"]

C = TypeVar("C", bound=Confirmation)

Report = Callable[[EndpointError], None]


class Outbox:
    """The store-and-forward outbox of one gateway (spec §6.2).

    Args:
        store: ``None`` (in memory), a file path (SQLite) or a
            :class:`~ntxcp.endpoints.store.MessageStore` (never closed here).
        gateway_id: the gateway, for error reports.
        report: puts a report on the gateway's error stream.
        retry_delay: seconds to wait before sending again a message that timed out.
        ready: set while the gateway may send (connected, and boot accepted with the
            lifecycle on).
        session: the current connection, if any.
    """

    def __init__(
        self,
        store: MessageStore | str | os.PathLike[str] | None,
        *,
        gateway_id: str,
        report: Report,
        retry_delay: Callable[[], float],
        ready: asyncio.Event,
        session: Callable[[], Session | None],
    ) -> None:
        self._store_option = store
        self._owns_store = store is None or isinstance(store, str | os.PathLike)
        self._store = open_store(store)
        self._gateway_id = gateway_id
        self._report = report
        self._retry_delay = retry_delay
        self._ready = ready
        self._session = session
        self._waiters: dict[int, list[asyncio.Future[Any]]] = {}
        self._wake = asyncio.Event()
        self._delivering = False  # a stored message is on the wire (one at a time)
        self._hold_until = 0.0  # after a timeout: loop time before which nothing is resent
        self._forwarder: asyncio.Task[None] | None = None

    # --- the store -------------------------------------------------------------------------

    @property
    def store(self) -> MessageStore:
        """The message store (dead letters included)."""
        return self._store

    def __len__(self) -> int:
        return len(self._store)

    def reopen(self) -> None:
        """Open again a store :meth:`close` closed (a gateway started again)."""
        if self._owns_store and getattr(self._store, "closed", False):
            self._store = open_store(self._store_option)

    # --- the forwarder task ----------------------------------------------------------------

    def start(self) -> None:
        """Start the forwarder task (once; again after :meth:`close`)."""
        if self._forwarder is None or self._forwarder.done():
            self._forwarder = asyncio.get_running_loop().create_task(self._forward())

    async def close(self) -> None:
        """Stop delivering; waiters fail, messages stay stored; close an owned store."""
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is not None:
            forwarder.cancel()
            await asyncio.gather(forwarder, return_exceptions=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(NotConnectedError("gateway stopped; message stays queued"))
        self._waiters.clear()
        if self._owns_store:
            self._store.close()

    def wake(self) -> None:
        """Tell the forwarder to look at the outbox again."""
        self._wake.set()

    async def _forward(self) -> None:
        """Deliver the outbox in order, one message at a time, while ready."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._ready.wait()
                hold = self._hold_until - loop.time()
                if hold > 0:  # a message timed out: let the control center breathe
                    await asyncio.sleep(hold)
                    continue
                message = self._store.peek()
                if message is None or self._delivering:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                session = self._session()
                if session is None or not session.is_open:
                    # closing: the gateway clears ``ready`` soon
                    if session is not None:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):
                                await session.wait_closed()
                    else:
                        await asyncio.sleep(0.05)
                    continue
                if not self._send_stored(session, message):
                    await asyncio.sleep(0.05)  # the link is going, or the FIFO is busy
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken store must not end delivery for good
                self._report(
                    EndpointError(ErrorKind.FORWARDER_ERROR, repr(exc), gateway_id=self._gateway_id)
                )
                await asyncio.sleep(max(self._retry_delay(), 0.1))

    # --- putting a message on the wire and its outcome -----------------------------------

    def _send_stored(
        self,
        session: Session,
        message: StoredMessage,
        request: AnyRequest | None = None,
        payload: bytes | None = None,
    ) -> bool:
        """Send the first stored message; ``False`` when it cannot go right now.

        Args:
            session: the live connection.
            message: the first message of the outbox.
            request: the message's request when the caller has it (else decoded).
            payload: its encoding, when the caller has it.
        """
        try:
            if request is None:
                spec = ACTIONS.get(message.action)
                if spec is None:
                    raise CallError(ErrorCode.NOT_IMPLEMENTED, f"unknown action {message.action!r}")
                request = decode_payload(spec.request, message.payload)
            call = session.send_call(request, None, message.unique_id, payload)
        except (NotConnectedError, QueueFullError):
            return False
        except (CallError, ValueError) as exc:  # cannot be sent any more: never will be
            self._give_up(message, "invalid", f"stored message cannot be sent: {exc}", exc)
            return True
        self._delivering = True
        call.add_done_callback(functools.partial(self._outcome, message))
        return True

    def _outcome(self, message: StoredMessage, call: asyncio.Future[Confirmation]) -> None:
        """The one place where a delivery attempt's outcome is decided (spec §6.2)."""
        self._delivering = False
        if call.cancelled():
            pass
        elif (exc := call.exception()) is None:
            self._store.remove(message.seq)
            self._settle(message.seq, confirmation=call.result())
        elif isinstance(exc, NotConnectedError):
            # Lost with the connection (maybe after the control center handled it):
            # it stays first in the outbox and goes again, same uniqueId (spec §6.2).
            pass
        elif isinstance(exc, CallTimeoutError):
            self._report(
                EndpointError(ErrorKind.DELIVERY_RETRY, str(exc), gateway_id=self._gateway_id)
            )
            self._hold_until = asyncio.get_running_loop().time() + self._retry_delay()
        elif isinstance(exc, CallError):  # CALLERROR or invalid CALLRESULT (spec §2.2 rule 6)
            self._give_up(message, exc.code.value, exc.description, exc)
        if len(self._store):
            self._wake.set()  # the forwarder takes over whatever is left

    def _give_up(self, message: StoredMessage, code: str, description: str, exc: Exception) -> None:
        """Move a message to the dead letters, report it, fail its waiters."""
        self._store.dead_letter(message.seq, code, description)
        self._report(
            EndpointError(
                ErrorKind.DEAD_LETTER,
                f"{message.action} {message.unique_id}: {exc}",
                gateway_id=self._gateway_id,
                code=exc.code if isinstance(exc, CallError) else None,
            )
        )
        self._settle(message.seq, error=exc)

    def _settle(
        self,
        seq: int,
        *,
        confirmation: Confirmation | None = None,
        error: BaseException | None = None,
    ) -> None:
        for waiter in self._waiters.pop(seq, ()):
            if waiter.done():
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(confirmation)

    # --- adding messages and waiting for them ------------------------------------------------

    def append(self, request: AnyRequest) -> tuple[int, str, bytes]:
        """Validate and store a message; returns its sequence number, id and payload.

        Raises:
            ValueError: the action is not a store-and-forward action.
            PayloadValidationError: the request is invalid (nothing stored).
            QueueFullError: the store is full under the ``"reject"`` policy.
        """
        if request.ACTION not in STORED_ACTIONS:
            raise ValueError(f"{request.ACTION} is not a store-and-forward message")
        payload = encode_payload(request)
        unique_id = new_unique_id()
        seq = self._store.append(unique_id, request.ACTION, payload)
        for dropped in self._store.take_dropped():
            error = StoreFullError(None, None, "message dropped to make room (drop-oldest)")
            self._report(
                EndpointError(
                    ErrorKind.DEAD_LETTER,
                    f"{dropped.action} {dropped.unique_id}: dropped, store full",
                    gateway_id=self._gateway_id,
                )
            )
            self._settle(dropped.seq, error=error)
        return seq, unique_id, payload

    def watch(self, seq: int) -> asyncio.Future[Any]:
        """A future that gets the outcome of stored message ``seq``."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(seq, []).append(future)
        return future

    def _forget(self, seq: int, future: asyncio.Future[Any]) -> None:
        """A caller stopped waiting: drop its future (the message stays queued)."""
        waiters = self._waiters.get(seq)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[seq]
        if not future.done():
            future.cancel()

    async def deliver(self, request: Request[C], timeout: float) -> C:
        """Store a message and wait up to ``timeout`` for its delivery (spec §6.2).

        Raises:
            CallTimeoutError: ``queued=True``: not delivered yet; it stays queued.
            CallError: the message was dead-lettered.
            NotConnectedError: the gateway stopped; the message stays queued.
        """
        seq, unique_id, payload = self.append(request)
        future: asyncio.Future[C] = self.watch(seq)
        session = self._session()
        if (
            not self._delivering
            and self._ready.is_set()
            and session is not None
            and session.is_open
            and len(self._store) == 1
        ):
            # Nothing queued ahead and nothing on the wire: send it from here, sparing
            # the hand-over to the forwarder task.
            message = StoredMessage(seq, unique_id, request.ACTION, payload, 0.0)
            if not self._send_stored(session, message, request, payload):
                self._wake.set()
        else:
            self._wake.set()
        # The future is this caller's alone: a timer fails it at the deadline while the
        # message itself stays queued (cheaper than wait_for + shield per message).
        timer = asyncio.get_running_loop().call_later(
            timeout, _fail_waiter, future, request.ACTION, unique_id, timeout
        )
        try:
            return await future
        finally:
            timer.cancel()
            self._forget(seq, future)

    async def flush(self, stopping: Callable[[], bool]) -> None:
        """Wait until the outbox is empty (every message delivered or dead-lettered).

        Raises:
            NotConnectedError: ``stopping()`` became true meanwhile.
        """
        while True:
            if stopping():
                raise NotConnectedError("gateway stopped; messages stay queued")
            message = self._store.peek()
            if message is None:
                return
            future = self.watch(message.seq)
            try:
                await asyncio.wait([future])
            finally:
                self._forget(message.seq, future)
            if not future.cancelled():
                future.exception()  # dead-lettered or dropped: go on with the next


def _fail_waiter(future: asyncio.Future[Any], action: str, unique_id: str, timeout: float) -> None:
    """A caller's wait for a stored message ends; the message stays queued (spec §6.2)."""
    if not future.done():
        future.set_exception(CallTimeoutError(action, unique_id, timeout, queued=True))
