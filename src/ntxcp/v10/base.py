"""Base classes of every ntxcp 1.0 payload (spec §4).

Every request and confirmation is a :class:`msgspec.Struct`: snake_case attributes in
Python, camelCase names on the wire (mapped once per class by ``rename="camel"``),
keyword-only construction, optional fields omitted from the wire when unset, and unknown
fields rejected (strict mode, spec §4 preamble).

A request class is generic over its confirmation class (``Request[C]``) and names its
action and confirmation class as class data: ``send_request(req)`` is typed to return
``C``, and the endpoints check handlers at registration time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import msgspec

__all__ = [
    "AnyRequest",
    "Confirmation",
    "ConfirmationT",
    "Direction",
    "Payload",
    "Profile",
    "Request",
]


class Profile(StrEnum):
    """The feature profiles of spec §5."""

    CORE = "core"
    FIRMWARE = "firmware"
    REMOTE_TRIGGER = "remotetrigger"


class Direction(StrEnum):
    """Who sends the CALL of an action (spec §4)."""

    GATEWAY_TO_CONTROL_CENTER = "G->C"
    CONTROL_CENTER_TO_GATEWAY = "C->G"
    BOTH = "both"


class Payload(
    msgspec.Struct,
    rename="camel",
    kw_only=True,
    omit_defaults=True,
    forbid_unknown_fields=True,
):
    """Base of every payload: a strict, camelCase JSON object."""


class Confirmation(Payload):
    """Base of every confirmation (the payload of a CALLRESULT)."""


ConfirmationT = TypeVar("ConfirmationT", bound=Confirmation, covariant=True)
"""The confirmation class a request is answered with."""


class Request(Payload, Generic[ConfirmationT]):
    """Base of every request (the payload of a CALL), generic over its confirmation.

    ``BootNotificationRequest`` is a ``Request[BootNotificationConfirmation]``, so
    ``send_request(BootNotificationRequest(...))`` is typed to return a
    ``BootNotificationConfirmation``.

    Class attributes:
        ACTION: the wire name of the action, e.g. ``"BootNotification"``.
        CONFIRMATION: the confirmation class that answers this request.
        PROFILE: the profile the action belongs to (spec §5).
        DIRECTION: who sends this request.
    """

    ACTION: ClassVar[str]
    CONFIRMATION: ClassVar[type[Confirmation]]
    PROFILE: ClassVar[Profile]
    DIRECTION: ClassVar[Direction]


AnyRequest: TypeAlias = Request[Any]
"""A request of any action."""
