"""The codec: error mapping, lenient mode, encoding rules (spec §2.1, §2.2 rule 4, §3, §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10 import core, firmware, types
from ntxcp.v10.codec import (
    build,
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


def _meter_values(*samples_per_entry: int) -> bytes:
    entries = [
        {"timestamp": "2026-12-01T10:00:00Z", "sampledValue": [{"value": "1"}] * count}
        for count in samples_per_entry
    ]
    return msgspec.json.encode({"serviceId": 1, "meterValue": entries})


def test_sampled_values_per_message_are_bounded() -> None:
    """At most MAX_SAMPLED_VALUES per MeterValues, however they are spread (notes)."""
    limit = types.MAX_SAMPLED_VALUES
    for fits in ((limit,), (limit // 2, limit // 2), (1,) * limit):
        assert len(decode_payload(core.MeterValuesRequest, _meter_values(*fits)).meter_value)
    for path, too_many in (
        ("meterValue[0].sampledValue", (limit + 1,)),  # one array too long
        ("meterValue", (1,) * (limit + 1)),  # too many entries
        ("meterValue", (limit // 2, limit // 2, 1)),  # too many in all
    ):
        with pytest.raises(PayloadValidationError) as info:
            decode_payload(core.MeterValuesRequest, _meter_values(*too_many))
        assert info.value.code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, too_many
        assert info.value.path == path, info.value
    # A sender cannot even build one (and encoding validates the rest).
    sample = types.SampledValue(value="1")
    stamp = datetime(2026, 12, 1, tzinfo=UTC)
    entries = [types.MeterValue(timestamp=stamp, sampled_value=[sample] * 600)] * 2
    with pytest.raises(ValueError, match="at most 1000 per message"):
        core.MeterValuesRequest(service_id=1, meter_value=entries)
    request = core.MeterValuesRequest(service_id=1, meter_value=entries[:1])
    request.meter_value[0].sampled_value.extend([sample] * 500)  # one array too long
    with pytest.raises(PayloadValidationError) as info:
        encode_payload(request)
    assert info.value.code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION


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


T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


def test_build_turns_a_whole_message_rule_into_the_decoders_error() -> None:
    # The typed request methods build payloads with it: a rule checked by the class
    # when built raises the library's error, with the code and path of the wire.
    ok = build(lambda: core.CaptureProcessRequest(service_id="S", datapoint_ids=["a"]))
    assert ok.datapoint_ids == ["a"]
    with pytest.raises(PayloadValidationError) as duplicate:
        build(lambda: core.CaptureProcessRequest(service_id="S", datapoint_ids=["a", "A"]))
    assert duplicate.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert duplicate.value.path == "datapointIds"
    sample = types.SampledValue(value="1")
    meter_value = types.MeterValue(timestamp=T0, sampled_value=[sample] * 600)
    with pytest.raises(PayloadValidationError) as too_many:
        build(lambda: core.MeterValuesRequest(service_id=1, meter_value=[meter_value, meter_value]))
    assert too_many.value.code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert too_many.value.path == "meterValue"
