"""Decoding, validating and encoding ntxcp 1.0 payloads (spec §3, §4).

Decoding and validation happen in one C pass of :mod:`msgspec`; a failure is turned
into a :class:`~ntxcp.errors.PayloadValidationError` whose code follows spec §2.1 and
whose path names the field (spec §2.2 rule 4), e.g. ``meterValue[0].sampledValue``.

Encoding validates too (an application can never put an invalid payload on the
wire): the encoded bytes are decoded again with the same rules, which costs one more
C pass and nothing in Python.

Strict mode (the default) rejects unknown fields with ``FormationViolation``; lenient
mode drops them before validating (spec §4 preamble).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10.base import Payload
from ntxcp.v10.types import encode_datetime

__all__ = [
    "DECODE_ERRORS",
    "build",
    "decode_payload",
    "encode_payload",
    "error_from_validation",
    "to_builtins",
    "to_enum",
]

P = TypeVar("P", bound=Payload)
E = TypeVar("E", bound=Enum)

Buffer = bytes | bytearray | memoryview | str | msgspec.Raw

#: Every error a msgspec JSON decoder raises for untrusted input. Invalid UTF-8 is a
#: ``UnicodeDecodeError`` up to msgspec 0.22 and a ``msgspec.DecodeError`` from 0.23;
#: very deep nesting can raise ``RecursionError``. Catch this tuple, never one class.
DECODE_ERRORS: tuple[type[Exception], ...] = (msgspec.MsgspecError, UnicodeError, RecursionError)


def _enc_hook(obj: object) -> object:
    """Encode the types msgspec leaves to the application (spec §3 date-times)."""
    if isinstance(obj, datetime):
        return encode_datetime(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_PLAIN_DECODER = msgspec.json.Decoder()

# --- error mapping (spec §2.1, §2.2 rule 4) -------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<field>[^`]+)`")
_GOT = re.compile(r"^Expected `[^`]+`, got `[^`]+`$")
_ARRAY_LENGTH = re.compile(r"^Expected `array` of length [<>]=")
_DUPLICATES = re.compile(r"^duplicate (?P<field>[A-Za-z]+):")
_OUT_OF_RANGE = re.compile(r"^(?P<field>[A-Za-z]+): date-time out of range")
_TOO_MANY = re.compile(r"^too many (?P<field>[A-Za-z]+):")


def _join_path(parent: str, field: str) -> str:
    return f"{parent}.{field}" if parent else field


def error_from_validation(exc: msgspec.MsgspecError) -> PayloadValidationError:
    """Turn a msgspec decode/validation error into the spec's error code and JSON path.

    Args:
        exc: the error raised by a msgspec decoder.

    Returns:
        The error to report: ``FormationViolation`` for malformed JSON or unknown
        fields, ``OccurrenceConstraintViolation`` for a missing field or an array of
        the wrong size, ``TypeConstraintViolation`` for a wrong JSON type, and
        ``PropertyConstraintViolation`` for any other broken constraint (length,
        range, enum value, pattern, date-time, including one out of range once
        converted to UTC, duplicates).
    """
    if not isinstance(exc, msgspec.ValidationError):
        return PayloadValidationError(ErrorCode.FORMATION_VIOLATION, "", str(exc))
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches every string
    message = match["msg"]
    path = (match["path"] or "").lstrip(".")
    field = _FIELD.match(message)
    if field is not None:
        path = _join_path(path, field["field"])
        code = (
            ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
            if "missing" in message
            else ErrorCode.FORMATION_VIOLATION
        )
    elif _GOT.match(message):
        code = ErrorCode.TYPE_CONSTRAINT_VIOLATION
    elif _ARRAY_LENGTH.match(message):
        code = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    elif (too_many := _TOO_MANY.match(message)) is not None:
        path = _join_path(path, too_many["field"])  # a bound over nested arrays
        code = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    elif (field := _DUPLICATES.match(message) or _OUT_OF_RANGE.match(message)) is not None:
        path = _join_path(path, field["field"])  # raised by a __post_init__ check
        code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    else:
        code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    return PayloadValidationError(code, path, message)


def to_enum(enum: type[E], value: E | str, path: str) -> E:
    """Turn an argument into an enum member, as the decoder would (spec §4).

    Args:
        enum: the enum class of the field.
        value: a member or its wire value, e.g. ``"Soft"``.
        path: the field's wire name, for the error.

    Returns:
        The member.

    Raises:
        PayloadValidationError: ``PropertyConstraintViolation`` for a value the enum
            does not have.
    """
    try:
        return enum(value)
    except ValueError:
        raise PayloadValidationError(
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, f"Invalid enum value {value!r}"
        ) from None


def build(make: Callable[[], P]) -> P:
    """Construct a payload whose class checks a rule of the whole message when built.

    Such rules (``__post_init__``: duplicate datapoint ids, the sampled values of one
    MeterValues) raise ``ValueError`` from the constructor; here they raise the same
    error the decoder reports for them on the wire.

    Args:
        make: builds the payload, e.g. ``lambda: core.CaptureProcessRequest(...)``.

    Returns:
        The payload.

    Raises:
        PayloadValidationError: the payload breaks a rule of spec §4.
    """
    try:
        return make()
    except ValueError as exc:
        raise error_from_validation(msgspec.ValidationError(str(exc))) from None


# --- decoding ------------------------------------------------------------------------


@cache
def _decoder(cls: type[P]) -> msgspec.json.Decoder[P]:
    return msgspec.json.Decoder(cls)


def decode_payload(cls: type[P], data: Buffer, *, strict: bool = True) -> P:
    """Decode and validate one payload.

    Args:
        cls: the request or confirmation class expected.
        data: the JSON text of the payload object.
        strict: reject unknown fields (default); ``False`` ignores them.

    Returns:
        The validated payload.

    Raises:
        PayloadValidationError: the payload breaks a rule of spec §4.
    """
    try:
        result: P = _decoder(cls).decode(data)
        return result
    except msgspec.ValidationError as exc:
        if strict or "unknown field" not in str(exc):
            raise error_from_validation(exc) from None
    except DECODE_ERRORS as exc:
        raise _undecodable(exc) from None
    # Lenient mode (spec §4): drop unknown fields, then validate as usual.
    try:
        plain = _PLAIN_DECODER.decode(data)
    except DECODE_ERRORS as exc:  # e.g. invalid UTF-8 inside an unknown field, skipped above
        raise _undecodable(exc) from None
    pruned = _prune(plain, mi.type_info(cls))
    try:
        lenient: P = _decoder(cls).decode(_ENCODER.encode(pruned))
        return lenient
    except msgspec.ValidationError as exc:
        raise error_from_validation(exc) from None


def _undecodable(exc: Exception) -> PayloadValidationError:
    """The error for bytes that are not JSON text in UTF-8 (spec §2.1 FormationViolation)."""
    return PayloadValidationError(
        ErrorCode.FORMATION_VIOLATION, "", f"payload is not valid JSON in UTF-8: {exc}"
    )


def _prune(value: Any, info: mi.Type) -> Any:
    """Remove object members that the type ``info`` does not know, at any depth."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType | mi.ListType | mi.Metadata):
                return _prune(value, member)
        return value
    if isinstance(info, mi.ListType) and isinstance(value, list):
        return [_prune(item, info.item_type) for item in value]
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {k: _prune(v, fields[k]) for k, v in value.items() if k in fields}
    return value


# --- encoding ------------------------------------------------------------------------


@cache
def _needs_reencode(cls: type[Payload]) -> bool:
    """Whether a payload class holds date-times (spec §3: always written as ms UTC)."""
    return _has_datetime(mi.type_info(cls))


def _has_datetime(info: mi.Type) -> bool:
    if isinstance(info, mi.DateTimeType):
        return True
    if isinstance(info, mi.Metadata):
        return _has_datetime(info.type)
    if isinstance(info, mi.UnionType):
        return any(_has_datetime(t) for t in info.types)
    if isinstance(info, mi.ListType):
        return _has_datetime(info.item_type)
    if isinstance(info, mi.StructType):
        return any(_has_datetime(f.type) for f in info.fields)
    return False


def encode_payload(obj: Payload, *, validate: bool = True) -> bytes:
    """Encode a payload to JSON, enforcing every constraint of spec §4.

    Args:
        obj: the request or confirmation.
        validate: check the constraints (default). Only skip it for payloads that
            were just decoded and validated.

    Returns:
        The JSON object as bytes (UTF-8).

    Raises:
        PayloadValidationError: the payload breaks a rule of spec §4.
    """
    if not obj.__struct_fields__:  # e.g. MeterValuesConfirmation: always "{}"
        return b"{}"
    data = _ENCODER.encode(obj)
    if validate:
        checked = decode_payload(type(obj), data)
        if _needs_reencode(type(obj)):
            # A date-time assigned after construction may not be normalised yet.
            data = _ENCODER.encode(checked)
    return data


def encode_json(obj: object) -> bytes:
    """Encode any value (frames, details objects) with the payload encoder's rules."""
    return _ENCODER.encode(obj)


def to_builtins(obj: Payload) -> dict[str, Any]:
    """Return the payload as a JSON-ready ``dict`` with wire (camelCase) names."""
    result: dict[str, Any] = msgspec.json.decode(_ENCODER.encode(obj))
    return result
