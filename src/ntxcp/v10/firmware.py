"""Firmware management profile of ntxcp 1.0 (spec §4.2, §5).

Diagnostics upload and firmware update. Handler base classes:

* :class:`ControlCenterHandler`: the G→C actions (DiagnosticsStatusNotification,
  FirmwareStatusNotification);
* :class:`GatewayHandler`: the C→G actions (GetDiagnostics, UpdateFirmware).

A method that is not overridden answers ``NotSupported``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from ntxcp.v10.base import Confirmation, Direction, Profile, Request
from ntxcp.v10.types import (
    AnyUri,
    CiString255,
    DateTime,
    NonNegativeInt,
    Reply,
    UtcFieldsMixin,
    not_supported,
)

__all__ = [
    "ControlCenterHandler",
    "DiagnosticsStatus",
    "DiagnosticsStatusNotificationConfirmation",
    "DiagnosticsStatusNotificationRequest",
    "FirmwareStatus",
    "FirmwareStatusNotificationConfirmation",
    "FirmwareStatusNotificationRequest",
    "GatewayHandler",
    "GetDiagnosticsConfirmation",
    "GetDiagnosticsRequest",
    "UpdateFirmwareConfirmation",
    "UpdateFirmwareRequest",
]

# --- enums (spec §4.2) -----------------------------------------------------------------


class DiagnosticsStatus(StrEnum):
    """State of a diagnostics upload (spec §4.2)."""

    IDLE = "Idle"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"
    UPLOADING = "Uploading"


class FirmwareStatus(StrEnum):
    """State of a firmware update (spec §4.2)."""

    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOADING = "Downloading"
    IDLE = "Idle"
    INSTALLATION_FAILED = "InstallationFailed"
    INSTALLING = "Installing"
    INSTALLED = "Installed"


# --- GetDiagnostics (C→G, spec §4.2) -----------------------------------------------------


class GetDiagnosticsConfirmation(Confirmation):
    """Answer to a GetDiagnostics (spec §4.2).

    Attributes:
        file_name: the name of the file that will be uploaded; absent when no
            diagnostics are available.
    """

    file_name: CiString255 | None = None


class GetDiagnosticsRequest(Request[GetDiagnosticsConfirmation], UtcFieldsMixin):
    """Asks the gateway to upload diagnostics (spec §4.2).

    Attributes:
        location: absolute URI to upload the file to.
        retries: how many times to retry a failed upload.
        retry_interval: seconds between retries.
        start_time: oldest diagnostics to include.
        stop_time: newest diagnostics to include.
    """

    ACTION: ClassVar[str] = "GetDiagnostics"
    CONFIRMATION: ClassVar[type[GetDiagnosticsConfirmation]] = GetDiagnosticsConfirmation
    PROFILE: ClassVar[Profile] = Profile.FIRMWARE
    DIRECTION: ClassVar[Direction] = Direction.CONTROL_CENTER_TO_GATEWAY
    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("start_time", "stop_time")

    location: AnyUri
    retries: NonNegativeInt | None = None
    retry_interval: NonNegativeInt | None = None
    start_time: DateTime | None = None
    stop_time: DateTime | None = None


# --- DiagnosticsStatusNotification (G→C, spec §4.2) --------------------------------------


class DiagnosticsStatusNotificationConfirmation(Confirmation):
    """Answer to a DiagnosticsStatusNotification (spec §4.2). No fields."""


class DiagnosticsStatusNotificationRequest(Request[DiagnosticsStatusNotificationConfirmation]):
    """Reports the state of a diagnostics upload (spec §4.2).

    Attributes:
        status: the new state.
    """

    ACTION: ClassVar[str] = "DiagnosticsStatusNotification"
    CONFIRMATION: ClassVar[type[DiagnosticsStatusNotificationConfirmation]] = (
        DiagnosticsStatusNotificationConfirmation
    )
    PROFILE: ClassVar[Profile] = Profile.FIRMWARE
    DIRECTION: ClassVar[Direction] = Direction.GATEWAY_TO_CONTROL_CENTER

    status: DiagnosticsStatus


# --- UpdateFirmware (C→G, spec §4.2) -----------------------------------------------------


class UpdateFirmwareConfirmation(Confirmation):
    """Answer to an UpdateFirmware (spec §4.2). No fields."""


class UpdateFirmwareRequest(Request[UpdateFirmwareConfirmation], UtcFieldsMixin):
    """Asks the gateway to download and install new firmware (spec §4.2).

    Attributes:
        location: absolute URI to download the firmware from.
        retrieve_date: when to start the download.
        retries: how many times to retry a failed download.
        retry_interval: seconds between retries.
    """

    ACTION: ClassVar[str] = "UpdateFirmware"
    CONFIRMATION: ClassVar[type[UpdateFirmwareConfirmation]] = UpdateFirmwareConfirmation
    PROFILE: ClassVar[Profile] = Profile.FIRMWARE
    DIRECTION: ClassVar[Direction] = Direction.CONTROL_CENTER_TO_GATEWAY
    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("retrieve_date",)

    location: AnyUri
    retrieve_date: DateTime
    retries: NonNegativeInt | None = None
    retry_interval: NonNegativeInt | None = None


# --- FirmwareStatusNotification (G→C, spec §4.2) -----------------------------------------


class FirmwareStatusNotificationConfirmation(Confirmation):
    """Answer to a FirmwareStatusNotification (spec §4.2). No fields."""


class FirmwareStatusNotificationRequest(Request[FirmwareStatusNotificationConfirmation]):
    """Reports the state of a firmware update (spec §4.2).

    Attributes:
        status: the new state.
    """

    ACTION: ClassVar[str] = "FirmwareStatusNotification"
    CONFIRMATION: ClassVar[type[FirmwareStatusNotificationConfirmation]] = (
        FirmwareStatusNotificationConfirmation
    )
    PROFILE: ClassVar[Profile] = Profile.FIRMWARE
    DIRECTION: ClassVar[Direction] = Direction.GATEWAY_TO_CONTROL_CENTER

    status: FirmwareStatus


# --- handler base classes (spec §5) ------------------------------------------------------


class ControlCenterHandler:
    """Base class of the control center's handler for the firmware profile (spec §5).

    Override the methods of the actions you handle; each receives the id of the calling
    gateway and the validated request, and returns the confirmation (or an awaitable of
    it). A method left as is answers ``NotSupported``.
    """

    def on_diagnostics_status_notification(
        self, gateway_id: str, request: DiagnosticsStatusNotificationRequest
    ) -> Reply[DiagnosticsStatusNotificationConfirmation]:
        """Handle a DiagnosticsStatusNotification from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(DiagnosticsStatusNotificationRequest.ACTION)

    def on_firmware_status_notification(
        self, gateway_id: str, request: FirmwareStatusNotificationRequest
    ) -> Reply[FirmwareStatusNotificationConfirmation]:
        """Handle a FirmwareStatusNotification from a gateway.

        Args:
            gateway_id: the calling gateway.
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(FirmwareStatusNotificationRequest.ACTION)


class GatewayHandler:
    """Base class of the gateway's handler for the firmware profile (spec §5).

    Override the methods of the actions you handle; each receives the validated request
    and returns the confirmation (or an awaitable of it). A method left as is answers
    ``NotSupported``.
    """

    def on_get_diagnostics(
        self, request: GetDiagnosticsRequest
    ) -> Reply[GetDiagnosticsConfirmation]:
        """Handle a GetDiagnostics from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(GetDiagnosticsRequest.ACTION)

    def on_update_firmware(
        self, request: UpdateFirmwareRequest
    ) -> Reply[UpdateFirmwareConfirmation]:
        """Handle an UpdateFirmware from the control center.

        Args:
            request: the request.

        Returns:
            The confirmation, or an awaitable of it.

        Raises:
            CallError: ``NotSupported`` unless overridden.
        """
        raise not_supported(UpdateFirmwareRequest.ACTION)
