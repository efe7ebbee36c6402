"""The gateway's boot / heartbeat / reboot lifecycle (spec §4.1), one part of the Gateway.

On when the gateway is given a ``boot`` request: after every connection it sends the
BootNotification until ``Accepted`` (retrying after the ``interval`` of a Pending or
Rejected answer, 60 s when 0, and with the backoff after an error), then a Heartbeat
every :attr:`Lifecycle.heartbeat_interval` seconds. The interval comes from the
accepted BootNotification and can be changed at run time
(:meth:`Lifecycle.set_heartbeat_interval`). After answering a ``Reset`` with
``Accepted`` the gateway "reboots": it closes with 1000, reconnects at once and boots
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ntxcp.endpoints._session import Session
from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    EndpointError,
    ErrorKind,
    NotConnectedError,
    QueueFullError,
)
from ntxcp.v10 import Confirmation, core

__all__ = ["DEFAULT_RETRY_INTERVAL", "Lifecycle"]

DEFAULT_RETRY_INTERVAL = 60
"""Spec §4.1: a Pending/Rejected boot with ``interval`` 0 is retried after 60 s."""

Report = Callable[[EndpointError], None]


class Lifecycle:
    """Boot until Accepted, then heartbeat, on each connection (spec §4.1).

    Args:
        gateway_id: the gateway, for reports and logs.
        boot: the BootNotification to send; ``None`` turns the lifecycle off (the
            application boots itself, see :meth:`record_boot`).
        report: puts a report on the gateway's error stream.
        retry_delay: ``retry_delay(n)`` seconds before the ``n``-th retry of a failed boot.
        on_accepted: called once a boot is accepted on the connection.
        heartbeat: send heartbeats at the accepted interval.
        reboot_on_reset: reconnect and boot again after an accepted Reset.
    """

    def __init__(
        self,
        gateway_id: str,
        boot: core.BootNotificationRequest | None,
        *,
        report: Report,
        retry_delay: Callable[[int], float],
        on_accepted: Callable[[], None],
        heartbeat: bool = True,
        reboot_on_reset: bool = True,
    ) -> None:
        self.gateway_id = gateway_id
        self.boot = boot
        self.heartbeat_enabled = heartbeat
        self.reboot_on_reset = reboot_on_reset
        self.registration_status: core.RegistrationStatus | None = None
        self.heartbeat_interval: float | None = None
        self._report = report
        self._retry_delay = retry_delay
        self._on_accepted = on_accepted
        self._task: asyncio.Task[None] | None = None
        self._interval_changed = asyncio.Event()

    @property
    def enabled(self) -> bool:
        """Whether the gateway boots by itself (a ``boot`` request was given)."""
        return self.boot is not None

    def set_heartbeat_interval(self, seconds: float | None) -> None:
        """Change the heartbeat interval now; the next Heartbeat goes ``seconds`` later.

        Args:
            seconds: the new interval; ``None`` or 0 stops the heartbeats until the
                next accepted BootNotification sets one.

        Raises:
            ValueError: a negative interval.
        """
        if seconds is not None and seconds < 0:
            raise ValueError("the heartbeat interval must be >= 0 seconds")
        self.heartbeat_interval = seconds
        self._interval_changed.set()

    def start(self, session: Session) -> None:
        """Run the lifecycle on a new connection (when enabled)."""
        if self.boot is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(session))

    def stop(self) -> asyncio.Task[None] | None:
        """Cancel the lifecycle of the current connection; returns its task, if any."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    def record_boot(self, confirmation: core.BootNotificationConfirmation) -> bool:
        """Take note of a BootNotification answer; ``True`` when it is Accepted.

        A boot the application sent itself counts like the lifecycle's own (spec §4.1).
        """
        self.registration_status = confirmation.status
        if confirmation.status is core.RegistrationStatus.ACCEPTED:
            self.set_heartbeat_interval(confirmation.interval)
            return True
        return False

    def reboots_after(self, confirmation: Confirmation) -> bool:
        """Whether answering with ``confirmation`` makes the gateway reboot (spec §4.1)."""
        return (
            self.boot is not None
            and self.reboot_on_reset
            and isinstance(confirmation, core.ResetConfirmation)
            and confirmation.status is core.ResetStatus.ACCEPTED
        )

    async def _run(self, session: Session) -> None:
        """Boot until Accepted, then heartbeat, for one connection."""
        try:
            if await self._boot(session):
                await self._heartbeats(session)
        except NotConnectedError:
            return
        except Exception as exc:  # never let the task die silently
            self._report(
                EndpointError(ErrorKind.LIFECYCLE_ERROR, repr(exc), gateway_id=self.gateway_id)
            )

    async def _boot(self, session: Session) -> bool:
        """Send ``boot`` until Accepted (spec §4.1); ``False`` if the connection went."""
        assert self.boot is not None
        failures = 0
        while session.is_open:
            try:
                confirmation = await session.send_call(self.boot, None)
            except (CallError, CallTimeoutError, QueueFullError) as exc:
                self._report(
                    EndpointError(ErrorKind.BOOT_FAILED, str(exc), gateway_id=self.gateway_id)
                )
                await asyncio.sleep(self._retry_delay(failures))
                failures += 1
                continue
            if self.record_boot(confirmation):
                self._on_accepted()
                return True
            # spec §4.1: hold back, retry after interval (default 60 s when 0)
            await asyncio.sleep(confirmation.interval or DEFAULT_RETRY_INTERVAL)
        return False

    async def _heartbeats(self, session: Session) -> None:
        """Send Heartbeat every :attr:`heartbeat_interval` seconds (spec §4.1).

        A new interval (:meth:`set_heartbeat_interval`) restarts the wait at once.
        """
        while session.is_open:
            self._interval_changed.clear()
            interval = self.heartbeat_interval
            if not (self.heartbeat_enabled and interval):
                await self._interval_changed.wait()
                continue
            try:
                async with asyncio.timeout(interval):
                    await self._interval_changed.wait()
                continue  # the interval changed: wait the new one from now
            except TimeoutError:
                pass
            try:
                await session.send_call(core.HeartbeatRequest(), None)
            except (CallError, CallTimeoutError, QueueFullError) as exc:
                self._report(
                    EndpointError(ErrorKind.HEARTBEAT_FAILED, str(exc), gateway_id=self.gateway_id)
                )
