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
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, TypeVar

from ntxcp.endpoints.gateway import Gateway as AsyncGateway
from ntxcp.endpoints.store import MessageStore
from ntxcp.errors import EndpointError
from ntxcp.rpc import Role
from ntxcp.v10 import core, firmware, remotetrigger, types
from ntxcp.v10._base import Confirmation, Profile, Request
from ntxcp.v10.registry import ACTIONS

__all__ = ["Gateway"]

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Gateway:
    """A blocking Ding.X Gateway with the same methods as :class:`ntxcp.Gateway`.

    Args:
        gateway_id: the gateway's id.
        **options: every keyword option of :class:`ntxcp.Gateway`.
    """

    def __init__(self, gateway_id: str, **options: Any) -> None:
        self.gateway_id = gateway_id
        self._loop = _new_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"ntxcp-loop-{gateway_id}", daemon=True
        )
        self._thread.start()
        self._handlers = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ntxcp-handler-{gateway_id}"
        )
        self._closed = False
        self._gateway: AsyncGateway = self._run(self._create(gateway_id, options))

    @staticmethod
    async def _create(gateway_id: str, options: dict[str, Any]) -> AsyncGateway:
        return AsyncGateway(gateway_id, **options)

    # --- plumbing --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("gateway is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking gateway call from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

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

        async def run(request: Request) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, method, request)

        return run

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

    # --- lifecycle -------------------------------------------------------------------

    def start(self, url: str, *, retry: bool = False) -> None:
        """Connect to ``<url>/<gatewayId>``; see :meth:`ntxcp.Gateway.start`."""
        self._run(self._gateway.start(url, retry=retry))

    def stop(self) -> None:
        """Close with 1000, fail pending calls, stop reconnecting and end the threads."""
        if self._closed:
            return
        try:
            self._run(self._gateway.stop())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._handlers.shutdown(wait=False)
            if not self._loop.is_running():
                self._loop.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def is_connected(self) -> bool:
        """Whether the gateway is connected now (false while reconnecting)."""
        return self._gateway.is_connected

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected."""
        self._run(self._gateway.wait_connected(timeout))

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until connected and, with the lifecycle on, boot Accepted."""
        self._run(self._gateway.wait_ready(timeout))

    @property
    def is_ready(self) -> bool:
        """See :attr:`ntxcp.Gateway.is_ready`."""
        return self._gateway.is_ready

    @property
    def last_error(self) -> BaseException | None:
        """Why the last connection attempt failed (``None`` once connected)."""
        return self._gateway.last_error

    # --- store and forward (spec §6.2) -------------------------------------------------

    def queue_request(self, request: Request) -> str:
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

    def errors(self) -> Iterator[EndpointError]:
        """Yield error-stream reports as they come, until the gateway stops."""
        stream = self._gateway.errors()
        while not self._closed:
            try:
                yield self._run(anext(stream))  # type: ignore[arg-type]
            except StopAsyncIteration:
                return

    # --- requests --------------------------------------------------------------------

    def send_request(self, request: Request, *, timeout: float | None = None) -> Confirmation:
        """Send any G→C request and block until its confirmation (Go ``SendRequest``)."""
        return self._run(self._gateway.send_request(request, timeout=timeout))

    def send_request_async(
        self,
        request: Request,
        callback: Callable[[Confirmation | None, BaseException | None], object],
        *,
        timeout: float | None = None,
    ) -> None:
        """Send a request; ``callback(confirmation, error)`` runs once on the handler thread.

        Errors that prevent sending are raised here; the callback is then never called.
        """

        def on_done(confirmation: Confirmation | None, error: BaseException | None) -> None:
            self._handlers.submit(callback, confirmation, error)

        async def submit() -> None:
            self._gateway.send_request_async(request, on_done, timeout=timeout)

        self._run(submit())

    def boot_notification(
        self, dingx_gateway_model: str, **fields: Any
    ) -> core.BootNotificationConfirmation:
        """Blocking :meth:`ntxcp.Gateway.boot_notification`."""
        return self._run(self._gateway.boot_notification(dingx_gateway_model, **fields))

    def heartbeat(self, *, timeout: float | None = None) -> core.HeartbeatConfirmation:
        """Blocking :meth:`ntxcp.Gateway.heartbeat`."""
        return self._run(self._gateway.heartbeat(timeout=timeout))

    def status_notification(
        self,
        service_id: str,
        error_code: core.DingxGatewayErrorCode | str,
        status: core.DingxGatewayStatus | str,
        **fields: Any,
    ) -> core.StatusNotificationConfirmation:
        """Blocking :meth:`ntxcp.Gateway.status_notification`."""
        return self._run(
            self._gateway.status_notification(service_id, error_code, status, **fields)
        )

    def meter_values(
        self, service_id: int, meter_value: Sequence[types.MeterValue], **fields: Any
    ) -> core.MeterValuesConfirmation:
        """Blocking :meth:`ntxcp.Gateway.meter_values`."""
        return self._run(self._gateway.meter_values(service_id, meter_value, **fields))

    def data_transfer(self, vendor_id: str, **fields: Any) -> core.DataTransferConfirmation:
        """Blocking :meth:`ntxcp.Gateway.data_transfer`."""
        return self._run(self._gateway.data_transfer(vendor_id, **fields))

    def diagnostics_status_notification(
        self, status: firmware.DiagnosticsStatus | str, **fields: Any
    ) -> firmware.DiagnosticsStatusNotificationConfirmation:
        """Blocking :meth:`ntxcp.Gateway.diagnostics_status_notification`."""
        return self._run(self._gateway.diagnostics_status_notification(status, **fields))

    def firmware_status_notification(
        self, status: firmware.FirmwareStatus | str, **fields: Any
    ) -> firmware.FirmwareStatusNotificationConfirmation:
        """Blocking :meth:`ntxcp.Gateway.firmware_status_notification`."""
        return self._run(self._gateway.firmware_status_notification(status, **fields))

    def set_connected_handler(self, handler: Callable[[], object] | None) -> None:
        """Hook called (on the handler thread) after every (re)connection."""
        self._gateway.set_connected_handler(self._on_handler_thread(handler))

    def set_reconnected_handler(self, handler: Callable[[], object] | None) -> None:
        """Hook called (on the handler thread) after every reconnection (not the first)."""
        self._gateway.set_reconnected_handler(self._on_handler_thread(handler))

    def set_disconnected_handler(self, handler: Callable[[], object] | None) -> None:
        """Hook called (on the handler thread) after every lost connection."""
        self._gateway.set_disconnected_handler(self._on_handler_thread(handler))

    def _on_handler_thread(
        self, handler: Callable[[], object] | None
    ) -> Callable[[], object] | None:
        if handler is None:
            return None
        return functools.partial(self._handlers.submit, handler)
