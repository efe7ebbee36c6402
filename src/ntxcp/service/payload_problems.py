"""Every invalid field of a C→G payload, each explained in words.

The payload decoder (:func:`ntxcp.v10.codec.decode_payload`) is the authority on what a
payload may hold (spec §2.2 rule 4), but it stops at the first broken rule and words it
for programmers ("Expected `str` matching regex ...").
:func:`payload_problems` walks the same payload against the action's request schema
(:func:`ntxcp.v10.schema.request_schema`, generated from the payload classes, so the
rules are the decoder's) and reports every field at fault at once, each with the spec
§2.1 error code the decoder would give it and a message saying what is expected: "an
absolute URL such as ftp://host/file", "one of Hard, Soft". The HTTP API answers a bad
call body with these (:func:`invalid_payload_body`); the dashboard shows each at its
field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from ntxcp.errors import ErrorCode, PayloadValidationError
from ntxcp.v10.codec import DECODE_ERRORS
from ntxcp.v10.schema import request_schema

__all__ = ["FieldProblem", "invalid_payload_body", "payload_problems"]

_MAX_PROBLEMS = 50  # an answer lists at most this many (a huge array stays one answer)
_URL_EXAMPLE = "ftp://host/file"
_DATE_TIME_EXAMPLE = "2026-11-23T17:36:34Z"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field.

    Attributes:
        path: JSON path of the field, e.g. ``datapointIds[2]`` (empty: the whole payload).
        code: the spec §2.1 error code of the broken rule.
        message: what is expected there, in words.
    """

    path: str
    code: ErrorCode
    message: str

    def as_json(self) -> dict[str, str]:
        """The problem as an item of the API's ``errors`` list."""
        return {"path": self.path, "code": self.code.value, "message": self.message}


def invalid_payload_body(
    action: str, payload: bytes, error: PayloadValidationError
) -> dict[str, Any]:
    """The 422 body for a payload the decoder refused.

    Args:
        action: the C→G action.
        payload: the payload's JSON text as decoded.
        error: the decoder's error (used when the schema walk finds nothing more precise,
            e.g. a date-time out of range once converted to UTC).

    Returns:
        ``{"error", "code", "path", "errors": [{"path", "code", "message"}]}``:
        ``errors`` lists every invalid field; ``code`` and ``path`` are those of the
        first, and ``error`` says all of them in one sentence.
    """
    problems = payload_problems(action, payload) or [
        FieldProblem(error.path, error.code, _decoder_words(error))
    ]
    first = problems[0]
    sentence = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems)
    if len(problems) > 1:
        sentence = f"{len(problems)} fields are invalid: {sentence}"
    return {
        "error": sentence,
        "code": first.code.value,
        "path": first.path,
        "errors": [problem.as_json() for problem in problems],
    }


def _decoder_words(error: PayloadValidationError) -> str:
    """The decoder's message without the path it appends (the body has ``path``)."""
    text = error.description
    suffix = f" at '{error.path}'"
    return text[: -len(suffix)] if error.path and text.endswith(suffix) else text


def payload_problems(action: str, payload: bytes) -> list[FieldProblem]:
    """Every invalid field of a C→G payload (empty when the walk finds none).

    Args:
        action: the C→G action whose request schema applies.
        payload: the payload's JSON text.

    Returns:
        The problems in document order, at most 50.
    """
    try:
        value = msgspec.json.decode(payload)
    except DECODE_ERRORS as exc:
        return [
            FieldProblem(
                "", ErrorCode.FORMATION_VIOLATION, f"the body must be a JSON object ({exc})"
            )
        ]
    schema = _request_schema(action)
    walk = _Walk(schema.get("$defs", {}), action)
    walk.check(value, schema, "")
    return walk.problems[:_MAX_PROBLEMS]


@cache
def _request_schema(action: str) -> dict[str, Any]:
    return request_schema(action)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walk:
    """One walk of a value against a schema, collecting problems."""

    def __init__(self, defs: dict[str, Any], action: str) -> None:
        self.defs = defs
        self.action = action
        self.problems: list[FieldProblem] = []

    def add(self, path: str, code: ErrorCode, message: str) -> None:
        self.problems.append(FieldProblem(path, code, message))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def optional(self, schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The schema without its ``anyOf [X, null]`` wrapping, and whether null is allowed."""
        schema = self.resolve(schema)
        alternatives = schema.get("anyOf")
        if not alternatives:
            return schema, False
        rest = [self.resolve(alt) for alt in alternatives if alt.get("type") != "null"]
        return (rest[0] if len(rest) == 1 else schema), len(rest) < len(alternatives)

    def check(self, value: Any, schema: dict[str, Any], path: str) -> None:
        schema, nullable = self.optional(schema)
        if value is None and nullable:
            return
        if "enum" in schema:
            self.check_enum(value, schema, path)
        elif schema.get("type") == "object":
            self.check_object(value, schema, path)
        elif schema.get("type") == "array":
            self.check_array(value, schema, path)
        elif schema.get("type") == "string":
            self.check_string(value, schema, path)
        elif schema.get("type") in ("integer", "number"):
            self.check_number(value, schema, path)
        elif schema.get("type") == "boolean" and not isinstance(value, bool):
            self.wrong_type(value, schema, path)

    def wrong_type(self, value: Any, schema: dict[str, Any], path: str) -> None:
        self.add(
            path,
            ErrorCode.TYPE_CONSTRAINT_VIOLATION,
            f"must be {expected(schema, self.resolve)}, not {_kind(value)}",
        )

    def check_enum(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if value in schema["enum"]:
            return
        code = (
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
            if isinstance(value, str)
            else ErrorCode.TYPE_CONSTRAINT_VIOLATION
        )
        self.add(path, code, f"must be {expected(schema, self.resolve)}, not {_shown(value)}")

    def check_object(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            self.wrong_type(value, schema, path)
            return
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                self.add(
                    _join(path, name),
                    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
                    f"is required: {expected(properties[name], self.resolve)}",
                )
        for name, item in value.items():
            if name in properties:
                self.check(item, properties[name], _join(path, name))
            elif schema.get("additionalProperties") is False:
                fields = ", ".join(properties) or "none"
                self.add(
                    _join(path, name),
                    ErrorCode.FORMATION_VIOLATION,
                    f"is not a field of {self.action} (its fields: {fields})",
                )

    def check_array(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, list):
            self.wrong_type(value, schema, path)
            return
        low, high = schema.get("minItems"), schema.get("maxItems")
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            self.add(
                path,
                ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
                f"must be {expected(schema, self.resolve)}; it has {_count(len(value), 'item')}",
            )
        for index, item in enumerate(value):
            self.check(item, schema.get("items", {}), f"{path}[{index}]")
        if schema.get("uniqueItems"):
            seen: set[str] = set()
            for item in value:
                key = msgspec.json.encode(item).decode()
                if key in seen:
                    self.add(
                        path,
                        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                        f"must not repeat an item ({_shown(item)} appears more than once)",
                    )
                    break
                seen.add(key)

    def check_string(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, str):
            self.wrong_type(value, schema, path)
            return
        high, low = schema.get("maxLength"), schema.get("minLength")
        if high is not None and len(value) > high:
            self.add(
                path,
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"must be at most {_count(high, 'character')}; it has {len(value)}",
            )
        if low is not None and len(value) < low:
            self.add(
                path,
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"must be at least {_count(low, 'character')}; it has {len(value)}",
            )
        pattern = schema.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            self.add(
                path,
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"must be {expected(schema, self.resolve)}, not {_shown(value)}",
            )

    def check_number(self, value: Any, schema: dict[str, Any], path: str) -> None:
        integral = schema.get("type") == "integer"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.wrong_type(value, schema, path)
            return
        if integral and isinstance(value, float) and not value.is_integer():
            self.wrong_type(value, schema, path)  # 1.0 is read as 1 (the API's contract)
            return
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            self.add(
                path,
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"must be {expected(schema, self.resolve)}, not {value}",
            )


_Resolve = Callable[[dict[str, Any]], dict[str, Any]]


def expected(schema: dict[str, Any], resolve: _Resolve | None = None) -> str:
    """What a schema accepts, in words: "one of Hard, Soft", "text of at most 50 characters".

    Args:
        schema: a (resolved or ``$ref``) JSON Schema of the request schemas' subset.
        resolve: turns a ``$ref`` schema into its target (default: no references).

    Returns:
        A noun phrase.
    """
    if resolve is not None:
        schema = resolve(schema)
    alternatives = schema.get("anyOf")
    if alternatives:
        rest = [alt for alt in alternatives if alt.get("type") != "null"]
        if len(rest) == 1:
            return expected(rest[0], resolve)
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "uri":
            return f"an absolute URL such as {_URL_EXAMPLE}"
        if schema.get("format") == "date-time":
            return f"a date and time with its time zone (RFC 3339), such as {_DATE_TIME_EXAMPLE}"
        if "maxLength" in schema:
            return f"text of at most {_count(schema['maxLength'], 'character')}"
        return "text"
    if kind in ("integer", "number"):
        noun = "a whole number" if kind == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} of at least {low}"
        return noun if high is None else f"{noun} of at most {high}"
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        return _array_words(schema, resolve)
    return "a JSON object" if kind == "object" else "a value"


def _array_words(schema: dict[str, Any], resolve: _Resolve | None) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and high is not None:
        size = f"{low} to {high}"
    elif low is not None:
        size = f"at least {low}"
    elif high is not None:
        size = f"at most {high}"
    else:
        size = ""
    items = expected(schema.get("items", {}), resolve)
    unique = ", no two alike" if schema.get("uniqueItems") else ""
    return f"a list of {size + ' ' if size else ''}items, each {items}{unique}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {_shown(value)}"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: Any) -> str:
    """A value quoted for a message, cut to 60 characters."""
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"
