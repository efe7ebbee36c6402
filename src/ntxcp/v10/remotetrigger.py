"""Remote trigger profile of ntxcp 1.0 (spec §4.3, §5).

The control center asks a gateway to send one of its G→C messages now. Handler base
classes:

* :class:`ControlCenterHandler`: empty, the profile has no G→C action (kept for parity
  with the other profiles and the reference API);
* :class:`GatewayHandler`: the C→G action TriggerMessage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from ntxcp.v10.base import Confirmation, Direction, Profile, Request
from ntxcp.v10.types import CiString50, Reply, not_supported

__all__ = [
    "ControlCenterHandler",
    "GatewayHandler",
    "MessageTrigger",
    "TriggerMessageConfirmation",
    "TriggerMessageRequest",
    "TriggerMessageStatus",
]


class MessageTrigger(StrEnum):
    """The messages a TriggerMessage can ask for (spec §4.3)."""

    BOOT_NOTIFICATION = "BootNotification"
    DIAGNOSTICS_STATUS_NOTIFICATION = "DiagnosticsStatusNotification"
    FIRMWARE_STATUS_NOTIFICATION = "FirmwareStatusNotification"
    HEARTBEAT = "Heartbeat"
    METER_VALUES = "MeterValues"
    STATUS_NOTIFICATION = "StatusNotification"


class TriggerMessageStatus(StrEnum):
    """Answer to a TriggerMessage (spec §4.3)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_IMPLEMENTED = "NotImplemented"


class TriggerMessageConfirmation(Confirmation):
    """Answer to a TriggerMessage (spec §4.3).

    Attributes:
        status: whether the gateway will send the message; after ``Accepted`` it does.
    """

    status: TriggerMessageStatus


class TriggerMessageRequest(Request[TriggerMessageConfirmation]):
    """Asks the gateway to send a message now (spec §4.3).

    Attributes:
        requested_message: the message to send.
        service_id: the service the message should be about.
    """

    ACTION: ClassVar[str] = "TriggerMessage"
    CONFIRMATION: ClassVar[type[TriggerMessageConfirmation]] = TriggerMessageConfirmation
    PROFILE: ClassVar[Profile] = Profile.REMOTE_TRIGGER
    DIRECTION: ClassVar[Direction] = Direction.CONTROL_CENTER_TO_GATEWAY

    requested_message: MessageTrigger
    service_id: CiString50 | None = None


class ControlCenterHandler:
    """Base class of the control center's handler for the remote trigger profile (§5).

    The profile has no G→C action, so there is nothing to override.
    """


class GatewayHandler:
    """Base class of the gateway's handler for the remote trigger profile (spec §5).

    Override :meth:`on_trigger_message`; a gateway that does not answers
    ``NotSupported``.
    """

    def on_trigger_message(
        self, request: TriggerMessageRequest
    ) -> Reply[TriggerMessageConfirmation]:
        """Handle a TriggerMessage from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it. After answering ``Accepted`` the
            gateway sends the requested message.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(TriggerMessageRequest.ACTION)
