"""A blocking Ding.X Gateway for programs without asyncio (Go API ``DingXGateway``).

The asyncio :class:`ntxcp.Gateway` runs on an event loop in a background thread; each
blocking method submits its coroutine there and waits. Handlers are plain functions
that run on one dedicated handler thread, in arrival order, so a handler may itself
call the gateway (e.g. send a StatusNotification from ``on_reset``) without deadlock:
the event loop thread never waits for a handler. An ``async def`` handler method runs on
the event loop thread instead (it must not call the blocking methods).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

from ntxcp.endpoints import Backoff, ErrorStream, FrameTap
from ntxcp.endpoints.gateway import Gateway as AsyncGateway
from ntxcp.endpoints.gateway import TriggerHandler
from ntxcp.endpoints.state import GatewayState
from ntxcp.endpoints.store import MessageStore
from ntxcp.endpoints.typed_requests import BlockingGatewayRequests
from ntxcp.errors import EndpointError
from ntxcp.rpc import (
    DEFAULT_BAD_MESSAGE_LIMIT,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY,
    Role,
)
from ntxcp.transport.options import DEFAULT_MAX_MESSAGE_SIZE
from ntxcp.v10 import AnyRequest, Confirmation, Profile, Request, core, firmware, remotetrigger
from ntxcp.v10.registry import ACTIONS

__all__ = ["Gateway"]

T = TypeVar("T")
C = TypeVar("C", bound=Confirmation)

StateHandler = Callable[[], object]


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Gateway(BlockingGatewayRequests):
    """A blocking Ding.X Gateway with the members of :class:`ntxcp.Gateway`.

    Every method and property of the asyncio gateway exists here with the same
    parameters; the coroutines become blocking calls. The test suite compares the
    two classes. Options set after construction (``call_timeout``, ``backoff``, ...)
    are the asyncio gateway's own attributes.

    Args:
        gateway_id: the gateway's id, appended to the URL (1..48 printable ASCII).
        password: secret for HTTP Basic auth (security profiles 1/2).
        ssl: client TLS context, see :func:`ntxcp.transport.client_tls_context`.
        extra_headers: more HTTP headers for the upgrade request.
        connect_timeout: seconds for TCP + TLS + upgrade.
        strict: reject unknown payload fields (spec §4); ``False`` ignores them.
        call_timeout: default seconds before a G→C call fails (spec §2.3.2).
        queue_capacity: requests that may wait behind the one in flight (§2.3.1).
        bad_message_limit: bad messages per minute before closing (§2.2 rule 7).
        ping_interval: seconds of silence before a ping (``None``: no pings).
        ping_timeout: seconds to wait for the pong.
        max_message_size: largest message in bytes.
        reconnect: reconnect after unexpected disconnects (default on).
        backoff: reconnect delays (spec defaults).
        error_capacity: reports kept on the error stream for a reader.
        store: the store-and-forward outbox (see :class:`ntxcp.Gateway`).
        boot: the BootNotification to send after every connection (lifecycle).
        heartbeat: send Heartbeat at the accepted interval (lifecycle only).
        reboot_on_reset: reconnect and boot again after an accepted Reset.

    Raises:
        ValueError: invalid gateway id.
        PayloadValidationError: ``boot`` is not a valid BootNotification.
    """

    def __init__(
        self,
        gateway_id: str,
        *,
        password: str | None = None,
        ssl: Any = None,
        extra_headers: dict[str, str] | None = None,
        connect_timeout: float = 10.0,
        strict: bool = True,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        bad_message_limit: int | None = DEFAULT_BAD_MESSAGE_LIMIT,
        ping_interval: float | None = 30.0,
        ping_timeout: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        error_capacity: int = 1000,
        store: MessageStore | str | os.PathLike[str] | None = None,
        boot: core.BootNotificationRequest | None = None,
        heartbeat: bool = True,
        reboot_on_reset: bool = True,
    ) -> None:
        self._loop = _new_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"ntxcp-loop-{gateway_id}", daemon=True
        )
        self._thread.start()
        self._handlers = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ntxcp-handler-{gateway_id}"
        )
        self._closed = False

        async def create() -> AsyncGateway:
            return AsyncGateway(
                gateway_id,
                password=password,
                ssl=ssl,
                extra_headers=extra_headers,
                connect_timeout=connect_timeout,
                strict=strict,
                call_timeout=call_timeout,
                queue_capacity=queue_capacity,
                bad_message_limit=bad_message_limit,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                max_message_size=max_message_size,
                reconnect=reconnect,
                backoff=backoff,
                error_capacity=error_capacity,
                store=store,
                boot=boot,
                heartbeat=heartbeat,
                reboot_on_reset=reboot_on_reset,
            )

        try:
            self._gateway: AsyncGateway = self._run(create())
        except BaseException:
            self._shutdown()
            raise

    # --- plumbing --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("gateway is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking gateway call from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _shutdown(self) -> None:
        """End the event loop thread and the handler thread."""
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._handlers.shutdown(wait=False)
        if not self._loop.is_running():
            self._loop.close()

    def _wrap_handler(self, profile: Profile, handler: object | None) -> object | None:
        """Expose a plain-function handler as async methods running on the handler thread."""
        if handler is None:
            return None
        wrapped = SimpleNamespace()
        for spec in ACTIONS.values():
            if spec.profile is not profile or not Role.GATEWAY.handles(spec):
                continue
            method = getattr(handler, spec.handler_method, None)
            if not callable(method):
                continue
            setattr(wrapped, spec.handler_method, self._in_handler_thread(method))
        return wrapped

    def _in_handler_thread(self, method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):
            return method  # an ``async def`` handler runs on the gateway's event loop
        executor = self._handlers

        async def run(request: AnyRequest) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, method, request)

        return run

    def _on_handler_thread(self, handler: StateHandler | None) -> StateHandler | None:
        if handler is None:
            return None
        return functools.partial(self._handlers.submit, handler)

    # --- options and state (the asyncio gateway's attributes) --------------------------

    @property
    def gateway_id(self) -> str:
        """The gateway's id."""
        return self._gateway.gateway_id

    @property
    def strict(self) -> bool:
        """Reject unknown payload fields (applies to the next connection)."""
        return self._gateway.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self._gateway.strict = value

    @property
    def call_timeout(self) -> float:
        """Default seconds before a G→C call fails (spec §2.3.2)."""
        return self._gateway.call_timeout

    @call_timeout.setter
    def call_timeout(self, value: float) -> None:
        self._gateway.call_timeout = value

    @property
    def queue_capacity(self) -> int:
        """Requests that may wait behind the one in flight (next connection)."""
        return self._gateway.queue_capacity

    @queue_capacity.setter
    def queue_capacity(self, value: int) -> None:
        self._gateway.queue_capacity = value

    @property
    def bad_message_limit(self) -> int | None:
        """Bad messages per minute before closing (next connection)."""
        return self._gateway.bad_message_limit

    @bad_message_limit.setter
    def bad_message_limit(self, value: int | None) -> None:
        self._gateway.bad_message_limit = value

    @property
    def reconnect(self) -> bool:
        """Whether the gateway reconnects after unexpected disconnects."""
        return self._gateway.reconnect

    @reconnect.setter
    def reconnect(self, value: bool) -> None:
        self._gateway.reconnect = value

    @property
    def backoff(self) -> Backoff:
        """The reconnect delays."""
        return self._gateway.backoff

    @backoff.setter
    def backoff(self, value: Backoff) -> None:
        self._gateway.backoff = value

    @property
    def boot(self) -> core.BootNotificationRequest | None:
        """The BootNotification sent after every connection (``None``: no lifecycle)."""
        return self._gateway.boot

    @boot.setter
    def boot(self, value: core.BootNotificationRequest | None) -> None:
        self._gateway.boot = value

    @property
    def heartbeat_enabled(self) -> bool:
        """Whether the lifecycle sends Heartbeat at the accepted interval."""
        return self._gateway.heartbeat_enabled

    @heartbeat_enabled.setter
    def heartbeat_enabled(self, value: bool) -> None:
        self._gateway.heartbeat_enabled = value

    @property
    def reboot_on_reset(self) -> bool:
        """Whether an accepted Reset makes the gateway reconnect and boot again."""
        return self._gateway.reboot_on_reset

    @reboot_on_reset.setter
    def reboot_on_reset(self, value: bool) -> None:
        self._gateway.reboot_on_reset = value

    @property
    def registration_status(self) -> core.RegistrationStatus | None:
        """The status of the last BootNotification answer."""
        return self._gateway.registration_status

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds between heartbeats (from the accepted BootNotification, or set)."""
        return self._gateway.heartbeat_interval

    def set_heartbeat_interval(self, seconds: float | None) -> None:
        """Change the heartbeat interval now; see :meth:`ntxcp.Gateway.set_heartbeat_interval`."""

        async def change() -> None:
            self._gateway.set_heartbeat_interval(seconds)

        self._run(change())

    @property
    def state(self) -> GatewayState:
        """Where the gateway stands; see :attr:`ntxcp.Gateway.state`."""
        return self._gateway.state

    @property
    def connect_count(self) -> int:
        """Successful connections so far."""
        return self._gateway.connect_count

    @property
    def last_error(self) -> BaseException | None:
        """Why the last connection attempt failed (``None`` once connected)."""
        return self._gateway.last_error

    @property
    def last_close(self) -> tuple[int, str] | None:
        """Close code and reason of the last lost connection."""
        return self._gateway.last_close

    # --- handlers --------------------------------------------------------------------

    def set_core_handler(self, handler: core.GatewayHandler | None) -> None:
        """Register the core-profile handler (plain methods; spec §5)."""
        self._gateway.set_core_handler(self._wrap_handler(Profile.CORE, handler))  # type: ignore[arg-type]

    def set_firmware_management_handler(self, handler: firmware.GatewayHandler | None) -> None:
        """Register the firmware-profile handler (plain methods; spec §5)."""
        self._gateway.set_firmware_management_handler(
            self._wrap_handler(Profile.FIRMWARE, handler)  # type: ignore[arg-type]
        )

    def set_remote_trigger_handler(self, handler: remotetrigger.GatewayHandler | None) -> None:
        """Register the remote-trigger handler (plain methods; spec §5)."""
        self._gateway.set_remote_trigger_handler(
            self._wrap_handler(Profile.REMOTE_TRIGGER, handler)  # type: ignore[arg-type]
        )

    def set_connected_handler(self, handler: StateHandler | None) -> None:
        """Hook called (on the handler thread) after every (re)connection."""
        self._gateway.set_connected_handler(self._on_handler_thread(handler))

    def set_reconnected_handler(self, handler: StateHandler | None) -> None:
        """Hook called (on the handler thread) after every reconnection (not the first)."""
        self._gateway.set_reconnected_handler(self._on_handler_thread(handler))

    def set_disconnected_handler(self, handler: StateHandler | None) -> None:
        """Hook called (on the handler thread) after every lost connection."""
        self._gateway.set_disconnected_handler(self._on_handler_thread(handler))

    def set_trigger_message_handler(self, handler: TriggerHandler | None) -> None:
        """Set the after-answer hook of TriggerMessage (runs on the handler thread).

        See :meth:`ntxcp.Gateway.set_trigger_message_handler`.
        """
        if handler is None or inspect.iscoroutinefunction(handler):
            self._gateway.set_trigger_message_handler(handler)
            return
        executor = self._handlers
        plain = handler

        async def run(request: remotetrigger.TriggerMessageRequest) -> object:
            return await asyncio.get_running_loop().run_in_executor(executor, plain, request)

        self._gateway.set_trigger_message_handler(run)

    def set_frame_logger(self, tap: FrameTap | None) -> None:
        """Set ``tap(gateway_id, direction, frame, info)`` (runs on the event loop thread).

        Applies to connections opened afterwards; keep it cheap and non-blocking.
        """
        self._gateway.set_frame_logger(tap)

    # --- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The full URL (``<control center URL>/<gatewayId>``) of the latest attempt."""
        return self._gateway.url

    @property
    def urls(self) -> tuple[str, ...]:
        """Every full URL given to :meth:`start`, in order (the failover list)."""
        return self._gateway.urls

    def start(self, url: str | Sequence[str], *, retry: bool = False) -> None:
        """Connect to ``<url>/<gatewayId>``, or to one of several URLs in turn.

        See :meth:`ntxcp.Gateway.start` (and its class docs for the failover policy).
        """
        self._run(self._gateway.start(url, retry=retry))

    def stop(self) -> None:
        """Close with 1000, fail pending calls, stop reconnecting and end the threads."""
        if self._closed:
            return
        try:
            self._run(self._gateway.stop())
        finally:
            self._shutdown()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_connected(self) -> bool:
        """Whether the gateway is connected now (false while reconnecting)."""
        return self._gateway.is_connected

    @property
    def is_ready(self) -> bool:
        """See :attr:`ntxcp.Gateway.is_ready`."""
        return self._gateway.is_ready

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected."""
        self._run(self._gateway.wait_connected(timeout))

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until connected and, with the lifecycle on, boot Accepted."""
        self._run(self._gateway.wait_ready(timeout))

    # --- store and forward (spec §6.2) -------------------------------------------------

    def queue_request(self, request: AnyRequest) -> str:
        """Store a store-and-forward message; see :meth:`ntxcp.Gateway.queue_request`."""

        async def enqueue() -> str:
            return self._gateway.queue_request(request)

        return self._run(enqueue())

    def flush(self, timeout: float | None = None) -> None:
        """Block until the outbox is empty; see :meth:`ntxcp.Gateway.flush`."""
        self._run(self._gateway.flush(timeout))

    @property
    def queued(self) -> int:
        """Messages waiting in the store-and-forward outbox."""
        return self._gateway.queued

    @property
    def store(self) -> MessageStore:
        """The outbox; use it from this thread only between calls (not thread-safe)."""
        return self._gateway.store

    # --- errors ----------------------------------------------------------------------

    def errors(self) -> Iterator[EndpointError]:
        """Yield error-stream reports as they come, until the gateway stops."""
        stream: AsyncIterator[EndpointError] = self._gateway.errors()

        async def next_report() -> EndpointError:
            return await anext(stream)

        while not self._closed:
            try:
                yield self._run(next_report())
            except StopAsyncIteration:
                return

    @property
    def error_stream(self) -> ErrorStream:
        """The error stream object (counters and non-blocking access)."""
        return self._gateway.error_stream

    # --- requests --------------------------------------------------------------------

    def send_request(self, request: Request[C], *, timeout: float | None = None) -> C:
        """Send any G→C request and block until its confirmation (Go ``SendRequest``).

        Args:
            request: the request; its class says the confirmation's.
            timeout: seconds to wait for the answer (default ``call_timeout``).

        Returns:
            The confirmation, of the class the request names.

        Raises:
            NtxcpError: see :meth:`ntxcp.Gateway.send_request`.
        """
        return self._run(self._gateway.send_request(request, timeout=timeout))

    def send_request_async(
        self,
        request: Request[C],
        callback: Callable[[C | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs once on the handler thread.

        Errors that prevent sending are raised here; the callback is then never called.

        Args:
            request: the request.
            callback: called with the confirmation (of the class the request names)
                and ``None``, or ``None`` and the error.
            timeout: seconds to wait for the answer (default ``call_timeout``).
        """

        def on_done(confirmation: C | None, error: BaseException | None) -> None:
            self._handlers.submit(callback, confirmation, error)

        async def submit() -> None:
            self._gateway.send_request_async(request, on_done, timeout=timeout)

        self._run(submit())
