"""How a simulated gateway answers the control center's CALLs (spec §4, §5).

:class:`SimulatorHandler` implements the gateway side of all three profiles. Answers
are computed at once (plain ``def`` handlers, spec §6.4); whatever the action asks the
gateway to *do* afterwards (send a triggered message, reboot, transfer a file) runs in
a task started after the confirmation was queued, so the confirmation always leaves
first.

Decisions where the spec leaves room (documented here once):

* **TriggerMessage** (spec §4.3): until the BootNotification is ``Accepted`` only a
  BootNotification may be triggered (others: ``Rejected``, because spec §4.1 forbids
  any other G→C message then). ``serviceId`` matters for StatusNotification
  (``"0"``..``"N"``) and MeterValues (``"0"``: the gateway's main meter, the sum of
  the services; ``"1"``..``"N"``); any other value is ``Rejected``. Without it every
  service (and ``"0"`` for StatusNotification) is reported. Diagnostics and firmware
  status report the activity in progress, ``Idle`` when there is none.
* **CaptureProcess** (spec §4.1): datapoint ids are case-insensitive (CiString50).
  ``Accepted`` when at least one requested id is known (the others are listed in
  ``unknownDatapointIds``), ``Rejected`` when none is, ``UnknownService`` for a
  service that does not exist. Service ``"0"`` is the gateway itself.
* **DataTransfer** (spec §4.1): vendor ``Ding.X`` (any case) knows the message ids
  ``echo`` (answers the request's ``data``) and ``state`` (a JSON summary of the
  gateway); other ids are ``UnknownMessageId``, other vendors ``UnknownVendorId``.
* **Reset** (spec §4.1): always ``Accepted``; the gateway then reboots.
* **GetDiagnostics/UpdateFirmware** (spec §4.2): absent ``retries`` means no retry,
  absent ``retryInterval`` 30 s.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ntxcp.v10 import AnyRequest, core, firmware, remotetrigger
from ntxcp.v10.types import CapturedDatapoint, ReadingContext

if TYPE_CHECKING:
    from ntxcp.simulator.gateway import SimulatedGateway

__all__ = ["SimulatorHandler"]

VENDOR_ID = "Ding.X"
"""The vendor whose DataTransfer messages the simulator knows (spec §4.1)."""

_Trigger = remotetrigger.MessageTrigger


class SimulatorHandler(core.GatewayHandler, firmware.GatewayHandler, remotetrigger.GatewayHandler):
    """The C→G handler of every profile of one simulated gateway (spec §5).

    Args:
        gateway: the simulated gateway whose state the answers read and change.
    """

    def __init__(self, gateway: SimulatedGateway) -> None:
        self.gateway = gateway

    # --- core profile (spec §4.1) ------------------------------------------------------

    def on_change_configuration(
        self, request: core.ChangeConfigurationRequest
    ) -> core.ChangeConfigurationConfirmation:
        """Set a configuration key; changes take effect at once (or at the next boot)."""
        status = self.gateway.config.change(request.key, request.value)
        return core.ChangeConfigurationConfirmation(status=status)

    def on_get_configuration(
        self, request: core.GetConfigurationRequest
    ) -> core.GetConfigurationConfirmation:
        """Read keys (all when none are named); unknown keys go to ``unknownKey``."""
        known, unknown = self.gateway.config.read(request.key)
        return core.GetConfigurationConfirmation(
            configuration_key=known, unknown_key=unknown or None
        )

    def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ClearCacheConfirmation:
        """Empty the simulated authorization cache."""
        self.gateway.cache_entries = 0
        return core.ClearCacheConfirmation(status=core.ClearCacheStatus.ACCEPTED)

    def on_data_transfer(self, request: core.DataTransferRequest) -> core.DataTransferConfirmation:
        """Answer the vendor messages ``echo`` and ``state`` of vendor ``Ding.X``."""
        if request.vendor_id.casefold() != VENDOR_ID.casefold():
            return core.DataTransferConfirmation(status=core.DataTransferStatus.UNKNOWN_VENDOR_ID)
        message_id = (request.message_id or "").casefold()
        if message_id == "echo":
            return core.DataTransferConfirmation(
                status=core.DataTransferStatus.ACCEPTED, data=request.data
            )
        if message_id == "state":
            return core.DataTransferConfirmation(
                status=core.DataTransferStatus.ACCEPTED, data=json.dumps(self._state())
            )
        return core.DataTransferConfirmation(status=core.DataTransferStatus.UNKNOWN_MESSAGE_ID)

    def _state(self) -> dict[str, object]:
        gateway = self.gateway
        return {
            "firmwareVersion": gateway.firmware_version,
            "uptime": round(gateway.uptime),
            "boots": gateway.boots,
            "messagesSent": gateway.messages_sent,
            "queued": gateway.queued,
            "services": {str(s.service_id): s.status.value for s in gateway.plant.services},
        }

    def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
        """Accept, then reboot: close 1000, stay off a moment, reconnect and boot."""
        self.gateway.reboot(hard=request.type is core.ResetType.HARD)
        return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)

    def on_capture_process(
        self, request: core.CaptureProcessRequest
    ) -> core.CaptureProcessConfirmation:
        """Capture the present values of datapoints of one service."""
        points = self.gateway.datapoints(request.service_id)
        if points is None:
            return core.CaptureProcessConfirmation(status=core.CaptureProcessStatus.UNKNOWN_SERVICE)
        by_name = {name.casefold(): point for name, point in points.items()}
        captured: list[CapturedDatapoint] = []
        unknown: list[str] = []
        for datapoint_id in request.datapoint_ids:
            point = by_name.get(datapoint_id.casefold())
            if point is None:
                unknown.append(datapoint_id)
            else:
                captured.append(
                    CapturedDatapoint(
                        datapoint_id=datapoint_id,
                        value=point.value,
                        unit=point.unit,
                        timestamp=_now(),
                    )
                )
        if not captured:
            return core.CaptureProcessConfirmation(
                status=core.CaptureProcessStatus.REJECTED, unknown_datapoint_ids=unknown
            )
        return core.CaptureProcessConfirmation(
            status=core.CaptureProcessStatus.ACCEPTED,
            datapoints=captured,
            unknown_datapoint_ids=unknown or None,
        )

    # --- firmware profile (spec §4.2) --------------------------------------------------

    def on_get_diagnostics(
        self, request: firmware.GetDiagnosticsRequest
    ) -> firmware.GetDiagnosticsConfirmation:
        """Name the file, then upload it to ``location`` (reporting its progress)."""
        return firmware.GetDiagnosticsConfirmation(file_name=self.gateway.get_diagnostics(request))

    def on_update_firmware(
        self, request: firmware.UpdateFirmwareRequest
    ) -> firmware.UpdateFirmwareConfirmation:
        """Accept; at ``retrieveDate`` download, install and reboot into the new version."""
        self.gateway.update_firmware(request)
        return firmware.UpdateFirmwareConfirmation()

    # --- remote trigger profile (spec §4.3) --------------------------------------------

    def on_trigger_message(
        self, request: remotetrigger.TriggerMessageRequest
    ) -> remotetrigger.TriggerMessageConfirmation:
        """Accept or reject (see the module notes); the message follows the answer."""
        accepted, _ = self._trigger(request)
        return remotetrigger.TriggerMessageConfirmation(
            status=remotetrigger.TriggerMessageStatus.ACCEPTED
            if accepted
            else remotetrigger.TriggerMessageStatus.REJECTED
        )

    def _trigger(self, request: remotetrigger.TriggerMessageRequest) -> tuple[bool, int | None]:
        """Whether to accept a trigger, and the service it is about (``None``: all)."""
        gateway = self.gateway
        kind = request.requested_message
        if kind is not _Trigger.BOOT_NOTIFICATION and not gateway.registered:
            return False, None  # spec §4.1: nothing but BootNotification before Accepted
        if request.service_id is None or kind not in (
            _Trigger.STATUS_NOTIFICATION,
            _Trigger.METER_VALUES,
        ):
            return True, None
        text = request.service_id.strip()
        if not (text == "0" or self.gateway.plant.service(text) is not None):
            return False, None
        return True, int(text)

    def send_triggered(self, request: remotetrigger.TriggerMessageRequest) -> list[AnyRequest]:
        """The gateway's after-answer hook: send the triggered message (spec §4.3).

        The simulator sends it itself (it keeps its own state of each message), so
        the gateway gets an empty list.
        """
        accepted, service = self._trigger(request)
        if accepted:
            self.gateway.spawn(self._send_triggered(request.requested_message, service))
        return []

    async def _send_triggered(
        self, kind: remotetrigger.MessageTrigger, service: int | None
    ) -> None:
        """Send a triggered message; runs in a task, so after the confirmation left."""
        gateway = self.gateway
        match kind:
            case _Trigger.BOOT_NOTIFICATION:
                await gateway.send_boot()
            case _Trigger.HEARTBEAT:
                await gateway.send_heartbeat()
            case _Trigger.STATUS_NOTIFICATION:
                gateway.send_status(None if service is None else str(service))
            case _Trigger.METER_VALUES:
                gateway.advance()
                gateway.send_meter_values(service, ReadingContext.TRIGGER)
            case _Trigger.DIAGNOSTICS_STATUS_NOTIFICATION:
                gateway.send_diagnostics_status()
            case _Trigger.FIRMWARE_STATUS_NOTIFICATION:
                gateway.send_firmware_status()


def _now() -> datetime:
    return datetime.now(UTC)
