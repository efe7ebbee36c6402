"""A simulated Ding.X Gateway that behaves like a real one (spec §4, §6.2).

:class:`SimulatedGateway` wraps a :class:`~ntxcp.endpoints.gateway.Gateway` and adds
what the firmware of a real gateway does:

* **boot** (spec §4.1): after every connection a BootNotification; nothing else is sent
  until it is ``Accepted`` (retry after ``interval`` on Pending/Rejected). The endpoint's
  boot lifecycle does this; the simulator then sends a StatusNotification for the
  gateway (``"0"``) and for every service;
* **heartbeat** at the interval the control center gave (or a fixed override), changed
  at once by ChangeConfiguration ``HeartbeatInterval``;
* **meter values**: every ``MeterValueSampleInterval`` one MeterValues per service with
  the measurands of ``MeterValuesSampledData`` (see :mod:`~ntxcp.simulator.process`);
  StatusNotifications when a service changes state;
* **store and forward** (spec §6.2): the four data messages go through the endpoint's
  outbox, in memory or in the SQLite file ``store``, so they survive disconnects (and,
  with a file, restarts) and keep their ``uniqueId`` when re-sent;
* **reset and reboot**: the connection is closed with 1000, the gateway is "off" for
  ``reboot_delay`` seconds, then a new endpoint connects and boots again (a new
  endpoint per boot, like a restarted process);
* every C→G action is answered by :mod:`~ntxcp.simulator.handlers`.

Message counters count CALL frames as they leave and arrive (so re-sent stored
messages count once per attempt); they are statistics of the simulator and survive
resets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import ssl
import time
from collections import Counter
from collections.abc import Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ntxcp.endpoints import Backoff, Gateway
from ntxcp.errors import HandshakeRefusedError, NotConnectedError, NtxcpError
from ntxcp.rpc import FrameInfo, MessageType
from ntxcp.simulator import config as cfg
from ntxcp.simulator.config import ConfigStore, format_seconds
from ntxcp.simulator.handlers import SimulatorHandler
from ntxcp.simulator.process import Datapoint, Plant
from ntxcp.simulator.transfers import (
    Journal,
    TransferError,
    download,
    firmware_version_from,
    upload,
)
from ntxcp.v10 import AnyRequest, core, firmware
from ntxcp.v10.codec import encode_payload
from ntxcp.v10.types import ReadingContext

__all__ = ["SimulatedGateway"]

_log = logging.getLogger("ntxcp.simulator")

_DEFAULT_RETRY_INTERVAL = 30  # s, when UpdateFirmware/GetDiagnostics give none (spec §4.2)
_ENDPOINT_STOP_TIMEOUT = 6.0  # s; the endpoint waits up to 5 s for the closing handshake


class SimulatedGateway:
    """A simulated gateway with services, meters, configuration and file transfers.

    ::

        sim = SimulatedGateway("GW-1", "ws://127.0.0.1:8887/ntxcp", meter_interval=10)
        await sim.run(60)  # connect, boot, heartbeat, meter values for a minute

    Args:
        gateway_id: the gateway id (1..48 printable ASCII, no ``/``).
        url: the control center's base URL; the id is appended (spec §6.2). Several
            URLs make a failover list (see :class:`ntxcp.Gateway`).
        password: secret for HTTP Basic auth (security profiles 1/2).
        ssl: client TLS context (profiles 2/3), also used for ``https`` transfers.
        services: number of services (ids ``1``..``N``).
        meter_interval: seconds between periodic MeterValues (0: none).
        heartbeat_interval: fixed heartbeat interval; ``None`` uses the control
            center's BootNotification ``interval``.
        store: SQLite file of the store-and-forward outbox (``None``: in memory).
        model: ``dingxGatewayModel`` of the BootNotification.
        vendor: ``dingxGatewayVendor``.
        firmware_version: the firmware version at power-on.
        serial_number: ``dingxGatewaySerialNumber`` (default derived from the id).
        reboot_delay: seconds the gateway stays off during a reset or reboot.
        install_delay: seconds a firmware installation takes.
        call_timeout: seconds before a G→C call fails (spec §2.3.2).
        backoff: reconnect delays (spec §6.2 defaults).
        loopback_only: refuse firmware and diagnostics locations that are not on a
            loopback address (for runs driven by a fuzzer).
    """

    def __init__(
        self,
        gateway_id: str,
        url: str | Sequence[str],
        *,
        password: str | None = None,
        ssl: ssl.SSLContext | None = None,
        services: int = 2,
        meter_interval: float = 60.0,
        heartbeat_interval: float | None = None,
        store: str | os.PathLike[str] | None = None,
        model: str = "DX-SIM",
        vendor: str = "Ding.X",
        firmware_version: str = "1.0.0",
        serial_number: str | None = None,
        reboot_delay: float = 1.0,
        install_delay: float = 1.0,
        call_timeout: float = 30.0,
        backoff: Backoff | None = None,
        loopback_only: bool = False,
    ) -> None:
        if meter_interval < 0 or (heartbeat_interval is not None and heartbeat_interval < 0):
            raise ValueError("intervals must not be negative")
        self.gateway_id = gateway_id
        self.urls = (url,) if isinstance(url, str) else tuple(url)
        if not self.urls:
            raise ValueError("give at least one control center URL")
        self.password = password
        self.ssl = ssl
        self.loopback_only = loopback_only
        self.store = store
        self.model = model
        self.vendor = vendor
        self.serial_number = (
            serial_number or "SIM-" + hashlib.sha256(gateway_id.encode()).hexdigest()[:12].upper()
        )
        self.heartbeat_override = heartbeat_interval
        self.reboot_delay = reboot_delay
        self.install_delay = install_delay
        self.call_timeout = call_timeout
        self.backoff = backoff
        self.plant = Plant(gateway_id, services)
        self.config = ConfigStore(
            {
                cfg.HEARTBEAT_INTERVAL: format_seconds(
                    60 if heartbeat_interval is None else heartbeat_interval
                ),
                cfg.METER_VALUE_SAMPLE_INTERVAL: format_seconds(meter_interval),
                cfg.METER_VALUES_SAMPLED_DATA: ",".join(m.value for m in cfg.DEFAULT_SAMPLED_DATA),
                cfg.WEBSOCKET_PING_INTERVAL: "30",
                cfg.VENDOR_NOTE: "",
                cfg.SERVICE_COUNT: str(services),
                cfg.GATEWAY_MODEL: model,
                cfg.GATEWAY_VENDOR: vendor,
                cfg.SERIAL_NUMBER: self.serial_number,
                cfg.FIRMWARE_VERSION: firmware_version,
            }
        )
        self.config.add_listener(self._config_changed)
        self.journal = Journal()
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.dropped = 0
        self.boots = 0
        self.ever_connected = False  # set on the first connection of this process
        self.cache_entries = 0
        self.firmware_status = firmware.FirmwareStatus.IDLE
        self.diagnostics_status = firmware.DiagnosticsStatus.IDLE
        self.last_error: BaseException | None = None
        self.last_event = "off"
        self.last_event_at = 0.0
        self.endpoint: Gateway | None = None
        self._handler = SimulatorHandler(self)
        self._boot_request()  # validates model, vendor, version lengths (spec §4.1)
        self._running = False
        self._powered_at = 0.0
        self._last_advance = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._online: asyncio.Task[None] | None = None
        self._connector: asyncio.Task[None] | None = None
        self._meter_task: asyncio.Task[None] | None = None
        self._firmware_task: asyncio.Task[None] | None = None
        self._diagnostics_task: asyncio.Task[None] | None = None
        self._reboot_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._meter_changed = asyncio.Event()

    # --- state ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the gateway is connected now."""
        return self.endpoint is not None and self.endpoint.is_connected

    @property
    def registration_status(self) -> core.RegistrationStatus | None:
        """The answer to the last BootNotification of this boot (``None`` before one)."""
        return None if self.endpoint is None else self.endpoint.registration_status

    @property
    def registered(self) -> bool:
        """Whether the control center accepted the gateway (spec §4.1)."""
        return self.registration_status is core.RegistrationStatus.ACCEPTED

    @property
    def firmware_version(self) -> str:
        """The running firmware version."""
        return self.config.get(cfg.FIRMWARE_VERSION) or ""

    @property
    def messages_sent(self) -> int:
        """G→C CALLs sent since the simulator was created (every attempt counts)."""
        return sum(self.sent.values())

    @property
    def queued(self) -> int:
        """Data messages waiting in the store-and-forward outbox (spec §6.2)."""
        return 0 if self.endpoint is None else self.endpoint.queued

    @property
    def uptime(self) -> float:
        """Seconds since power-on or the last hard reset."""
        return asyncio.get_running_loop().time() - self._powered_at if self._running else 0.0

    def _note(self, text: str) -> None:
        self.journal.add(text)
        self.last_event = text
        self.last_event_at = time.monotonic()
        _log.info("[%s] %s", self.gateway_id, text, extra={"gateway_id": self.gateway_id})

    # --- power -----------------------------------------------------------------------

    async def start(self) -> None:
        """Power on: connect (one attempt, then retrying in the background) and boot.

        Returns after the first connection attempt; :attr:`connected` and
        :attr:`last_error` say how it went. A refused handshake keeps being retried
        with the endpoint's backoff (a permanent refusal at its longest delay).
        """
        if self._running:
            raise RuntimeError("simulated gateway already started")
        self._running = True
        loop = asyncio.get_running_loop()
        self._powered_at = self._last_advance = loop.time()
        self._meter_task = loop.create_task(self._meter_loop())
        await self._power_on()

    async def stop(self) -> None:
        """Power off: close with 1000 and stop every activity (spec §6.2, §6.3)."""
        if not self._running:
            return
        self._running = False
        tasks = [
            t
            for t in (
                self._reboot_task,
                self._firmware_task,
                self._diagnostics_task,
                self._meter_task,
                self._online,
                self._connector,
                *self._tasks,
            )
            if t is not None and t is not asyncio.current_task()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._power_off()
        await self._wait_closing(set(self._closing))
        self._note("powered off")

    async def run(self, duration: float | None = None) -> None:
        """Start, run for ``duration`` seconds (``None``: until cancelled), then stop."""
        await self.start()
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            await self.stop()

    async def __aenter__(self) -> SimulatedGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _new_endpoint(self) -> Gateway:
        ping = self.config.get_int(cfg.WEBSOCKET_PING_INTERVAL, 30)
        endpoint = Gateway(
            self.gateway_id,
            password=self.password,
            ssl=self.ssl,
            call_timeout=self.call_timeout,
            ping_interval=ping or None,
            backoff=self.backoff,
            store=self.store,
            # spec §4.1: the endpoint boots after every connection, holds back every
            # other G→C message until Accepted, then heartbeats at the interval we set;
            # resets are ours.
            boot=self._boot_request(),
            reboot_on_reset=False,
        )
        endpoint.set_core_handler(self._handler)
        endpoint.set_firmware_management_handler(self._handler)
        endpoint.set_remote_trigger_handler(self._handler)
        endpoint.set_connected_handler(self._on_connected)
        endpoint.set_disconnected_handler(self._on_disconnected)
        endpoint.set_frame_logger(self._count_frame)
        endpoint.set_trigger_message_handler(self._handler.send_triggered)
        return endpoint

    async def _power_on(self) -> None:
        endpoint = self.endpoint = self._new_endpoint()
        try:
            await endpoint.start(self.urls)
            self.last_error = None
        except (OSError, TimeoutError, HandshakeRefusedError, NotConnectedError) as exc:
            self.last_error = exc
            self._note(f"cannot connect: {exc}; retrying")
            self._connector = asyncio.get_running_loop().create_task(self._connect(endpoint))

    async def _connect(self, endpoint: Gateway) -> None:
        try:
            await endpoint.start(self.urls, retry=True)
            self.last_error = None
        except NtxcpError as exc:  # stopped, or backoff.max_attempts used up
            self.last_error = exc

    async def _power_off(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        if self._online is not None:
            self._online.cancel()
            self._online = None
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
            self._connector = None
        if endpoint is not None:
            # spec §6.2: close 1000, stop reconnecting. Shielded: a stop() that cancels
            # a reboot half-way must not leave the connection open; stop() waits for it.
            closing = asyncio.ensure_future(endpoint.stop())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            await self._wait_closing({closing})

    async def _wait_closing(self, closing: set[asyncio.Future[None]]) -> None:
        """Wait for endpoints to stop, at most ``_ENDPOINT_STOP_TIMEOUT`` (spec §6.3)."""
        if not closing:
            return
        _, late = await asyncio.wait(closing, timeout=_ENDPOINT_STOP_TIMEOUT)
        if late:  # the close frame went out first; only the endpoint's own tasks linger
            self._closing.difference_update(late)
            self._note("endpoint did not finish stopping in time")

    def reboot(self, *, hard: bool = False) -> asyncio.Task[None]:
        """Reboot now (Reset, or after a firmware installation).

        The connection closes with 1000, the gateway stays off for ``reboot_delay``
        seconds, then connects and boots again. A firmware download or diagnostics
        upload in progress is abandoned. A hard reboot also restarts the uptime and
        empties the cache and the journal; configuration, meters and message counters
        survive both kinds.

        Returns:
            The task doing it.
        """
        if self._reboot_task is not None and not self._reboot_task.done():
            return self._reboot_task
        self._reboot_task = asyncio.get_running_loop().create_task(self._reboot(hard))
        return self._reboot_task

    async def _reboot(self, hard: bool) -> None:
        self._note(f"{'hard' if hard else 'soft'} reboot")
        current = asyncio.current_task()
        for task in (self._firmware_task, self._diagnostics_task):
            if task is not None and task is not current:
                task.cancel()
        self.firmware_status = firmware.FirmwareStatus.IDLE
        self.diagnostics_status = firmware.DiagnosticsStatus.IDLE
        await self._power_off()
        if hard:
            self._powered_at = asyncio.get_running_loop().time()
            self.cache_entries = 0
            self.journal.clear()
        await asyncio.sleep(self.reboot_delay)
        if self._running:
            await self._power_on()

    # --- per connection: boot, statuses, heartbeat (spec §4.1) ------------------------

    def _on_connected(self) -> None:
        self._note("connected")
        self.ever_connected = True
        endpoint = self.endpoint
        if endpoint is not None:
            if self._online is not None:
                self._online.cancel()
            self._online = asyncio.get_running_loop().create_task(self._run_online(endpoint))

    def _on_disconnected(self) -> None:
        self._note("disconnected")
        if self._online is not None:
            self._online.cancel()
            self._online = None

    async def _run_online(self, endpoint: Gateway) -> None:
        """Wait for boot Accepted, then report every status (spec §4.1)."""
        await endpoint.wait_ready()
        self.boots += 1
        self._boot_accepted(endpoint.heartbeat_interval)
        self.send_status(None)
        if self.boots == 1 and self.config.get_seconds(cfg.METER_VALUE_SAMPLE_INTERVAL) > 0:
            # A reading at power-on: the meter's values are known from the first boot,
            # not only one sample interval (60 s by default) later.
            self.send_meter_values(None, ReadingContext.SAMPLE_PERIODIC)

    def _boot_accepted(self, interval: float | None) -> None:
        """Apply an accepted boot: the heartbeat interval is the answer's or the override."""
        self._note(f"boot Accepted (interval {interval} s)")
        if self.heartbeat_override is None and interval:
            self.config.set(cfg.HEARTBEAT_INTERVAL, str(interval))
        self._apply_heartbeat_interval()

    def _apply_heartbeat_interval(self) -> None:
        """Give the endpoint's heartbeat the configured interval (0: no heartbeats)."""
        endpoint = self.endpoint
        if endpoint is not None:
            endpoint.set_heartbeat_interval(self.config.get_seconds(cfg.HEARTBEAT_INTERVAL))

    async def _sleep(self, seconds: float, changed: asyncio.Event) -> bool:
        """Sleep ``seconds`` (0: until ``changed``); ``False`` when ``changed`` woke us."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the event is set, and stop() would wait forever.
        try:
            async with asyncio.timeout(seconds if seconds > 0 else None):
                await changed.wait()
        except TimeoutError:
            return True
        return False

    def _config_changed(self, key: str, value: str) -> None:
        self._note(f"configuration {key} = {value!r}")
        if key == cfg.HEARTBEAT_INTERVAL:
            self._apply_heartbeat_interval()
        elif key == cfg.METER_VALUE_SAMPLE_INTERVAL:
            self._meter_changed.set()

    # --- meters (spec §4.1 MeterValues, StatusNotification) ---------------------------

    def advance(self) -> None:
        """Bring the process up to now; report services that changed state."""
        now = asyncio.get_running_loop().time()
        elapsed, self._last_advance = now - self._last_advance, now
        sessions = self.plant.sessions_started
        for service in self.plant.advance(elapsed):
            self.send_status(str(service.service_id))
        self.cache_entries += self.plant.sessions_started - sessions

    async def _meter_loop(self) -> None:
        while True:
            interval = self.config.get_seconds(cfg.METER_VALUE_SAMPLE_INTERVAL)
            self._meter_changed.clear()
            due = await self._sleep(interval if interval > 0 else 3600.0, self._meter_changed)
            self.advance()
            if due and interval > 0:
                self.send_meter_values(None, ReadingContext.SAMPLE_PERIODIC)

    # --- G→C messages -----------------------------------------------------------------

    def _boot_request(self) -> core.BootNotificationRequest:
        request = core.BootNotificationRequest(
            dingx_gateway_model=self.model,
            dingx_gateway_vendor=self.vendor,
            dingx_gateway_serial_number=self.serial_number,
            firmware_version=self.firmware_version,
            meter_type="SIM-METER",
        )
        try:
            encode_payload(request)
        except NtxcpError as exc:
            raise ValueError(f"invalid BootNotification: {exc}") from None
        return request

    def _count_frame(self, gateway_id: str, direction: str, frame: bytes, info: FrameInfo) -> None:
        if info.message_type == MessageType.CALL and info.action is not None:
            (self.sent if direction == "out" else self.received)[info.action] += 1

    def _queue(self, request: AnyRequest) -> None:
        """Hand a data message to the outbox (spec §6.2); never blocks."""
        endpoint = self.endpoint
        if endpoint is None:  # rebooting: the gateway is off
            self.dropped += 1
            return

        def delivered(_: object, error: BaseException | None) -> None:
            if error is not None and not isinstance(error, NotConnectedError):
                self._note(f"{request.ACTION} not delivered: {error}")

        try:
            endpoint.send_request_async(request, delivered)
        except NtxcpError as exc:  # outbox full (spec §6.2 bounded queue)
            self.dropped += 1
            self._note(f"{request.ACTION} dropped: {exc}")

    def send_status(self, service_id: str | None) -> None:
        """Queue a StatusNotification for ``service_id`` (``None``: ``"0"`` and every service)."""
        now = datetime.now(UTC)
        targets = ["0", *(str(s.service_id) for s in self.plant.services)]
        for target in targets if service_id is None else [service_id]:
            service = self.plant.service(target)
            if service is None:
                status, error_code, info = (
                    core.DingxGatewayStatus.AVAILABLE,
                    core.DingxGatewayErrorCode.NO_ERROR,
                    None,
                )
            else:
                status, error_code, info = service.status, service.error_code, service.info
            self._queue(
                core.StatusNotificationRequest(
                    service_id=target,
                    error_code=error_code,
                    status=status,
                    info=info,
                    timestamp=now,
                )
            )

    def set_service_status(
        self,
        service_id: int,
        status: core.DingxGatewayStatus | str,
        error_code: core.DingxGatewayErrorCode | str = core.DingxGatewayErrorCode.NO_ERROR,
        info: str | None = None,
    ) -> None:
        """Put a service in a state (a fault, maintenance …) and report it (spec §4.1).

        Raises:
            ValueError: no such service, or an unknown status/error code.
        """
        service = self.plant.service(service_id)
        if service is None:
            raise ValueError(f"no service {service_id}")
        self.advance()
        if service.set_status(
            core.DingxGatewayStatus(status), core.DingxGatewayErrorCode(error_code), info
        ):
            self.send_status(str(service_id))

    def send_meter_values(self, service_id: int | None, context: ReadingContext) -> None:
        """Queue MeterValues of one service (0: the whole gateway) or of every service."""
        now = datetime.now(UTC)
        measurands = self.config.measurands()
        if service_id == 0:
            sample = self.plant.total_sample(measurands, now, context)
            self._queue(core.MeterValuesRequest(service_id=0, meter_value=[sample]))
            return
        for service in self.plant.services:
            if service_id is None or service.service_id == service_id:
                sample = service.sample(measurands, now, context)
                self._queue(
                    core.MeterValuesRequest(service_id=service.service_id, meter_value=[sample])
                )

    async def send_boot(self) -> core.BootNotificationConfirmation | None:
        """Send a BootNotification now (TriggerMessage) and apply its answer."""
        endpoint = self.endpoint
        if endpoint is None:
            return None
        was_ready = endpoint.is_ready
        try:
            # spec §4.1: an Accepted answer ends the Pending wait, whichever boot it
            # answers; the endpoint notices it and releases the held messages.
            conf = await endpoint.send_request(self._boot_request())
        except NtxcpError as exc:
            self._note(f"BootNotification failed: {exc}")
            return None
        if conf.status is core.RegistrationStatus.ACCEPTED:
            if not was_ready:
                return conf  # _run_online reports the acceptance
            self._boot_accepted(conf.interval)
        else:
            self._note(f"boot {conf.status.value}")
        return conf

    async def send_heartbeat(self) -> None:
        """Send a Heartbeat now (spec §4.1)."""
        endpoint = self.endpoint
        if endpoint is None:
            return
        try:
            await endpoint.heartbeat()
        except NtxcpError as exc:
            self._note(f"Heartbeat failed: {exc}")

    def send_firmware_status(self, status: firmware.FirmwareStatus | None = None) -> None:
        """Queue a FirmwareStatusNotification (default: the current state, spec §4.2)."""
        self._queue(
            firmware.FirmwareStatusNotificationRequest(status=status or self.firmware_status)
        )

    def send_diagnostics_status(self, status: firmware.DiagnosticsStatus | None = None) -> None:
        """Queue a DiagnosticsStatusNotification (default: the current state, spec §4.2)."""
        self._queue(
            firmware.DiagnosticsStatusNotificationRequest(status=status or self.diagnostics_status)
        )

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """Run a follow-up of an answer (after it left) as a task the gateway owns."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error(
                "[%s] follow-up task failed",
                self.gateway_id,
                exc_info=task.exception(),
                extra={"gateway_id": self.gateway_id},
            )

    # --- CaptureProcess (spec §4.1) ----------------------------------------------------

    def datapoints(self, service_id: str) -> dict[str, Datapoint] | None:
        """The datapoints of a service (``"0"``: the gateway); ``None`` for an unknown one."""
        self.advance()
        if service_id.strip() == "0":
            points = self.plant.total_datapoints()
            points["uptime"] = Datapoint(f"{self.uptime:.0f}", "s")
            points["state"] = Datapoint("Available" if self.registered else "Unavailable", None)
            points["firmwareVersion"] = Datapoint(self.firmware_version, None)
            return points
        service = self.plant.service(service_id)
        return None if service is None else service.datapoints()

    # --- UpdateFirmware (spec §4.2) ----------------------------------------------------

    def update_firmware(self, request: firmware.UpdateFirmwareRequest) -> None:
        """Start a firmware update (replacing one in progress)."""
        if self._firmware_task is not None:
            self._firmware_task.cancel()
        self._firmware_task = self.spawn(self._update_firmware(request))

    async def _update_firmware(self, request: firmware.UpdateFirmwareRequest) -> None:
        wait = (request.retrieve_date - datetime.now(UTC)).total_seconds()
        self._note(f"firmware update from {request.location} in {max(wait, 0):.0f} s")
        if wait > 0:
            await asyncio.sleep(wait)
        self._set_firmware_status(firmware.FirmwareStatus.DOWNLOADING)
        try:
            image = await download(
                request.location,
                retries=request.retries or 0,
                retry_interval=_retry_interval(request.retry_interval),
                ssl_context=self.ssl,
                loopback_only=self.loopback_only,
            )
        except TransferError as exc:
            self._note(str(exc))
            self._set_firmware_status(firmware.FirmwareStatus.DOWNLOAD_FAILED)
            self.firmware_status = firmware.FirmwareStatus.IDLE
            return
        self._note(f"downloaded {image.file_name}: {image.size} bytes, sha256 {image.sha256}")
        self._set_firmware_status(firmware.FirmwareStatus.DOWNLOADED)
        self._set_firmware_status(firmware.FirmwareStatus.INSTALLING)
        await asyncio.sleep(self.install_delay)
        version = firmware_version_from(image.file_name, image.sha256)
        self.config.set(cfg.FIRMWARE_VERSION, version)
        self.firmware_status = firmware.FirmwareStatus.IDLE
        endpoint = self.endpoint
        if endpoint is not None:
            try:  # report Installed before rebooting into the new version
                await endpoint.firmware_status_notification(
                    firmware.FirmwareStatus.INSTALLED, timeout=min(self.call_timeout, 10.0)
                )
            except NtxcpError as exc:
                self._note(f"Installed not yet delivered: {exc}")
        self._note(f"firmware {version} installed")
        self.reboot()

    def _set_firmware_status(self, status: firmware.FirmwareStatus) -> None:
        self.firmware_status = status
        self._note(f"firmware {status.value}")
        self.send_firmware_status(status)

    # --- GetDiagnostics (spec §4.2) ----------------------------------------------------

    def diagnostics_file_name(self) -> str:
        """A file name for a diagnostics upload: the id, then the time (CiString255)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.gateway_id)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{safe}-diagnostics-{stamp}.txt"

    def diagnostics_report(
        self, start: datetime | None = None, stop: datetime | None = None
    ) -> str:
        """The diagnostics file: identity, state, configuration, counters, log lines."""
        lines = [
            f"# ntxcp simulated gateway diagnostics: {self.gateway_id}",
            f"generated: {datetime.now(UTC).isoformat(timespec='seconds')}",
            f"model: {self.model}  vendor: {self.vendor}  serial: {self.serial_number}",
            f"firmware: {self.firmware_version}",
            f"uptime_s: {self.uptime:.0f}  boots: {self.boots}",
            f"registration: {_value(self.registration_status)}  connected: {self.connected}",
            "",
            "[configuration]",
            *(f"{key} = {value}" for key, value in self.config.as_dict().items()),
            "",
            "[services]",
            *(
                f"{s.service_id}: {s.status.value} {s.error_code.value} "
                f"energy={s.energy_wh:.1f}Wh power={s.power_w:.1f}W"
                for s in self.plant.services
            ),
            "",
            "[counters]",
            *_counter_lines("sent", self.sent),
            *_counter_lines("received", self.received),
            f"queued {self.queued}",
            f"dropped {self.dropped}",
            "",
            "[log]",
            *self.journal.lines(start, stop),
        ]
        return "\n".join(lines) + "\n"

    def get_diagnostics(self, request: firmware.GetDiagnosticsRequest) -> str:
        """Start a diagnostics upload (replacing one in progress); returns the file name."""
        file_name = self.diagnostics_file_name()
        if self._diagnostics_task is not None:
            self._diagnostics_task.cancel()
        self._diagnostics_task = self.spawn(self._upload_diagnostics(request, file_name))
        return file_name

    async def _upload_diagnostics(
        self, request: firmware.GetDiagnosticsRequest, file_name: str
    ) -> None:
        await asyncio.sleep(0)  # the confirmation leaves first (spec §4.2)
        self._set_diagnostics_status(firmware.DiagnosticsStatus.UPLOADING)
        content = self.diagnostics_report(request.start_time, request.stop_time).encode()
        try:
            attempts = await upload(
                request.location,
                file_name,
                content,
                retries=request.retries or 0,
                retry_interval=_retry_interval(request.retry_interval),
                ssl_context=self.ssl,
                loopback_only=self.loopback_only,
            )
        except TransferError as exc:
            self._note(str(exc))
            self._set_diagnostics_status(firmware.DiagnosticsStatus.UPLOAD_FAILED)
        else:
            self._note(f"uploaded {file_name} ({len(content)} bytes, {attempts} attempt(s))")
            self._set_diagnostics_status(firmware.DiagnosticsStatus.UPLOADED)
        self.diagnostics_status = firmware.DiagnosticsStatus.IDLE

    def _set_diagnostics_status(self, status: firmware.DiagnosticsStatus) -> None:
        self.diagnostics_status = status
        self.send_diagnostics_status(status)


def _retry_interval(seconds: int | None) -> float:
    return float(_DEFAULT_RETRY_INTERVAL if seconds is None else seconds)


def _value(status: core.RegistrationStatus | None) -> str:
    return "-" if status is None else status.value


def _counter_lines(label: str, counter: Counter[str]) -> Iterable[str]:
    return (f"{label} {action} {count}" for action, count in sorted(counter.items()))
