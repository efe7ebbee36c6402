"""Values at and past the edges of spec §3's types: date-times and integers.

A receiver must answer every such value with a CALLERROR that names the field (spec
§2.2 rule 4), never an internal failure: a store-and-forward gateway whose stored
message is answered ``InternalError`` (or whose connection is closed with 1011) would
re-send it for ever. The spec is silent on the integer range; ntxcp takes OCPP 1.6-J's
32-bit integer (docs/protocol-notes.md), on decode and on encode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10 import Payload, core, decode_payload, encode_payload, firmware
from ntxcp.v10.types import MAX_INTEGER, CapturedDatapoint, utc_ms

T = "2026-11-23T18:36:34.123Z"
METER = {"timestamp": T, "sampledValue": [{"value": "1"}]}
EARLY = "0001-01-01T00:00:00+01:00"  # year 0 in UTC
LATE = "9999-12-31T23:59:59-01:00"  # year 10000 in UTC

# (class, a valid payload, a function placing a date-time, the path it is reported at)
DATETIME_FIELDS: list[tuple[type[Payload], dict[str, Any], str]] = [
    (
        core.StatusNotificationRequest,
        {"serviceId": "1", "status": "Available", "errorCode": "NoError", "timestamp": T},
        "timestamp",
    ),
    (core.MeterValuesRequest, {"serviceId": 1, "meterValue": [METER]}, "meterValue[0].timestamp"),
    (core.HeartbeatConfirmation, {"currentTime": T}, "currentTime"),
    (
        core.BootNotificationConfirmation,
        {"status": "Accepted", "currentTime": T, "interval": 60},
        "currentTime",
    ),
    (
        core.CaptureProcessConfirmation,
        {"status": "Accepted", "datapoints": [{"datapointId": "d", "value": "1", "timestamp": T}]},
        "datapoints[0].timestamp",
    ),
    (firmware.UpdateFirmwareRequest, {"location": "ftp://x/f", "retrieveDate": T}, "retrieveDate"),
    (firmware.GetDiagnosticsRequest, {"location": "ftp://x/", "startTime": T}, "startTime"),
    (firmware.GetDiagnosticsRequest, {"location": "ftp://x/", "stopTime": T}, "stopTime"),
]

# (class, a valid payload, the integer field's path)
INTEGER_FIELDS: list[tuple[type[Payload], dict[str, Any], str]] = [
    (core.MeterValuesRequest, {"serviceId": 1, "meterValue": [METER]}, "serviceId"),
    (
        core.BootNotificationConfirmation,
        {"status": "Accepted", "currentTime": T, "interval": 60},
        "interval",
    ),
    (firmware.UpdateFirmwareRequest, {"location": "ftp://x/f", "retrieveDate": T}, "retries"),
    (firmware.UpdateFirmwareRequest, {"location": "ftp://x/f", "retrieveDate": T}, "retryInterval"),
    (firmware.GetDiagnosticsRequest, {"location": "ftp://x/"}, "retries"),
    (firmware.GetDiagnosticsRequest, {"location": "ftp://x/"}, "retryInterval"),
]


def _place(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``payload`` with ``value`` at ``path`` (``a[0].b`` form)."""
    copy: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(payload))
    node: Any = copy
    parts = path.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    node[parts[-1]] = value
    return copy


def _decode(cls: type[Payload], payload: dict[str, Any]) -> Payload:
    return decode_payload(cls, msgspec.json.encode(payload))


def _ids(cases: list[tuple[type[Payload], dict[str, Any], str]]) -> list[str]:
    return [f"{cls.__name__}.{path}" for cls, _, path in cases]


# --- date-times (spec §3) ------------------------------------------------------------------


@pytest.mark.parametrize("text", [EARLY, LATE])
@pytest.mark.parametrize(("cls", "payload", "path"), DATETIME_FIELDS, ids=_ids(DATETIME_FIELDS))
def test_datetime_out_of_range_in_utc_is_a_property_violation(
    cls: type[Payload], payload: dict[str, Any], path: str, text: str
) -> None:
    with pytest.raises(PayloadValidationError) as caught:
        _decode(cls, _place(payload, path, text))
    assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert caught.value.path == path
    assert "out of range" in caught.value.description


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("0001-01-01T00:00:00-01:00", "0001-01-01T01:00:00.000Z"),
        ("0001-01-01T00:59:59+00:59", "0001-01-01T00:00:59.000Z"),
        ("9999-12-31T23:59:59.9999+00:00", "9999-12-31T23:59:59.999Z"),
        ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59.000Z"),
    ],
)
def test_datetime_at_the_edges_of_the_range_round_trips(text: str, wire: str) -> None:
    request = _decode(firmware.UpdateFirmwareRequest, {"location": "ftp://x", "retrieveDate": text})
    assert encode_payload(request) == b'{"location":"ftp://x","retrieveDate":"%s"}' % wire.encode()


def test_constructing_with_a_datetime_out_of_range_names_the_field() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(ValueError, match=r"^retrieveDate: date-time out of range"):
        firmware.UpdateFirmwareRequest(location="ftp://x", retrieve_date=early)
    with pytest.raises(ValueError, match=r"^date-time out of range"):
        utc_ms(early)
    with pytest.raises(ValueError, match=r"^timestamp: date-time out of range"):
        CapturedDatapoint(datapoint_id="d", value="1", timestamp=early)


def test_naive_datetime_still_raises_its_own_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        firmware.UpdateFirmwareRequest(location="ftp://x", retrieve_date=datetime(2026, 1, 1))


_OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)


@given(
    local=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    offset_minutes=_OFFSETS,
    digits=st.integers(min_value=0, max_value=9),
)
def test_any_received_datetime_is_taken_or_refused_with_a_path(
    local: datetime, offset_minutes: int, digits: int
) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    fraction = f".{local.microsecond:06d}{'0' * 3}"[: digits + 1] if digits else ""
    text = f"{local.year:04d}-{local:%m-%dT%H:%M:%S}{fraction}{sign}{hours:02d}:{minutes:02d}"
    payload = {"serviceId": 1, "meterValue": [{**METER, "timestamp": text}]}
    offset = timezone(timedelta(minutes=offset_minutes))
    sent = local.replace(
        microsecond=local.microsecond - local.microsecond % 10 ** max(6 - digits, 0)
    )
    try:
        expected: datetime | None = sent.replace(tzinfo=offset).astimezone(UTC)
    except OverflowError:
        expected = None
    if expected is None:
        with pytest.raises(PayloadValidationError) as caught:
            _decode(core.MeterValuesRequest, payload)
        assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
        assert caught.value.path == "meterValue[0].timestamp"
        return
    request = _decode(core.MeterValuesRequest, payload)
    assert isinstance(request, core.MeterValuesRequest)
    stamp = request.meter_value[0].timestamp
    assert stamp.tzinfo is UTC and stamp.microsecond % 1000 == 0
    assert timedelta(0) <= expected - stamp < timedelta(milliseconds=1)
    assert _decode(core.MeterValuesRequest, msgspec.json.decode(encode_payload(request))) == request


# --- integers (spec §3; range from OCPP 1.6-J) -------------------------------------------


@pytest.mark.parametrize(("cls", "payload", "path"), INTEGER_FIELDS, ids=_ids(INTEGER_FIELDS))
def test_integer_range_is_enforced_on_decode(
    cls: type[Payload], payload: dict[str, Any], path: str
) -> None:
    for value in (0, MAX_INTEGER):
        _decode(cls, _place(payload, path, value))
    for value in (MAX_INTEGER + 1, 99999999999999999999999999, -1, -(2**70)):
        with pytest.raises(PayloadValidationError) as caught:
            _decode(cls, _place(payload, path, value))
        assert caught.value.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, value
        assert caught.value.path == path


def test_integer_range_is_enforced_on_encode() -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    request = firmware.UpdateFirmwareRequest(
        location="ftp://x", retrieve_date=stamp, retries=99999999999999999999999999
    )
    with pytest.raises(PayloadValidationError) as caught:
        encode_payload(request)
    assert (caught.value.code, caught.value.path) == (
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "retries",
    )
    meter = core.MeterValuesRequest(service_id=MAX_INTEGER + 1, meter_value=[])
    with pytest.raises(PayloadValidationError):
        encode_payload(meter)


@given(
    case=st.sampled_from(INTEGER_FIELDS),
    value=st.one_of(
        st.integers(),
        st.integers(min_value=-(2**200), max_value=2**200),
        st.sampled_from([MAX_INTEGER, MAX_INTEGER + 1, 2**63, 2**64, -(2**63) - 1]),
    ),
)
def test_any_integer_is_taken_in_range_or_refused_with_a_path(
    case: tuple[type[Payload], dict[str, Any], str], value: int
) -> None:
    cls, payload, path = case
    data = _place(payload, path, value)
    if 0 <= value <= MAX_INTEGER:
        decoded = _decode(cls, data)
        assert msgspec.json.decode(encode_payload(decoded)) == _place(
            msgspec.json.decode(encode_payload(decoded)), path, value
        )
        return
    with pytest.raises(PayloadValidationError) as caught:
        _decode(cls, data)
    assert (caught.value.code, caught.value.path) == (ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path)


@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
    )
)
def test_non_integers_are_type_violations(value: Any) -> None:
    data = _place({"location": "ftp://x/"}, "retries", value)
    if value is None:  # null is "absent" (docs/protocol-notes.md)
        _decode(firmware.GetDiagnosticsRequest, data)
        return
    with pytest.raises(PayloadValidationError) as caught:
        _decode(firmware.GetDiagnosticsRequest, data)
    assert (caught.value.code, caught.value.path) == (
        ErrorCode.TYPE_CONSTRAINT_VIOLATION,
        "retries",
    )
