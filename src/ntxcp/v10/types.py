"""Data types shared by the ntxcp 1.0 messages (spec §3, §4.1).

This module holds:

* the constrained scalar aliases of spec §3 (``CiString20`` … ``CiString500``,
  ``NonNegativeInt``, ``AnyUri``, ``DateTime``), used as field annotations;
* the date-time rules of spec §3: :class:`UtcDateTime`, :func:`utc_ms` and
  :func:`encode_datetime`;
* the pieces shared by the handler base classes of the profile modules
  (:data:`Reply`, :func:`not_supported`);
* the structures used by more than one message (:class:`MeterValue`,
  :class:`SampledValue`, :class:`KeyValue`, :class:`CapturedDatapoint`) and their enums.

Date-times (spec §3):
    A receiver accepts any UTC offset and any number of fractional digits; a sender
    writes UTC with ``Z`` and exactly three fractional digits. Every payload that holds
    a date-time normalises it in ``__post_init__`` (which msgspec runs after
    construction *and* after decoding) to a :class:`UtcDateTime`: converted to UTC and
    truncated to whole milliseconds. msgspec hands instances of this ``datetime``
    subclass to the encoder's ``enc_hook``; the codec's hook is :func:`encode_datetime`,
    so the wire text is always ``YYYY-MM-DDTHH:MM:SS.mmmZ``. Encode payloads with
    :mod:`ntxcp.v10.codec`: a bare ``msgspec.json.encode`` has no such hook and raises
    ``TypeError`` for a :class:`UtcDateTime`.

Optional fields:
    Every optional field defaults to ``None`` and is left out of the wire when unset.
    A JSON ``null`` for an optional field is accepted and decodes as absent (``None``),
    so it is not echoed back when the payload is re-encoded. Defaults that the spec
    gives for optional fields (e.g. ``SampledValue.measurand``) are *not* field
    defaults, so that a payload round-trips exactly; they are documented on the class
    and offered as ``effective_*`` properties.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Final, TypeAlias, TypeVar

from msgspec import Meta

from ntxcp.errors import CallError, ErrorCode
from ntxcp.v10.base import Payload

__all__ = [
    "DATETIME_PATTERN",
    "MAX_INTEGER",
    "MAX_SAMPLED_VALUES",
    "URI_PATTERN",
    "AnyUri",
    "CapturedDatapoint",
    "CiString20",
    "CiString25",
    "CiString50",
    "CiString255",
    "CiString500",
    "DateTime",
    "KeyValue",
    "Location",
    "Measurand",
    "MeterValue",
    "NonNegativeInt",
    "Phase",
    "ReadingContext",
    "Reply",
    "SampledValue",
    "UnitOfMeasure",
    "UtcDateTime",
    "UtcFieldsMixin",
    "ValueFormat",
    "encode_datetime",
    "not_supported",
    "utc_ms",
]

# --- scalar types (spec §3) -----------------------------------------------------------

# `(?![\s\S])` is "end of text": unlike `$` it never matches before a trailing newline,
# and it means the same in Python `re` (msgspec, jsonschema) and ECMA-262 regexes.
_END: Final = r"(?![\s\S])"

MAX_SAMPLED_VALUES: Final = 1000
"""Most sampled values one MeterValues may carry, over all its ``meterValue`` entries.

The spec (§4.1) sets no upper bound; every sampled value is stored, so without one a
single 1 MiB message could carry 70 000 of them and cost a receiver a second of work.
More is an ``OccurrenceConstraintViolation`` (see ``docs/protocol-notes.md``).
"""

_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|" + _PCT + ")"
_USERINFO = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|" + _PCT + ")*@"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"


def _ipv6() -> str:
    """RFC 3986's IPv6address: up to 8 groups, at most one ``::``, maybe IPv4 at the end."""
    forms = [f"(?:{_H16}:){{6}}{_LS32}", f"::(?:{_H16}:){{5}}{_LS32}"]
    for before, after in ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0)):
        head = f"(?:(?:{_H16}:){{0,{before}}}{_H16})?"
        forms.append(f"{head}::(?:{_H16}:){{{after}}}{_LS32}")
    forms.append(f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}")
    forms.append(f"(?:(?:{_H16}:){{0,6}}{_H16})?::")
    return "(?:" + "|".join(forms) + ")"


_HOST = rf"(?:\[{_ipv6()}\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|{_PCT})*)"
_SEGMENTS = "(?:/" + _PCHAR + "*)*"
URI_PATTERN: Final = (
    "^[A-Za-z][A-Za-z0-9+.-]*:"  # scheme ":"
    f"(?://(?:{_USERINFO})?{_HOST}(?::[0-9]*)?{_SEGMENTS}"  # "//" authority path
    f"|/(?:{_PCHAR}+{_SEGMENTS})?"  # or an absolute path
    f"|{_PCHAR}+{_SEGMENTS})"  # or a rootless one (urn:...)
    f"(?:\\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?" + _END  # query, fragment
)
"""An absolute URI (spec §3 ``anyURI``): RFC 3986's ``scheme ":" hier-part [ "?" query ]
[ "#" fragment ]`` with a non-empty hier-part; ASCII only (other characters are
percent-encoded), as the exported schemas' ``"format": "uri"`` says."""

DATETIME_PATTERN: Final = (
    r"^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]"
    r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):?[0-5]\d)" + _END
)
"""The date-time texts a receiver accepts, as a regex for the exported JSON Schemas.

It mirrors msgspec's RFC 3339 parser, which the models use: ``T``, ``t`` or a space
between date and time, ``Z``/``z`` or a ``±hh:mm`` (or ``±hhmm``) offset, any number of
fractional digits. It cannot check the calendar (``2026-02-30`` matches; the models
reject it).
"""

CiString20 = Annotated[str, Meta(max_length=20)]
"""Case-insensitive string of at most 20 characters (spec §3)."""
CiString25 = Annotated[str, Meta(max_length=25)]
"""Case-insensitive string of at most 25 characters (spec §3)."""
CiString50 = Annotated[str, Meta(max_length=50)]
"""Case-insensitive string of at most 50 characters (spec §3)."""
CiString255 = Annotated[str, Meta(max_length=255)]
"""Case-insensitive string of at most 255 characters (spec §3)."""
CiString500 = Annotated[str, Meta(max_length=500)]
"""Case-insensitive string of at most 500 characters (spec §3)."""
MAX_INTEGER: Final = 2**31 - 1
"""Largest integer of any message field (spec §3 is silent: OCPP 1.6-J's 32-bit integer)."""
NonNegativeInt = Annotated[int, Meta(ge=0, le=MAX_INTEGER)]
"""JSON integer 0..2**31 - 1 (spec §3: ``1.0`` is not an integer; range from OCPP 1.6-J)."""
AnyUri = Annotated[str, Meta(pattern=URI_PATTERN, extra_json_schema={"format": "uri"})]
"""Absolute URI, scheme required (spec §3 ``anyURI``)."""
DateTime = Annotated[datetime, Meta(tz=True, extra_json_schema={"pattern": DATETIME_PATTERN})]
"""RFC 3339 date-time with an offset (spec §3); normalised to :class:`UtcDateTime`."""


class _OutOfRangeError(ValueError):
    """A date-time whose UTC time falls outside years 1..9999 (no ``datetime`` holds it)."""


class UtcDateTime(datetime):
    """A UTC ``datetime`` truncated to milliseconds, as senders write it (spec §3).

    Create instances with :func:`utc_ms`; payloads do it for you. Being a subclass of
    ``datetime``, it compares, hashes and computes like any aware ``datetime``; the only
    difference is that msgspec leaves its encoding to the encoder's ``enc_hook``
    (:func:`encode_datetime` in the codec).
    """

    __slots__ = ()


def utc_ms(dt: datetime) -> UtcDateTime:
    """Normalise a date-time for sending: UTC, truncated to whole milliseconds (spec §3).

    Args:
        dt: an aware ``datetime`` with any UTC offset.

    Returns:
        The same instant as a :class:`UtcDateTime` (``dt`` itself if it already is a
        normalised one).

    Raises:
        TypeError: ``dt`` is not a ``datetime``.
        ValueError: ``dt`` is naive ("datetime must be timezone-aware"), or its UTC
            time falls outside years 1..9999 (e.g. ``0001-01-01T00:00:00+01:00``).
    """
    # Arithmetic, replace() and astimezone() keep the subclass, so check the invariant.
    if type(dt) is UtcDateTime and dt.tzinfo is UTC and not dt.microsecond % 1000:
        return dt
    if not isinstance(dt, datetime):
        raise TypeError(f"expected datetime, got {type(dt).__name__}")
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError("datetime must be timezone-aware")
    if offset:
        try:
            dt = dt - offset  # the wall-clock time in UTC
        except OverflowError:
            raise _OutOfRangeError(
                f"date-time out of range in UTC (years 1..9999): {dt.isoformat()}"
            ) from None
    return UtcDateTime(
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond - dt.microsecond % 1000,
        tzinfo=UTC,
    )


def encode_datetime(obj: datetime) -> str:
    """Write a date-time as senders must: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (spec §3).

    Any aware ``datetime`` is accepted; it is converted to UTC and truncated to
    milliseconds first (nothing to do for a normalised :class:`UtcDateTime`).

    Args:
        obj: an aware ``datetime``.

    Returns:
        The wire text, e.g. ``"2026-11-23T18:36:34.123Z"``.

    Raises:
        TypeError: ``obj`` is not a ``datetime``.
        ValueError: ``obj`` is naive, or out of range in UTC (see :func:`utc_ms`).
    """
    # isoformat() starts with "YYYY-MM-DDTHH:MM:SS.mmm" (23 characters), then the offset.
    return utc_ms(obj).isoformat(timespec="milliseconds")[:23] + "Z"


class UtcFieldsMixin:
    """Mixin for payloads with date-time fields: keeps them :class:`UtcDateTime` (spec §3).

    A payload class lists the names of its ``DateTime`` fields in ``UTC_FIELDS``;
    ``__post_init__`` (run by msgspec after construction and after decoding) replaces
    each value that is not ``None`` and not yet a normalised :class:`UtcDateTime` by
    :func:`utc_ms` of it. A naive ``datetime`` given to the constructor raises
    ``ValueError``; so does one outside years 1..9999 once in UTC, naming the field
    (``"timestamp: date-time out of range ..."``), which the codec reports as a
    ``PropertyConstraintViolation`` at that field's path.

    Assigning a plain ``datetime`` to such a field *after* construction bypasses this;
    the codec's validating encoder normalises it again before writing.
    """

    __slots__ = ()

    UTC_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Normalise the date-time fields named in ``UTC_FIELDS``."""
        for name in self.UTC_FIELDS:
            value = getattr(self, name)
            if value is not None:
                try:
                    normalised = utc_ms(value)
                except _OutOfRangeError as exc:
                    # Name the field: the codec turns "<field>: date-time out of range"
                    # into a PropertyConstraintViolation at its path (spec §2.2 rule 4).
                    wire_name = self.__struct_encode_fields__[  # type: ignore[attr-defined]
                        self.__struct_fields__.index(name)  # type: ignore[attr-defined]
                    ]
                    raise ValueError(f"{wire_name}: {exc}") from None
                if normalised is not value:
                    setattr(self, name, normalised)


# --- handler support (spec §5) ---------------------------------------------------------

_C = TypeVar("_C")

Reply: TypeAlias = _C | Awaitable[_C]
"""What a handler method returns: the confirmation, or an awaitable of it.

``Reply[BootNotificationConfirmation]`` lets an override be a plain ``def`` or an
``async def``; both type-check against the base method.
"""


def not_supported(action: str) -> CallError:
    """The error a handler base method raises for an action it does not handle (spec §5).

    Args:
        action: the action's wire name, e.g. ``"BootNotification"``.

    Returns:
        A ``NotSupported`` :class:`~ntxcp.errors.CallError` to raise.
    """
    return CallError(ErrorCode.NOT_SUPPORTED, f"{action} is not supported by this handler")


# --- enums of MeterValue (spec §4.1 MeterValues) ---------------------------------------


class ReadingContext(StrEnum):
    """Why a value was sampled (spec §4.1 ``ReadingContext``)."""

    INTERRUPTION_BEGIN = "Interruption.Begin"
    INTERRUPTION_END = "Interruption.End"
    OTHER = "Other"
    SAMPLE_CLOCK = "Sample.Clock"
    SAMPLE_PERIODIC = "Sample.Periodic"
    TRANSACTION_BEGIN = "Transaction.Begin"
    TRANSACTION_END = "Transaction.End"
    TRIGGER = "Trigger"


class ValueFormat(StrEnum):
    """How ``SampledValue.value`` is written (spec §4.1 ``ValueFormat``)."""

    RAW = "Raw"
    SIGNED_DATA = "SignedData"


class Measurand(StrEnum):
    """What a sampled value measures (spec §4.1 ``Measurand``)."""

    CURRENT_EXPORT = "Current.Export"
    CURRENT_IMPORT = "Current.Import"
    CURRENT_OFFERED = "Current.Offered"
    ENERGY_ACTIVE_EXPORT_REGISTER = "Energy.Active.Export.Register"
    ENERGY_ACTIVE_IMPORT_REGISTER = "Energy.Active.Import.Register"
    ENERGY_REACTIVE_EXPORT_REGISTER = "Energy.Reactive.Export.Register"
    ENERGY_REACTIVE_IMPORT_REGISTER = "Energy.Reactive.Import.Register"
    ENERGY_ACTIVE_EXPORT_INTERVAL = "Energy.Active.Export.Interval"
    ENERGY_ACTIVE_IMPORT_INTERVAL = "Energy.Active.Import.Interval"
    ENERGY_REACTIVE_EXPORT_INTERVAL = "Energy.Reactive.Export.Interval"
    ENERGY_REACTIVE_IMPORT_INTERVAL = "Energy.Reactive.Import.Interval"
    FREQUENCY = "Frequency"
    POWER_ACTIVE_EXPORT = "Power.Active.Export"
    POWER_ACTIVE_IMPORT = "Power.Active.Import"
    POWER_FACTOR = "Power.Factor"
    POWER_OFFERED = "Power.Offered"
    POWER_REACTIVE_EXPORT = "Power.Reactive.Export"
    POWER_REACTIVE_IMPORT = "Power.Reactive.Import"
    RPM = "RPM"
    SOC = "SoC"
    TEMPERATURE = "Temperature"
    VOLTAGE = "Voltage"


class Phase(StrEnum):
    """The phase(s) a value was measured on (spec §4.1 ``Phase``)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    N = "N"
    L1_N = "L1-N"
    L2_N = "L2-N"
    L3_N = "L3-N"
    L1_L2 = "L1-L2"
    L2_L3 = "L2-L3"
    L3_L1 = "L3-L1"


class Location(StrEnum):
    """Where a value was measured (spec §4.1 ``Location``)."""

    BODY = "Body"
    CABLE = "Cable"
    EV = "EV"
    INLET = "Inlet"
    OUTLET = "Outlet"


class UnitOfMeasure(StrEnum):
    """Unit of a sampled value (spec §4.1 ``UnitOfMeasure``)."""

    WH = "Wh"
    KWH = "kWh"
    VARH = "varh"
    KVARH = "kvarh"
    W = "W"
    KW = "kW"
    VA = "VA"
    KVA = "kVA"
    VAR = "var"
    KVAR = "kvar"
    A = "A"
    V = "V"
    CELSIUS = "Celsius"
    FAHRENHEIT = "Fahrenheit"
    K = "K"
    PERCENT = "Percent"


# --- shared structures -----------------------------------------------------------------


class SampledValue(Payload):
    """One measured value (spec §4.1 ``SampledValue``).

    Unset optional fields mean the spec's defaults, which the ``effective_*``
    properties return: context ``Sample.Periodic``, format ``Raw``, measurand
    ``Energy.Active.Import.Register``, location ``Outlet``, unit ``Wh``.

    Attributes:
        value: the value as text (a number, or signed data with format ``SignedData``).
        context: why the value was sampled.
        format: how ``value`` is written.
        measurand: what was measured.
        phase: the phase(s) measured; no default.
        location: where it was measured.
        unit: the unit of ``value``.
    """

    value: str
    context: ReadingContext | None = None
    format: ValueFormat | None = None
    measurand: Measurand | None = None
    phase: Phase | None = None
    location: Location | None = None
    unit: UnitOfMeasure | None = None

    @property
    def effective_context(self) -> ReadingContext:
        """``context``, or its default ``Sample.Periodic`` when unset."""
        return ReadingContext.SAMPLE_PERIODIC if self.context is None else self.context

    @property
    def effective_format(self) -> ValueFormat:
        """``format``, or its default ``Raw`` when unset."""
        return ValueFormat.RAW if self.format is None else self.format

    @property
    def effective_measurand(self) -> Measurand:
        """``measurand``, or its default ``Energy.Active.Import.Register`` when unset."""
        return Measurand.ENERGY_ACTIVE_IMPORT_REGISTER if self.measurand is None else self.measurand

    @property
    def effective_location(self) -> Location:
        """``location``, or its default ``Outlet`` when unset."""
        return Location.OUTLET if self.location is None else self.location

    @property
    def effective_unit(self) -> UnitOfMeasure:
        """``unit``, or its default ``Wh`` when unset."""
        return UnitOfMeasure.WH if self.unit is None else self.unit


class MeterValue(Payload, UtcFieldsMixin):
    """Values sampled at one instant (spec §4.1 ``MeterValue``).

    Attributes:
        timestamp: when the values were sampled.
        sampled_value: the values (at least one).
    """

    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("timestamp",)

    timestamp: DateTime
    sampled_value: Annotated[list[SampledValue], Meta(min_length=1, max_length=MAX_SAMPLED_VALUES)]


class KeyValue(Payload):
    """One configuration key and its value (spec §4.1 GetConfiguration).

    Attributes:
        key: the configuration key.
        readonly: whether the key can be changed with ChangeConfiguration.
        value: the current value; absent when it is not set.
    """

    key: CiString50
    readonly: bool
    value: CiString500 | None = None


class CapturedDatapoint(Payload, UtcFieldsMixin):
    """One datapoint value captured by a service process (spec §4.1 CaptureProcess).

    Attributes:
        datapoint_id: the datapoint's id, as requested.
        value: the captured value as text.
        unit: the value's unit, free text.
        timestamp: when the value was captured.
    """

    UTC_FIELDS: ClassVar[tuple[str, ...]] = ("timestamp",)

    datapoint_id: CiString50
    value: str
    unit: CiString20 | None = None
    timestamp: DateTime | None = None
