"""How the service stores the sampled values of one MeterValues message: packed in one row.

A MeterValues request (spec §4.1) carries meter values, each a timestamp and sampled
values. The service stores one row per message (``meter_messages``), not one per
sampled value: the per-row and per-index costs of SQLite are paid once per message.
Its ``samples`` column holds the message's meter values as compact JSON::

    [[timestamp_ms, [[value, measurand, phase, unit, context, location, format], ...]], ...]

* ``timestamp_ms``: the meter value's time, milliseconds since the Unix epoch (UTC);
* each sampled value lists its fields in that order; an enumerated field is the
  index of its value in the spec's list (:data:`CODES`), ``null`` when the gateway
  left it out (the spec's default applies, spec §4.1 ``SampledValue``); trailing
  ``null`` fields are left out. A value the list does not know (a lenient decoder
  may pass one) is kept as its text.

The row also keeps the first and last timestamp and a bit set of the measurands
present, so that the queries of the API select messages with the index and decode
only those that can match.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import msgspec

from ntxcp.v10 import types as t

__all__ = [
    "CODES",
    "DEFAULTS",
    "DEFAULT_MEASURAND_CODE",
    "FIELDS",
    "MEASURAND_BITS",
    "PackedMessage",
    "Sample",
    "enumerated_texts",
    "epoch_ms",
    "measurand_bit",
    "measurand_key",
    "ms_text",
    "pack",
    "text_ms",
    "unpack",
]

FIELDS = ("value", "measurand", "phase", "unit", "context", "location", "format")
"""The fields of a packed sampled value, in their order."""

CODES: tuple[tuple[str, ...], ...] = (
    (),
    tuple(m.value for m in t.Measurand),
    tuple(m.value for m in t.Phase),
    tuple(m.value for m in t.UnitOfMeasure),
    tuple(m.value for m in t.ReadingContext),
    tuple(m.value for m in t.Location),
    tuple(m.value for m in t.ValueFormat),
)
"""Per field of :data:`FIELDS`: the values its codes stand for (the code is the index)."""

DEFAULTS: tuple[str | None, ...] = (
    None,
    t.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER.value,
    None,
    t.UnitOfMeasure.WH.value,
    t.ReadingContext.SAMPLE_PERIODIC.value,
    t.Location.OUTLET.value,
    t.ValueFormat.RAW.value,
)
"""The spec's default of each field when a gateway leaves it out (spec §4.1)."""

_INDEX = [{value: code for code, value in enumerate(codes)} for codes in CODES]
_MEASURAND_CODE = _INDEX[1]
DEFAULT_MEASURAND_CODE = _MEASURAND_CODE[DEFAULTS[1] or ""]
"""The code of the default measurand, which a packed sampled value without one has."""
MEASURAND_BITS = {value: 1 << code for value, code in _MEASURAND_CODE.items()}
"""The bit of each measurand in a row's ``measurands`` column."""
_OTHER_MEASURAND_BIT = 1 << 62  # a measurand outside the spec's list (lenient decoding)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_TEXTS: tuple[str, str, str, str, str] = (
    t.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER.value,
    t.UnitOfMeasure.WH.value,
    t.ReadingContext.SAMPLE_PERIODIC.value,
    t.Location.OUTLET.value,
    t.ValueFormat.RAW.value,
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class PackedMessage(msgspec.Struct, array_like=True, frozen=True):
    """A MeterValues message ready to store.

    Attributes:
        samples: the packed meter values (see the module's description).
        first_ms: the earliest meter value timestamp (ms since the epoch, UTC).
        last_ms: the latest.
        measurands: the bit set of measurands present (:data:`MEASURAND_BITS`).
        count: the number of sampled values.
    """

    samples: bytes
    first_ms: int
    last_ms: int
    measurands: int
    count: int


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware date-time (spec §3 times are UTC)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def text_ms(text: str) -> int:
    """Milliseconds since the Unix epoch of a spec §3 date-time text.

    The text ends in ``Z`` or an offset: as stored, or as the API checked it.
    """
    return epoch_ms(datetime.fromisoformat(text))


def measurand_key(measurand: str) -> int | str:
    """What a packed sampled value holds for a measurand.

    Its code, or its text when it is outside the spec's list (lenient decoding).
    """
    code = _MEASURAND_CODE.get(measurand)
    return measurand if code is None else code


@lru_cache(maxsize=8192)
def _minute_text(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of a minute counted from the Unix epoch (each formatted once)."""
    day, minute_of_day = divmod(minute, 1440)
    hour, minute = divmod(minute_of_day, 60)
    return f"{(_EPOCH + timedelta(days=day)).date().isoformat()}T{hour:02d}:{minute:02d}:"


def ms_text(ms: int) -> str:
    """Spec §3 text (``YYYY-MM-DDTHH:MM:SS.mmmZ``, UTC) of milliseconds since the epoch.

    The text up to the minute is formatted once per minute (and cached), the seconds by
    arithmetic: reads format two times per stored sampled value, so this is on their hot
    path.

    Raises:
        OverflowError: the time is outside the years 1..9999.
    """
    minute, rest = divmod(ms, 60_000)
    return f"{_minute_text(minute)}{rest // 1000:02d}.{rest % 1000:03d}Z"


def pack(meter_values: Sequence[t.MeterValue]) -> PackedMessage:
    """Pack the meter values of one MeterValues request.

    Args:
        meter_values: the request's ``meterValue`` list (spec §4.1).

    Returns:
        What one ``meter_messages`` row stores.
    """
    packed: list[Any] = []
    first = last = None
    bits = count = 0
    index = _INDEX
    for meter_value in meter_values:
        stamp = epoch_ms(meter_value.timestamp)
        if first is None or stamp < first:
            first = stamp
        if last is None or stamp > last:
            last = stamp
        samples: list[list[Any]] = []
        for sample in meter_value.sampled_value:
            fields: list[Any] = [
                sample.value,
                None
                if sample.measurand is None
                else index[1].get(sample.measurand, sample.measurand),
                None if sample.phase is None else index[2].get(sample.phase, sample.phase),
                None if sample.unit is None else index[3].get(sample.unit, sample.unit),
                None if sample.context is None else index[4].get(sample.context, sample.context),
                None if sample.location is None else index[5].get(sample.location, sample.location),
                None if sample.format is None else index[6].get(sample.format, sample.format),
            ]
            while fields[-1] is None:
                fields.pop()
            measurand = fields[1] if len(fields) > 1 else None
            if measurand is None:
                bits |= 1 << DEFAULT_MEASURAND_CODE
            elif isinstance(measurand, int):
                bits |= 1 << measurand
            else:
                bits |= _OTHER_MEASURAND_BIT
            samples.append(fields)
        count += len(samples)
        packed.append([stamp, samples])
    return PackedMessage(_encode(packed), first or 0, last or 0, bits, count)


Sample = tuple[int, str, str, str | None, str, str, str, str]
"""An unpacked sampled value: (timestamp ms, value, measurand, phase, unit, context,
location, format), with the spec's defaults filled in."""


def _field(codes: tuple[str, ...], default: str | None, field: Any) -> Any:
    if field is None:
        return default
    if field.__class__ is int:
        return codes[field] if 0 <= field < len(codes) else str(field)
    return field


Tail = tuple[str, str | None, str, str, str, str]
"""The enumerated fields of a :data:`Sample`: measurand, phase, unit, context, location,
format."""

_TAILS: dict[tuple[Any, ...], Tail] = {}
_TAILS_MOST = 4096  # stored texts outside the spec's lists are keys too: bounded


def enumerated_texts(codes: tuple[Any, ...]) -> Tail:
    """The enumerated fields of a packed sampled value (its fields after the value)."""
    tail = _TAILS.get(codes)
    if tail is None:
        m, p, u, c, loc, f = codes + (None,) * (6 - len(codes))
        m_codes, p_codes, u_codes, c_codes, l_codes, f_codes = CODES[1:]
        m_default, u_default, c_default, l_default, f_default = _DEFAULT_TEXTS
        tail = (
            _field(m_codes, m_default, m),
            _field(p_codes, None, p),
            _field(u_codes, u_default, u),
            _field(c_codes, c_default, c),
            _field(l_codes, l_default, loc),
            _field(f_codes, f_default, f),
        )
        if len(_TAILS) < _TAILS_MOST:
            _TAILS[codes] = tail
    return tail


def unpack(samples: bytes | str, measurand: str | None = None) -> list[Sample]:
    """The sampled values of a stored message, in the order they arrived.

    The enumerated fields of each distinct combination of codes are looked up once
    (:func:`enumerated_texts`): messages repeat a few combinations.

    Args:
        samples: the ``samples`` column.
        measurand: only the sampled values of this measurand.

    Returns:
        One :data:`Sample` per sampled value.
    """
    wanted = None if measurand is None else measurand_key(measurand)
    tails = _TAILS
    found: list[Sample] = []
    for stamp, values in _decode(samples):
        for fields in values:
            codes = tuple(fields[1:])
            if wanted is not None:
                code = codes[0] if codes else None
                if (DEFAULT_MEASURAND_CODE if code is None else code) != wanted:
                    continue
            tail = tails.get(codes) or enumerated_texts(codes)
            found.append((stamp, fields[0], *tail))
    return found


def measurand_bit(measurand: str) -> int:
    """The bit of ``measurand`` in the ``measurands`` column.

    A measurand outside the spec's list gets the bit all such share.
    """
    return MEASURAND_BITS.get(measurand, _OTHER_MEASURAND_BIT)
