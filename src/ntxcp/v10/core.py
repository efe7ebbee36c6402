"""Core profile of ntxcp 1.0: messages, enums and handler base classes (spec §4.1, §5).

Every action has a request class (``<Action>Request``, the payload of the CALL) and a
confirmation class (``<Action>Confirmation``, the payload of the CALLRESULT). The
request class names its action, confirmation class, profile and direction as class
attributes.

An application answers the actions it receives by subclassing a handler base class and
overriding its ``on_<action>`` methods, with ``def`` or ``async def``:

* :class:`ControlCenterHandler`: the G→C actions (BootNotification, DataTransfer,
  Heartbeat, MeterValues, StatusNotification);
* :class:`GatewayHandler`: the C→G actions (ChangeConfiguration, ClearCache,
  DataTransfer, GetConfiguration, Reset, CaptureProcess).

A method that is not overridden answers ``NotSupported``.
"""

from __future__ import annotations

import builtins
from enum import StrEnum
from typing import Annotated, ClassVar

from msgspec import Meta

from ntxcp.v10.base import Confirmation, Direction, Profile, Request
from ntxcp.v10.types import (
    MAX_SAMPLED_VALUES,
    CapturedDatapoint,
    CiString20,
    CiString25,
    CiString50,
    CiString255,
    CiString500,
    DateTime,
    KeyValue,
    MeterValue,
    NonNegativeInt,
    Reply,
    UtcFieldsMixin,
    not_supported,
)

__all__ = [
    "BootNotificationConfirmation",
    "BootNotificationRequest",
    "CaptureProcessConfirmation",
    "CaptureProcessRequest",
    "CaptureProcessStatus",
    "ChangeConfigurationConfirmation",
    "ChangeConfigurationRequest",
    "ClearCacheConfirmation",
    "ClearCacheRequest",
    "ClearCacheStatus",
    "ConfigurationStatus",
    "ControlCenterHandler",
    "DataTransferConfirmation",
    "DataTransferRequest",
    "DataTransferStatus",
    "DingxGatewayErrorCode",
    "DingxGatewayStatus",
    "GatewayHandler",
    "GetConfigurationConfirmation",
    "GetConfigurationRequest",
    "HeartbeatConfirmation",
    "HeartbeatRequest",
    "MeterValuesConfirmation",
    "MeterValuesRequest",
    "RegistrationStatus",
    "ResetConfirmation",
    "ResetRequest",
    "ResetStatus",
    "ResetType",
    "StatusNotificationConfirmation",
    "StatusNotificationRequest",
]

_G2C = Direction.GATEWAY_TO_CONTROL_CENTER
_C2G = Direction.CONTROL_CENTER_TO_GATEWAY

# --- enums (spec §4.1) -----------------------------------------------------------------


class RegistrationStatus(StrEnum):
    """Answer of the control center to a BootNotification (spec §4.1)."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class DingxGatewayStatus(StrEnum):
    """Status reported by a StatusNotification (spec §4.1)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class DingxGatewayErrorCode(StrEnum):
    """Error reported by a StatusNotification (spec §4.1)."""

    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    LOCAL_LIST_CONFLICT = "LocalListConflict"
    NO_ERROR = "NoError"
    OTHER_ERROR = "OtherError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"
    RESET_FAILURE = "ResetFailure"
    UNDER_VOLTAGE = "UnderVoltage"
    WEAK_SIGNAL = "WeakSignal"


class DataTransferStatus(StrEnum):
    """Answer to a DataTransfer (spec §4.1)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_MESSAGE_ID = "UnknownMessageId"
    UNKNOWN_VENDOR_ID = "UnknownVendorId"


class ConfigurationStatus(StrEnum):
    """Answer to a ChangeConfiguration (spec §4.1)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


class ClearCacheStatus(StrEnum):
    """Answer to a ClearCache (spec §4.1)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class ResetType(StrEnum):
    """Kind of reset asked for by a Reset (spec §4.1)."""

    HARD = "Hard"
    SOFT = "Soft"


class ResetStatus(StrEnum):
    """Answer to a Reset (spec §4.1)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class CaptureProcessStatus(StrEnum):
    """Answer to a CaptureProcess (spec §4.1)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_SERVICE = "UnknownService"


# --- BootNotification (G→C, spec §4.1) ---------------------------------------------------


class BootNotificationConfirmation(Confirmation, UtcFieldsMixin):
    """Answer to a BootNotification (spec §4.1).

    Attributes:
        status: whether the gateway is registered.
        current_time: the control center's clock.
        interval: seconds; the heartbeat interval when ``Accepted``, otherwise the delay
            before the next BootNotification (60 s when 0).
    """

    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("current_time",)

    status: RegistrationStatus
    current_time: DateTime
    interval: NonNegativeInt


class BootNotificationRequest(Request[BootNotificationConfirmation]):
    """Sent by a gateway after (re)connecting, describing itself (spec §4.1).

    Until it is ``Accepted``, a gateway sends no other G→C message.

    Attributes:
        dingx_gateway_model: the gateway's model.
        dingx_gateway_vendor: the gateway's vendor.
        dingx_gateway_serial_number: the gateway's serial number.
        firmware_version: the gateway's firmware version.
        iccid: the ICCID of the modem's SIM card.
        imsi: the IMSI of the modem's SIM card.
        meter_type: the type of the main meter.
        meter_serial_number: the serial number of the main meter.
    """

    ACTION: ClassVar[str] = "BootNotification"
    CONFIRMATION: ClassVar[type[BootNotificationConfirmation]] = BootNotificationConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _G2C

    dingx_gateway_model: CiString20
    dingx_gateway_vendor: CiString20 | None = None
    dingx_gateway_serial_number: CiString25 | None = None
    firmware_version: CiString50 | None = None
    iccid: CiString20 | None = None
    imsi: CiString20 | None = None
    meter_type: CiString25 | None = None
    meter_serial_number: CiString25 | None = None


# --- Heartbeat (G→C, spec §4.1) ----------------------------------------------------------


class HeartbeatConfirmation(Confirmation, UtcFieldsMixin):
    """Answer to a Heartbeat (spec §4.1).

    Attributes:
        current_time: the control center's clock.
    """

    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("current_time",)

    current_time: DateTime


class HeartbeatRequest(Request[HeartbeatConfirmation]):
    """Tells the control center that the gateway is alive (spec §4.1). No fields."""

    ACTION: ClassVar[str] = "Heartbeat"
    CONFIRMATION: ClassVar[type[HeartbeatConfirmation]] = HeartbeatConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _G2C


# --- StatusNotification (G→C, spec §4.1) -------------------------------------------------


class StatusNotificationConfirmation(Confirmation):
    """Answer to a StatusNotification (spec §4.1). No fields."""


class StatusNotificationRequest(Request[StatusNotificationConfirmation], UtcFieldsMixin):
    """Reports the status of the gateway or of one of its services (spec §4.1).

    Attributes:
        service_id: the service; ``"0"`` means the gateway as a whole.
        error_code: the error, ``NoError`` when there is none.
        status: the new status.
        info: free text about the error.
        timestamp: when the status was reached.
        vendor_id: the vendor whose error code ``vendor_error_code`` is.
        vendor_error_code: a vendor-specific error code.
    """

    ACTION: ClassVar[str] = "StatusNotification"
    CONFIRMATION: ClassVar[type[StatusNotificationConfirmation]] = StatusNotificationConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _G2C
    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("timestamp",)

    service_id: CiString50
    error_code: DingxGatewayErrorCode
    status: DingxGatewayStatus
    info: CiString50 | None = None
    timestamp: DateTime | None = None
    vendor_id: CiString255 | None = None
    vendor_error_code: CiString50 | None = None


# --- MeterValues (G→C, spec §4.1) --------------------------------------------------------


class MeterValuesConfirmation(Confirmation):
    """Answer to a MeterValues (spec §4.1). No fields."""


class MeterValuesRequest(Request[MeterValuesConfirmation]):
    """Sends sampled meter values of one service (spec §4.1).

    Attributes:
        service_id: the service, an integer ≥ 0 here (a string in StatusNotification).
        meter_value: the samples (at least one).
    """

    ACTION: ClassVar[str] = "MeterValues"
    CONFIRMATION: ClassVar[type[MeterValuesConfirmation]] = MeterValuesConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _G2C

    service_id: NonNegativeInt
    meter_value: Annotated[list[MeterValue], Meta(min_length=1, max_length=MAX_SAMPLED_VALUES)]

    def __post_init__(self) -> None:
        """Bound the sampled values of the whole message (``MAX_SAMPLED_VALUES``).

        Raises:
            ValueError: more sampled values than allowed; the codec reports it as
                ``OccurrenceConstraintViolation`` at path ``meterValue``.
        """
        total = sum(len(meter_value.sampled_value) for meter_value in self.meter_value)
        if total > MAX_SAMPLED_VALUES:
            raise ValueError(
                f"too many meterValue: {total} sampled values, "
                f"at most {MAX_SAMPLED_VALUES} per message"
            )


# --- DataTransfer (both directions, spec §4.1) -------------------------------------------


class DataTransferConfirmation(Confirmation):
    """Answer to a DataTransfer (spec §4.1).

    Attributes:
        status: the outcome.
        data: vendor-specific answer data.
    """

    status: DataTransferStatus
    data: str | None = None


class DataTransferRequest(Request[DataTransferConfirmation]):
    """Vendor-specific message, sent by either side (spec §4.1).

    Attributes:
        vendor_id: identifies the vendor whose message this is.
        message_id: identifies the vendor's message.
        data: vendor-specific data.
    """

    ACTION: ClassVar[str] = "DataTransfer"
    CONFIRMATION: ClassVar[type[DataTransferConfirmation]] = DataTransferConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = Direction.BOTH

    vendor_id: CiString255
    message_id: CiString50 | None = None
    data: str | None = None


# --- ChangeConfiguration (C→G, spec §4.1) ------------------------------------------------


class ChangeConfigurationConfirmation(Confirmation):
    """Answer to a ChangeConfiguration (spec §4.1).

    Attributes:
        status: whether the value was set.
    """

    status: ConfigurationStatus


class ChangeConfigurationRequest(Request[ChangeConfigurationConfirmation]):
    """Sets one configuration key of the gateway (spec §4.1).

    Attributes:
        key: the configuration key.
        value: the new value.
    """

    ACTION: ClassVar[str] = "ChangeConfiguration"
    CONFIRMATION: ClassVar[type[ChangeConfigurationConfirmation]] = ChangeConfigurationConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _C2G

    key: CiString50
    value: CiString500


# --- GetConfiguration (C→G, spec §4.1) ---------------------------------------------------


class GetConfigurationConfirmation(Confirmation):
    """Answer to a GetConfiguration (spec §4.1).

    Attributes:
        configuration_key: the known keys asked for, with their values.
        unknown_key: the keys asked for that the gateway does not know.
    """

    configuration_key: list[KeyValue] | None = None
    unknown_key: list[CiString50] | None = None


class GetConfigurationRequest(Request[GetConfigurationConfirmation]):
    """Reads configuration keys of the gateway (spec §4.1).

    Attributes:
        key: the keys to read; absent or empty means all keys.
    """

    ACTION: ClassVar[str] = "GetConfiguration"
    CONFIRMATION: ClassVar[type[GetConfigurationConfirmation]] = GetConfigurationConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _C2G

    key: list[CiString50] | None = None


# --- ClearCache (C→G, spec §4.1) ---------------------------------------------------------


class ClearCacheConfirmation(Confirmation):
    """Answer to a ClearCache (spec §4.1).

    Attributes:
        status: whether the cache was cleared.
    """

    status: ClearCacheStatus


class ClearCacheRequest(Request[ClearCacheConfirmation]):
    """Asks the gateway to clear its authorization cache (spec §4.1). No fields."""

    ACTION: ClassVar[str] = "ClearCache"
    CONFIRMATION: ClassVar[type[ClearCacheConfirmation]] = ClearCacheConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _C2G


# --- Reset (C→G, spec §4.1) --------------------------------------------------------------


class ResetConfirmation(Confirmation):
    """Answer to a Reset (spec §4.1).

    Attributes:
        status: whether the gateway will reset.
    """

    status: ResetStatus


class ResetRequest(Request[ResetConfirmation]):
    """Asks the gateway to reset (spec §4.1).

    Attributes:
        type: hard or soft reset (the wire name is ``type``).
    """

    ACTION: ClassVar[str] = "Reset"
    # `builtins.type`: inside this class, `type` names the field below.
    CONFIRMATION: ClassVar[builtins.type[ResetConfirmation]] = ResetConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _C2G

    type: ResetType


# --- CaptureProcess (C→G, ntxcp-specific, spec §4.1) --------------------------------------


class CaptureProcessConfirmation(Confirmation):
    """Answer to a CaptureProcess (spec §4.1).

    Attributes:
        status: the outcome.
        datapoints: the captured values (sent with ``Accepted``).
        unknown_datapoint_ids: requested ids that the service does not have.
    """

    status: CaptureProcessStatus
    datapoints: list[CapturedDatapoint] | None = None
    unknown_datapoint_ids: list[CiString50] | None = None


class CaptureProcessRequest(Request[CaptureProcessConfirmation]):
    """Asks the gateway to capture datapoints of one service process (spec §4.1).

    Attributes:
        service_id: the service process.
        datapoint_ids: the datapoints to capture: 1 to 100 ids, no duplicates. Ids are
            case-insensitive strings (spec §3), so ``"T1"`` and ``"t1"`` are duplicates.
    """

    ACTION: ClassVar[str] = "CaptureProcess"
    CONFIRMATION: ClassVar[type[CaptureProcessConfirmation]] = CaptureProcessConfirmation
    PROFILE: ClassVar[Profile] = Profile.CORE
    DIRECTION: ClassVar[Direction] = _C2G

    service_id: CiString50
    datapoint_ids: Annotated[
        list[CiString50],
        Meta(min_length=1, max_length=100, extra_json_schema={"uniqueItems": True}),
    ]

    def __post_init__(self) -> None:
        """Reject duplicate datapoint ids (spec §4.1), compared case-insensitively (§3).

        Raises:
            ValueError: an id occurs twice; the codec reports it as
                ``PropertyConstraintViolation``.
        """
        seen: set[str] = set()
        for datapoint_id in self.datapoint_ids:
            folded = datapoint_id.casefold()
            if folded in seen:
                raise ValueError(f"duplicate datapointIds: {datapoint_id!r}")
            seen.add(folded)


# --- handler base classes (spec §5) ------------------------------------------------------


class ControlCenterHandler:
    """Base class of the control center's handler for the core profile (spec §5).

    Override the methods of the actions you handle; each receives the id of the calling
    gateway and the validated request, and returns the confirmation (or an awaitable of
    it). Raise :class:`~ntxcp.errors.CallError` to answer with an error code. A method
    left as is answers ``NotSupported``.
    """

    def on_boot_notification(
        self, gateway_id: str, request: BootNotificationRequest
    ) -> Reply[BootNotificationConfirmation]:
        """Handle a BootNotification from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(BootNotificationRequest.ACTION)

    def on_data_transfer(
        self, gateway_id: str, request: DataTransferRequest
    ) -> Reply[DataTransferConfirmation]:
        """Handle a DataTransfer from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(DataTransferRequest.ACTION)

    def on_heartbeat(
        self, gateway_id: str, request: HeartbeatRequest
    ) -> Reply[HeartbeatConfirmation]:
        """Handle a Heartbeat from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(HeartbeatRequest.ACTION)

    def on_meter_values(
        self, gateway_id: str, request: MeterValuesRequest
    ) -> Reply[MeterValuesConfirmation]:
        """Handle a MeterValues from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(MeterValuesRequest.ACTION)

    def on_status_notification(
        self, gateway_id: str, request: StatusNotificationRequest
    ) -> Reply[StatusNotificationConfirmation]:
        """Handle a StatusNotification from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(StatusNotificationRequest.ACTION)


class GatewayHandler:
    """Base class of the gateway's handler for the core profile (spec §5).

    Override the methods of the actions you handle; each receives the validated request
    and returns the confirmation (or an awaitable of it). Raise
    :class:`~ntxcp.errors.CallError` to answer with an error code. A method left as is
    answers ``NotSupported``.
    """

    def on_change_configuration(
        self, request: ChangeConfigurationRequest
    ) -> Reply[ChangeConfigurationConfirmation]:
        """Handle a ChangeConfiguration from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(ChangeConfigurationRequest.ACTION)

    def on_clear_cache(self, request: ClearCacheRequest) -> Reply[ClearCacheConfirmation]:
        """Handle a ClearCache from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(ClearCacheRequest.ACTION)

    def on_data_transfer(self, request: DataTransferRequest) -> Reply[DataTransferConfirmation]:
        """Handle a DataTransfer from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(DataTransferRequest.ACTION)

    def on_get_configuration(
        self, request: GetConfigurationRequest
    ) -> Reply[GetConfigurationConfirmation]:
        """Handle a GetConfiguration from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(GetConfigurationRequest.ACTION)

    def on_reset(self, request: ResetRequest) -> Reply[ResetConfirmation]:
        """Handle a Reset from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(ResetRequest.ACTION)

    def on_capture_process(
        self, request: CaptureProcessRequest
    ) -> Reply[CaptureProcessConfirmation]:
        """Handle a CaptureProcess from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(CaptureProcessRequest.ACTION)
