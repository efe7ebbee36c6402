"""The codec: error mapping, lenient mode, encoding rules (spec §2.1, §2.2 rule 4, §3, §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10 import core, firmware, types
from ntxcp.v10.codec import (
    decode_payload,
    encode_json,
    encode_payload,
    error_from_validation,
    to_builtins,
    to_enum,
)


def test_malformed_json_is_a_formation_violation() -> None:
    with pytest.raises(PayloadValidationError) as info:
        decode_payload(core.HeartbeatRequest, b"{nope")
    assert info.value.code is ErrorCode.FORMATION_VIOLATION
    assert info.value.path == ""


def test_non_validation_msgspec_error_maps_to_formation_violation() -> None:
    error = error_from_validation(msgspec.DecodeError("JSON is malformed"))
    assert error.code is ErrorCode.FORMATION_VIOLATION
    assert "malformed" in error.description


def test_duplicate_ids_name_the_field() -> None:
    payload = b'{"serviceId": "1", "datapointIds": ["a", "b", "A"]}'
    with pytest.raises(PayloadValidationError) as info:
        decode_payload(core.CaptureProcessRequest, payload)
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.path == "datapointIds"


def test_lenient_mode_drops_unknown_fields_at_every_depth() -> None:
    payload = (
        b'{"serviceId": 3, "extra": 1, "meterValue": [{"timestamp": "2026-11-23T18:36:34Z",'
        b' "note": "x", "sampledValue": [{"value": "1", "vendorField": {"a": 1}}]}]}'
    )
    with pytest.raises(PayloadValidationError) as info:
        decode_payload(core.MeterValuesRequest, payload)
    assert info.value.code is ErrorCode.FORMATION_VIOLATION
    request = decode_payload(core.MeterValuesRequest, payload, strict=False)
    assert request.service_id == 3
    assert request.meter_value[0].sampled_value[0].value == "1"


def test_lenient_mode_through_optional_struct_and_plain_optional_fields() -> None:
    payload = (
        b'{"status": "Accepted", "unknown": true, "datapoints": '
        b'[{"datapointId": "t", "value": "21.5", "unit": "Celsius", "x": 0}]}'
    )
    confirmation = decode_payload(core.CaptureProcessConfirmation, payload, strict=False)
    assert confirmation.datapoints is not None
    assert confirmation.datapoints[0].unit == "Celsius"


def test_lenient_mode_still_reports_real_violations() -> None:
    payload = b'{"extra": 1, "serviceId": -1, "meterValue": []}'
    with pytest.raises(PayloadValidationError) as info:
        decode_payload(core.MeterValuesRequest, payload, strict=False)
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.path == "serviceId"


def test_encode_validates_unless_told_not_to() -> None:
    bad = core.ChangeConfigurationRequest(key="k" * 51, value="v")
    with pytest.raises(PayloadValidationError) as info:
        encode_payload(bad)
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.path == "key"
    assert encode_payload(bad, validate=False) == b'{"key":"' + b"k" * 51 + b'","value":"v"}'


def test_datetime_assigned_after_construction_is_written_as_utc_milliseconds() -> None:
    request = firmware.UpdateFirmwareRequest(
        location="https://fw.example/dx.bin", retrieve_date=datetime(2026, 1, 1, tzinfo=UTC)
    )
    request.retrieve_date = datetime(
        2026, 11, 23, 20, 36, 34, 123456, tzinfo=timezone(timedelta(hours=2))
    )
    assert encode_payload(request) == (
        b'{"location":"https://fw.example/dx.bin","retrieveDate":"2026-11-23T18:36:34.123Z"}'
    )


def test_encode_json_and_to_builtins() -> None:
    assert encode_json([2, "id", "Heartbeat", {}]) == b'[2,"id","Heartbeat",{}]'
    value = types.SampledValue(value="1", measurand=types.Measurand.VOLTAGE)
    assert to_builtins(value) == {"value": "1", "measurand": "Voltage"}
    with pytest.raises(TypeError):
        encode_json(object())


def test_to_enum_takes_a_member_or_its_wire_value() -> None:
    assert to_enum(core.ResetType, "Soft", "type") is core.ResetType.SOFT
    assert to_enum(core.ResetType, core.ResetType.HARD, "type") is core.ResetType.HARD


def test_to_enum_refuses_an_unknown_value_with_the_library_error() -> None:
    with pytest.raises(PayloadValidationError) as info:
        to_enum(core.ResetType, "Sotf", "type")
    assert info.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.path == "type"
    assert "'Sotf'" in info.value.description
