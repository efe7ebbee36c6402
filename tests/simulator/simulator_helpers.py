"""Helpers of the simulator tests: a control center handler that records what arrives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ntxcp import Backoff
from ntxcp.v10 import core, firmware, types

WAIT = 5.0  # s: the longest any test waits for one expected message
FAST_BACKOFF = Backoff(initial=0.05, maximum=0.2)


@dataclass
class Received:
    """One G→C message as the control center handler saw it."""

    gateway_id: str
    action: str
    request: Any
    at: float


class Recorder(core.ControlCenterHandler, firmware.ControlCenterHandler):
    """Answers every G→C action and records it; tests wait for what they expect.

    Attributes:
        boot_answers: statuses to answer BootNotifications with, in turn (the last one
            repeats); Accepted by default.
        interval: the ``interval`` of the BootNotification answer.
    """

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.boot_answers: list[core.RegistrationStatus] = [core.RegistrationStatus.ACCEPTED]
        self.interval = 300
        self._changed = asyncio.Condition()
        self._notifiers: set[asyncio.Task[None]] = set()

    def _record(self, gateway_id: str, request: Any) -> None:
        loop = asyncio.get_running_loop()
        self.messages.append(Received(gateway_id, request.ACTION, request, loop.time()))

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = loop.create_task(notify())
        self._notifiers.add(task)
        task.add_done_callback(self._notifiers.discard)

    def of(self, action: str, gateway_id: str | None = None) -> list[Any]:
        """The requests of one action received so far."""
        return [
            m.request
            for m in self.messages
            if m.action == action and (gateway_id is None or m.gateway_id == gateway_id)
        ]

    async def wait_for(
        self,
        action: str,
        count: int = 1,
        where: Callable[[Any], bool] | None = None,
        timeout: float = WAIT,
    ) -> list[Any]:
        """Wait until ``count`` requests of ``action`` (matching ``where``) arrived."""

        def matching() -> list[Any]:
            return [r for r in self.of(action) if where is None or where(r)]

        async def wait() -> list[Any]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(matching()) >= count)
            return matching()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            got = [m.action for m in self.messages]
            raise AssertionError(f"{count} x {action} not received in {timeout} s: {got}") from None

    # --- answers -------------------------------------------------------------------------

    def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        self._record(gateway_id, request)
        boots = len(self.of("BootNotification", gateway_id))
        status = self.boot_answers[min(boots, len(self.boot_answers)) - 1]
        return core.BootNotificationConfirmation(
            status=status, current_time=datetime.now(UTC), interval=self.interval
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        self._record(gateway_id, request)
        return core.HeartbeatConfirmation(current_time=datetime.now(UTC))

    def on_status_notification(
        self, gateway_id: str, request: core.StatusNotificationRequest
    ) -> core.StatusNotificationConfirmation:
        self._record(gateway_id, request)
        return core.StatusNotificationConfirmation()

    def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        self._record(gateway_id, request)
        return core.MeterValuesConfirmation()

    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        self._record(gateway_id, request)
        return core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED)

    def on_diagnostics_status_notification(
        self, gateway_id: str, request: firmware.DiagnosticsStatusNotificationRequest
    ) -> firmware.DiagnosticsStatusNotificationConfirmation:
        self._record(gateway_id, request)
        return firmware.DiagnosticsStatusNotificationConfirmation()

    def on_firmware_status_notification(
        self, gateway_id: str, request: firmware.FirmwareStatusNotificationRequest
    ) -> firmware.FirmwareStatusNotificationConfirmation:
        self._record(gateway_id, request)
        return firmware.FirmwareStatusNotificationConfirmation()


def sampled(request: core.MeterValuesRequest) -> dict[str, types.SampledValue]:
    """The sampled values of a one-MeterValue request by measurand."""
    assert len(request.meter_value) == 1
    return {v.effective_measurand.value: v for v in request.meter_value[0].sampled_value}


class CloseCodes(logging.Handler):
    """Collects the close codes the control center logs for a gateway's disconnects."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.codes: dict[str, list[int]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "[%s] disconnected (%d %s)" and isinstance(record.args, tuple):
            gateway_id, code = record.args[0], record.args[1]
            self.codes.setdefault(str(gateway_id), []).append(int(code))  # type: ignore[call-overload]
