"""Messages of spec §4: wire names, required fields, enums, class data."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import msgspec
import pytest

from ntxcp.v10 import (
    ACTIONS,
    Confirmation,
    Payload,
    Request,
    core,
    decode_payload,
    encode_payload,
    firmware,
    remotetrigger,
    types,
)

# Wire names from spec §4: required fields, then optional fields.
WIRE_FIELDS: dict[type[Payload], tuple[list[str], list[str]]] = {
    core.BootNotificationRequest: (
        ["dingxGatewayModel"],
        [
            "dingxGatewayVendor",
            "dingxGatewaySerialNumber",
            "firmwareVersion",
            "iccid",
            "imsi",
            "meterType",
            "meterSerialNumber",
        ],
    ),
    core.BootNotificationConfirmation: (["status", "currentTime", "interval"], []),
    core.HeartbeatRequest: ([], []),
    core.HeartbeatConfirmation: (["currentTime"], []),
    core.StatusNotificationRequest: (
        ["serviceId", "errorCode", "status"],
        ["info", "timestamp", "vendorId", "vendorErrorCode"],
    ),
    core.StatusNotificationConfirmation: ([], []),
    core.MeterValuesRequest: (["serviceId", "meterValue"], []),
    core.MeterValuesConfirmation: ([], []),
    types.MeterValue: (["timestamp", "sampledValue"], []),
    types.SampledValue: (
        ["value"],
        ["context", "format", "measurand", "phase", "location", "unit"],
    ),
    core.DataTransferRequest: (["vendorId"], ["messageId", "data"]),
    core.DataTransferConfirmation: (["status"], ["data"]),
    core.ChangeConfigurationRequest: (["key", "value"], []),
    core.ChangeConfigurationConfirmation: (["status"], []),
    core.GetConfigurationRequest: ([], ["key"]),
    core.GetConfigurationConfirmation: ([], ["configurationKey", "unknownKey"]),
    types.KeyValue: (["key", "readonly"], ["value"]),
    core.ClearCacheRequest: ([], []),
    core.ClearCacheConfirmation: (["status"], []),
    core.ResetRequest: (["type"], []),
    core.ResetConfirmation: (["status"], []),
    core.CaptureProcessRequest: (["serviceId", "datapointIds"], []),
    core.CaptureProcessConfirmation: (["status"], ["datapoints", "unknownDatapointIds"]),
    types.CapturedDatapoint: (["datapointId", "value"], ["unit", "timestamp"]),
    firmware.GetDiagnosticsRequest: (
        ["location"],
        ["retries", "retryInterval", "startTime", "stopTime"],
    ),
    firmware.GetDiagnosticsConfirmation: ([], ["fileName"]),
    firmware.DiagnosticsStatusNotificationRequest: (["status"], []),
    firmware.DiagnosticsStatusNotificationConfirmation: ([], []),
    firmware.UpdateFirmwareRequest: (
        ["location", "retrieveDate"],
        ["retries", "retryInterval"],
    ),
    firmware.UpdateFirmwareConfirmation: ([], []),
    firmware.FirmwareStatusNotificationRequest: (["status"], []),
    firmware.FirmwareStatusNotificationConfirmation: ([], []),
    remotetrigger.TriggerMessageRequest: (["requestedMessage"], ["serviceId"]),
    remotetrigger.TriggerMessageConfirmation: (["status"], []),
}


def test_table_covers_every_message() -> None:
    for spec in ACTIONS.values():
        assert spec.request in WIRE_FIELDS
        assert spec.confirmation in WIRE_FIELDS


@pytest.mark.parametrize("cls", list(WIRE_FIELDS), ids=lambda c: c.__name__)
def test_wire_names_and_required_fields(cls: type[Payload]) -> None:
    required, optional = WIRE_FIELDS[cls]
    fields = msgspec.structs.fields(cls)
    assert [f.encode_name for f in fields if f.required] == required
    assert [f.encode_name for f in fields if not f.required] == optional
    # optional fields default to None (spec defaults are not field defaults)
    assert all(f.default is None for f in fields if not f.required)


# Enum wire values from spec §4, in spec order.
ENUMS: dict[type[StrEnum], list[str]] = {
    core.RegistrationStatus: ["Accepted", "Pending", "Rejected"],
    core.DingxGatewayStatus: [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEVSE",
        "SuspendedEV",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
    ],
    core.DingxGatewayErrorCode: [
        "ConnectorLockFailure",
        "EVCommunicationError",
        "GroundFailure",
        "HighTemperature",
        "InternalError",
        "LocalListConflict",
        "NoError",
        "OtherError",
        "OverCurrentFailure",
        "OverVoltage",
        "PowerMeterFailure",
        "PowerSwitchFailure",
        "ReaderFailure",
        "ResetFailure",
        "UnderVoltage",
        "WeakSignal",
    ],
    types.ReadingContext: [
        "Interruption.Begin",
        "Interruption.End",
        "Other",
        "Sample.Clock",
        "Sample.Periodic",
        "Transaction.Begin",
        "Transaction.End",
        "Trigger",
    ],
    types.ValueFormat: ["Raw", "SignedData"],
    types.Measurand: [
        "Current.Export",
        "Current.Import",
        "Current.Offered",
        "Energy.Active.Export.Register",
        "Energy.Active.Import.Register",
        "Energy.Reactive.Export.Register",
        "Energy.Reactive.Import.Register",
        "Energy.Active.Export.Interval",
        "Energy.Active.Import.Interval",
        "Energy.Reactive.Export.Interval",
        "Energy.Reactive.Import.Interval",
        "Frequency",
        "Power.Active.Export",
        "Power.Active.Import",
        "Power.Factor",
        "Power.Offered",
        "Power.Reactive.Export",
        "Power.Reactive.Import",
        "RPM",
        "SoC",
        "Temperature",
        "Voltage",
    ],
    types.Phase: ["L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1"],
    types.Location: ["Body", "Cable", "EV", "Inlet", "Outlet"],
    types.UnitOfMeasure: [
        "Wh",
        "kWh",
        "varh",
        "kvarh",
        "W",
        "kW",
        "VA",
        "kVA",
        "var",
        "kvar",
        "A",
        "V",
        "Celsius",
        "Fahrenheit",
        "K",
        "Percent",
    ],
    core.DataTransferStatus: ["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"],
    core.ConfigurationStatus: ["Accepted", "Rejected", "RebootRequired", "NotSupported"],
    core.ClearCacheStatus: ["Accepted", "Rejected"],
    core.ResetType: ["Hard", "Soft"],
    core.ResetStatus: ["Accepted", "Rejected"],
    core.CaptureProcessStatus: ["Accepted", "Rejected", "UnknownService"],
    firmware.DiagnosticsStatus: ["Idle", "Uploaded", "UploadFailed", "Uploading"],
    firmware.FirmwareStatus: [
        "Downloaded",
        "DownloadFailed",
        "Downloading",
        "Idle",
        "InstallationFailed",
        "Installing",
        "Installed",
    ],
    remotetrigger.MessageTrigger: [
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    ],
    remotetrigger.TriggerMessageStatus: ["Accepted", "Rejected", "NotImplemented"],
}


@pytest.mark.parametrize("enum", list(ENUMS), ids=lambda e: e.__name__)
def test_enum_wire_values(enum: type[StrEnum]) -> None:
    assert [m.value for m in enum] == ENUMS[enum]
    for member in enum:
        assert member.name == member.name.upper()


def test_enum_member_names_follow_the_values() -> None:
    assert types.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER == "Energy.Active.Import.Register"
    assert types.Phase.L1_N == "L1-N"
    assert types.UnitOfMeasure.KWH == "kWh"
    assert core.DingxGatewayStatus.SUSPENDED_EVSE == "SuspendedEVSE"
    assert core.DingxGatewayErrorCode.EV_COMMUNICATION_ERROR == "EVCommunicationError"


@pytest.mark.parametrize("action", list(ACTIONS))
def test_request_class_data(action: str) -> None:
    spec = ACTIONS[action]
    assert issubclass(spec.request, Request)
    assert issubclass(spec.confirmation, Confirmation)
    assert action == spec.request.ACTION
    assert spec.request.__name__ == f"{action}Request"
    assert spec.confirmation.__name__ == f"{action}Confirmation"
    assert spec.request.CONFIRMATION is spec.confirmation
    # class data is not on the wire
    names = {f.name for f in msgspec.structs.fields(spec.request)}
    assert not names & {"ACTION", "CONFIRMATION", "PROFILE", "DIRECTION", "UTC_FIELDS"}


def test_service_id_types() -> None:
    # spec §4.1: an integer in MeterValues, a CiString50 elsewhere
    stamp = datetime(2026, 11, 23, tzinfo=UTC)
    mv = core.MeterValuesRequest(
        service_id=0,
        meter_value=[
            types.MeterValue(timestamp=stamp, sampled_value=[types.SampledValue(value="1")])
        ],
    )
    assert encode_payload(mv).startswith(b'{"serviceId":0,')
    sn = core.StatusNotificationRequest(
        service_id="0",
        error_code=core.DingxGatewayErrorCode.NO_ERROR,
        status=core.DingxGatewayStatus.AVAILABLE,
    )
    assert encode_payload(sn).startswith(b'{"serviceId":"0",')


def test_reset_type_field_is_named_type() -> None:
    req = core.ResetRequest(type=core.ResetType.HARD)
    assert encode_payload(req) == b'{"type":"Hard"}'
    assert core.ResetRequest.CONFIRMATION is core.ResetConfirmation


# --- CaptureProcess duplicates (spec §4.1) ----------------------------------------------


def test_capture_process_rejects_duplicates_on_construction() -> None:
    with pytest.raises(ValueError, match=r"^duplicate datapointIds: 'a'$"):
        core.CaptureProcessRequest(service_id="s", datapoint_ids=["a", "b", "a"])


def test_capture_process_duplicates_are_case_insensitive() -> None:
    with pytest.raises(ValueError, match=r"^duplicate datapointIds: 'FLOWTEMP'$"):
        core.CaptureProcessRequest(service_id="s", datapoint_ids=["flowTemp", "FLOWTEMP"])


def test_capture_process_accepts_distinct_ids() -> None:
    req = core.CaptureProcessRequest(service_id="s", datapoint_ids=["a", "b"])
    assert decode_payload(core.CaptureProcessRequest, encode_payload(req)) == req
