"""JSON Schemas of the ntxcp 1.0 payloads, generated from the models (spec §4).

The schemas are produced by :func:`msgspec.json.schema` from the request and
confirmation classes, never written by hand, so they state exactly the models' rules
(lengths, ranges, enums, required fields, array sizes, ``additionalProperties: false``)
plus the regexes of :data:`~ntxcp.v10.types.DATETIME_PATTERN` and
:data:`~ntxcp.v10.types.URI_PATTERN`. Each schema is self-contained (JSON Schema
2020-12, definitions under ``$defs``).

What JSON Schema cannot say, and the models check anyway:

* ``1.0`` is a JSON integer for JSON Schema; the models reject it (spec §3);
* the calendar: ``2026-02-30T00:00:00Z`` matches the date-time pattern;
* CaptureProcess ``datapointIds`` duplicates that differ only in case (``uniqueItems``
  compares case-sensitively; the ids are case-insensitive strings, spec §3).

The package ships the generated files as ``ntxcp/v10/schemas/<Action>.req.json`` and
``<Action>.conf.json``; ``scripts/gen_schemas.py`` writes them (this module does no
I/O), and a test checks that they are up to date.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import msgspec

from ntxcp.v10.base import Payload
from ntxcp.v10.registry import ACTIONS, ActionSpec

__all__ = [
    "SCHEMA_DIALECT",
    "all_schemas",
    "confirmation_schema",
    "payload_schema",
    "request_schema",
    "schema_text",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of the generated schemas (the one msgspec emits)."""


def _summary(doc: str) -> str:
    """First paragraph of a docstring on one line, without reST markup.

    The full docstring documents Python attribute names; schema readers want the wire
    view. ``inspect.cleandoc`` makes the text independent of the Python version.
    """
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(first.split()).replace("``", "`")


def payload_schema(cls: type[Payload], title: str) -> dict[str, Any]:
    """Generate the self-contained JSON Schema of one payload class.

    Args:
        cls: a request, confirmation or shared structure class.
        title: the schema's title.

    Returns:
        A JSON Schema 2020-12 document.
    """
    generated = msgspec.json.schema(cls)
    for definition in generated.get("$defs", {}).values():
        if "description" in definition:
            definition["description"] = _summary(definition["description"])
    return {"$schema": SCHEMA_DIALECT, "title": title, **generated}


def _spec(action: str) -> ActionSpec:
    try:
        return ACTIONS[action]
    except KeyError:
        raise KeyError(f"unknown action {action!r}") from None


def request_schema(action: str) -> dict[str, Any]:
    """The JSON Schema of an action's request payload.

    Args:
        action: the action's wire name, e.g. ``"BootNotification"``.

    Returns:
        A JSON Schema 2020-12 document.

    Raises:
        KeyError: the action is not part of ntxcp 1.0.
    """
    return payload_schema(_spec(action).request, f"{action} request")


def confirmation_schema(action: str) -> dict[str, Any]:
    """The JSON Schema of an action's confirmation payload.

    Args:
        action: the action's wire name, e.g. ``"BootNotification"``.

    Returns:
        A JSON Schema 2020-12 document.

    Raises:
        KeyError: the action is not part of ntxcp 1.0.
    """
    return payload_schema(_spec(action).confirmation, f"{action} confirmation")


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema, keyed by file stem: ``"<Action>.req"`` and ``"<Action>.conf"``.

    Returns:
        Thirty schemas, in spec order, request before confirmation.
    """
    schemas: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        schemas[f"{action}.req"] = request_schema(action)
        schemas[f"{action}.conf"] = confirmation_schema(action)
    return schemas


def schema_text(schema: dict[str, Any]) -> str:
    """The canonical file content of a schema: indented JSON and a final newline.

    Args:
        schema: a schema from this module.

    Returns:
        The text to store in a ``.json`` file.
    """
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
