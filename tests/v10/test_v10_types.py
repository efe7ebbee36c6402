"""Data types of spec §3 and the shared structures (ntxcp.v10.types)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10 import ACTIONS, Payload, core, decode_payload, encode_payload, firmware, types
from ntxcp.v10.types import (
    DATETIME_PATTERN,
    URI_PATTERN,
    CapturedDatapoint,
    Location,
    Measurand,
    MeterValue,
    ReadingContext,
    SampledValue,
    UnitOfMeasure,
    UtcDateTime,
    UtcFieldsMixin,
    ValueFormat,
    encode_datetime,
    not_supported,
    utc_ms,
)

CEST = timezone(timedelta(hours=2))
IST = timezone(timedelta(hours=5, minutes=30))
NEWFOUNDLAND = timezone(-timedelta(hours=3, minutes=30))

# --- utc_ms / encode_datetime (spec §3) ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (datetime(2026, 11, 23, 18, 36, 34, tzinfo=UTC), "2026-11-23T18:36:34.000Z"),
        (datetime(2026, 11, 23, 20, 36, 34, 123456, tzinfo=CEST), "2026-11-23T18:36:34.123Z"),
        (datetime(2026, 11, 24, 0, 6, 34, 999999, tzinfo=IST), "2026-11-23T18:36:34.999Z"),
        (datetime(2026, 11, 23, 15, 6, 34, 1000, tzinfo=NEWFOUNDLAND), "2026-11-23T18:36:34.001Z"),
        (datetime(2026, 1, 1, 1, 0, 0, 500, tzinfo=CEST), "2025-12-31T23:00:00.000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
    ],
)
def test_encode_datetime_writes_millisecond_utc(value: datetime, wire: str) -> None:
    assert encode_datetime(value) == wire
    normalised = utc_ms(value)
    assert type(normalised) is UtcDateTime
    assert normalised.tzinfo is UTC
    assert encode_datetime(normalised) == wire
    assert value - normalised < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        # 0, 6 and 9 fractional digits, other offsets (spec §3: receivers accept them)
        ("2026-11-23T20:36:34+02:00", "2026-11-23T18:36:34.000Z"),
        ("2026-11-23T18:36:34.123456Z", "2026-11-23T18:36:34.123Z"),
        ("2026-11-23T13:06:34.123456789-05:30", "2026-11-23T18:36:34.123Z"),
        ("2026-11-24T00:06:34.5+05:30", "2026-11-23T18:36:34.500Z"),
        ("2026-11-23T18:36:34.123Z", "2026-11-23T18:36:34.123Z"),
    ],
)
def test_received_date_times_are_sent_as_millisecond_utc(text: str, wire: str) -> None:
    payload = f'{{"currentTime":"{text}"}}'.encode()
    conf = decode_payload(core.HeartbeatConfirmation, payload)
    assert type(conf.current_time) is UtcDateTime
    assert encode_payload(conf) == f'{{"currentTime":"{wire}"}}'.encode()


SENDER_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.timedeltas(
            min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
        ).map(lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1)))),
    )
)
def test_any_aware_datetime_is_sent_in_sender_form(value: datetime) -> None:
    wire = encode_datetime(value)
    assert SENDER_TEXT.fullmatch(wire)
    back = msgspec.json.decode(msgspec.json.encode(wire), type=types.DateTime)
    assert back == utc_ms(value)
    assert timedelta(0) <= value - back < timedelta(milliseconds=1)


def test_utc_ms_returns_a_normalised_value_itself() -> None:
    value = utc_ms(datetime(2026, 11, 23, 18, 36, 34, 123000, tzinfo=UTC))
    assert utc_ms(value) is value


def test_utc_ms_renormalises_a_shifted_subclass_instance() -> None:
    value = utc_ms(datetime(2026, 11, 23, 18, 36, 34, tzinfo=UTC))
    # arithmetic and astimezone() keep the subclass but break the invariant
    moved = value.astimezone(CEST)
    assert type(moved) is UtcDateTime
    assert utc_ms(moved).tzinfo is UTC
    assert utc_ms(moved) == value
    assert encode_datetime(moved) == "2026-11-23T18:36:34.000Z"
    finer = value + timedelta(microseconds=1500)
    assert encode_datetime(finer) == "2026-11-23T18:36:34.001Z"
    assert utc_ms(finer).microsecond == 1000


def test_utc_ms_rejects_naive_and_non_datetimes() -> None:
    with pytest.raises(ValueError, match="datetime must be timezone-aware"):
        utc_ms(datetime(2026, 11, 23, 18, 36, 34))
    with pytest.raises(ValueError, match="datetime must be timezone-aware"):
        encode_datetime(datetime(2026, 11, 23, 18, 36, 34))
    with pytest.raises(TypeError, match="expected datetime, got str"):
        utc_ms("2026-11-23T18:36:34Z")  # type: ignore[arg-type]


# --- UtcFieldsMixin ---------------------------------------------------------------------


def _payload_classes() -> list[type[Payload]]:
    classes: set[type[Payload]] = {MeterValue, SampledValue, types.KeyValue, CapturedDatapoint}
    for spec in ACTIONS.values():
        classes.update((spec.request, spec.confirmation))
    return sorted(classes, key=lambda c: c.__name__)


def _datetime_fields(cls: type[Payload]) -> tuple[str, ...]:
    def is_datetime(t: mi.Type) -> bool:
        if isinstance(t, mi.Metadata):
            return is_datetime(t.type)
        if isinstance(t, mi.UnionType):
            return any(is_datetime(m) for m in t.types)
        return isinstance(t, mi.DateTimeType)

    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return tuple(f.name for f in info.fields if is_datetime(f.type))


@pytest.mark.parametrize("cls", _payload_classes(), ids=lambda c: c.__name__)
def test_every_datetime_field_is_normalised(cls: type[Payload]) -> None:
    fields = _datetime_fields(cls)
    if fields:
        assert issubclass(cls, UtcFieldsMixin)
        assert fields == cls.UTC_FIELDS
    else:
        assert not issubclass(cls, UtcFieldsMixin)


def test_construction_normalises_and_rejects_naive() -> None:
    mv = MeterValue(
        timestamp=datetime(2026, 11, 23, 20, 36, 34, 123456, tzinfo=CEST),
        sampled_value=[SampledValue(value="1")],
    )
    assert type(mv.timestamp) is UtcDateTime
    assert mv.timestamp == datetime(2026, 11, 23, 18, 36, 34, 123000, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        MeterValue(timestamp=datetime(2026, 11, 23), sampled_value=[SampledValue(value="1")])


def test_already_normalised_values_are_kept() -> None:
    stamp = utc_ms(datetime(2026, 11, 23, 18, 36, 34, tzinfo=UTC))
    req = firmware.GetDiagnosticsRequest(location="ftp://h/p", start_time=stamp)
    assert req.start_time is stamp
    assert req.stop_time is None


def test_optional_datetime_may_be_absent() -> None:
    point = CapturedDatapoint(datapoint_id="flowTemp", value="45.5")
    assert point.timestamp is None
    assert encode_payload(point) == b'{"datapointId":"flowTemp","value":"45.5"}'


def test_assigned_plain_datetime_is_sent_normalised() -> None:
    conf = core.HeartbeatConfirmation(current_time=datetime(2026, 1, 1, tzinfo=UTC))
    conf.current_time = datetime(2026, 11, 23, 20, 36, 34, 123456, tzinfo=CEST)
    assert encode_payload(conf) == b'{"currentTime":"2026-11-23T18:36:34.123Z"}'


# --- scalar aliases and patterns -----------------------------------------------------------


def _decode_datetime(text: str) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(text), type=types.DateTime)
    except msgspec.ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T18:36:34Z",
        "2026-11-23t18:36:34z",
        "2026-11-23 18:36:34Z",
        "2026-11-23T18:36:34.1Z",
        "2026-11-23T18:36:34.123456789Z",
        "2026-11-23T18:36:34.1234567891Z",
        "2026-11-23T18:36:34+0200",
        "2026-11-23T18:36:34+23:59",
        "2026-11-23T18:36:34-00:00",
        "2026-11-23T18:36:34+02",
        "2026-11-23T18:36:34+24:00",
        "2026-11-23T18:36:34+02:60",
        "2026-11-23T18:36:60Z",
        "2026-11-23T18:60:34Z",
        "2026-11-23T24:00:00Z",
        "2026-11-32T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-23T18:36Z",
        "2026-11-23T18:36:34",
        "2026-11-23T18:36:34.Z",
        "2026-11-23T18:36:34,5Z",
        "20261123T183634Z",
        "+2026-11-23T18:36:34Z",
        "0000-01-01T00:00:00Z",
        "2026-11-23T18:36:34Z\n",
        " 2026-11-23T18:36:34Z",
        "2026-11-23",
    ],
)
def test_datetime_pattern_matches_what_the_models_accept(text: str) -> None:
    assert (re.search(DATETIME_PATTERN, text) is not None) == _decode_datetime(text)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("https://fw.example.com/dx/3.5.0.bin", True),
        ("ftp://user@diag.example.com:2121/uploads/", True),
        ("urn:ntxcp:diagnostics", True),
        ("s3+https://bucket/key", True),
        ("/uploads/diag", False),
        ("uploads/diag", False),
        ("://host/path", False),
        ("1ftp://host/path", False),
        ("https:", False),
        ("https://host/a b", False),
        ("https://host/a\n", False),
        ("", False),
        # RFC 3986: a URI is ASCII (anything else percent-encoded), as "format": "uri"
        # in the exported schemas says.
        ("w:\U0001f3fb", False),
        ("https://host/gr\u00fc\u00dfe", False),
        ("https://host/gr%C3%BC%C3%9Fe", True),
        ("http://[::1]:8080/fw.bin?v=3#top", True),
        ("Ll0:c>", False),
        ("https://host/%zz", False),
        ("https://host:port/", False),
        ("https://host/a#b#c", False),
        ("http://[::ffff:192.0.2.1]/", True),
        ("A://[0]", False),
        ("http://[1::2::3]/", False),
        ("http://[1:2:3:4:5:6:7:8:9]/", False),
    ],
)
def test_any_uri_requires_a_scheme(text: str, valid: bool) -> None:
    assert (re.search(URI_PATTERN, text) is not None) is valid
    try:
        msgspec.json.decode(msgspec.json.encode(text), type=types.AnyUri)
    except msgspec.ValidationError:
        decoded = False
    else:
        decoded = True
    assert decoded is valid


@pytest.mark.parametrize(
    ("alias", "size"),
    [
        (types.CiString20, 20),
        (types.CiString25, 25),
        (types.CiString50, 50),
        (types.CiString255, 255),
        (types.CiString500, 500),
    ],
)
def test_cistring_lengths(alias: Any, size: int) -> None:
    assert msgspec.json.decode(msgspec.json.encode("é" * size), type=alias) == "é" * size
    with pytest.raises(msgspec.ValidationError, match=f"length <= {size}"):
        msgspec.json.decode(msgspec.json.encode("x" * (size + 1)), type=alias)


def test_non_negative_int() -> None:
    assert msgspec.json.decode(b"0", type=types.NonNegativeInt) == 0
    for bad in (b"-1", b"1.0", b"true", b'"1"'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=types.NonNegativeInt)


# --- SampledValue defaults (spec §4.1) -------------------------------------------------------


def test_sampled_value_defaults_are_not_on_the_wire() -> None:
    sv = SampledValue(value="15234.5")
    assert encode_payload(sv) == b'{"value":"15234.5"}'
    assert sv.effective_context is ReadingContext.SAMPLE_PERIODIC
    assert sv.effective_format is ValueFormat.RAW
    assert sv.effective_measurand is Measurand.ENERGY_ACTIVE_IMPORT_REGISTER
    assert sv.effective_location is Location.OUTLET
    assert sv.effective_unit is UnitOfMeasure.WH


def test_sampled_value_effective_values_when_set() -> None:
    sv = SampledValue(
        value="41.5",
        context=ReadingContext.TRIGGER,
        format=ValueFormat.SIGNED_DATA,
        measurand=Measurand.TEMPERATURE,
        location=Location.BODY,
        unit=UnitOfMeasure.CELSIUS,
    )
    assert sv.effective_context is ReadingContext.TRIGGER
    assert sv.effective_format is ValueFormat.SIGNED_DATA
    assert sv.effective_measurand is Measurand.TEMPERATURE
    assert sv.effective_location is Location.BODY
    assert sv.effective_unit is UnitOfMeasure.CELSIUS


def test_null_optional_field_decodes_as_absent() -> None:
    sv = decode_payload(SampledValue, b'{"value":"1","unit":null,"phase":null}')
    assert sv == SampledValue(value="1")
    assert encode_payload(sv) == b'{"value":"1"}'


def test_null_required_field_is_a_type_error() -> None:
    with pytest.raises(PayloadValidationError) as info:
        decode_payload(SampledValue, b'{"value":null}')
    assert info.value.code is ErrorCode.TYPE_CONSTRAINT_VIOLATION


# --- handler support -----------------------------------------------------------------------


def test_not_supported_error() -> None:
    error = not_supported("Heartbeat")
    assert error.code is ErrorCode.NOT_SUPPORTED
    assert error.description == "Heartbeat is not supported by this handler"
