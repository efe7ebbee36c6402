"""The messages nodes exchange on NATS (JSON, encoded with msgspec).

Every message names the node that sent it (``node``), so that a node ignores its own
messages even where the server would echo them.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec

__all__ = [
    "CallReply",
    "CallRequest",
    "Heartbeat",
    "Listening",
    "RegistryChange",
    "RemoteEvent",
    "Takeover",
    "decode",
]

T = TypeVar("T")
_log = logging.getLogger("ntxcp.service.cluster")


def decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T | None:
    """A message decoded; ``None`` (and a warning naming ``what``) when unreadable."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError:
        _log.warning("ignoring an unreadable %s message", what)
        return None


class CallRequest(msgspec.Struct, frozen=True):
    """A C→G command for the owner of a gateway (``ntxcp.gw.<token>.call``).

    Attributes:
        action: the action's wire name, e.g. ``"Reset"``.
        payload: the request payload, validated wire JSON.
        timeout: seconds the owner waits for the gateway's answer (``None``: its
            ``--call-timeout``).
    """

    action: str
    payload: msgspec.Raw
    timeout: float | None = None


class CallReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """The owner's answer to a :class:`CallRequest`.

    Attributes:
        outcome: ``ok``, ``callerror``, ``timeout``, ``disconnected``,
            ``not-connected`` or ``queue-full`` (the outcomes of the command log),
            or ``failed`` (the owner failed: a bug there).
        confirmation: the gateway's confirmation, wire JSON (``ok`` only).
        code: the CALLERROR's error code (``callerror`` only, spec §2.1).
        description: the CALLERROR's description, or what went wrong.
        details: the CALLERROR's details.
        capacity: the size of the gateway's request queue (``queue-full`` only).
    """

    outcome: str
    confirmation: msgspec.Raw = msgspec.Raw(b"null")
    code: str = ""
    description: str = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    capacity: int = 0


class Takeover(msgspec.Struct, frozen=True):
    """A node admitted a gateway (``ntxcp.takeover``).

    Attributes:
        node: the node that holds the new session.
        gateway_id: the gateway.
        epoch: the new session's epoch (see :mod:`.ownership`).
    """

    node: str
    gateway_id: str
    epoch: tuple[int, str]


class RemoteEvent(msgspec.Struct, frozen=True):
    """A live event of another node (``ntxcp.events.<kind>``).

    Attributes:
        node: the node it happened on.
        kind: the event kind (:data:`ntxcp.service.events.KINDS`).
        gateway_id: the gateway it is about (``None``: the node).
        data: the event's JSON payload.
    """

    node: str
    kind: str
    gateway_id: str | None
    data: dict[str, Any]


class Listening(msgspec.Struct, frozen=True, omit_defaults=True):
    """A node has stream subscribers (``ntxcp.listeners``), and which frames they want.

    A message without ``frame_gateways`` and ``all_frames`` (so also one of a node that
    predates them) wants no ``frame`` events: other nodes send it every other kind
    but frames of none of their gateways. Unknown fields are ignored, so a node that
    predates them reads these messages as before.

    Attributes:
        node: the node.
        frame_gateways: the gateways whose ``frame`` events the node's streams want
            (at most one per stream: a stream filters on one gateway or none).
        all_frames: a stream of the node wants the ``frame`` events of every gateway.
    """

    node: str
    frame_gateways: tuple[str, ...] = ()
    all_frames: bool = False


class Heartbeat(msgspec.Struct, frozen=True):
    """A node is alive (``ntxcp.nodes``).

    Attributes:
        node: the node.
        session: names the node's current connection to the bus; a new value means
            the node was away from the bus (or restarted) and others may have missed
            its events. Empty from nodes that do not say.
    """

    node: str
    session: str = ""


class RegistryChange(msgspec.Struct, frozen=True):
    """Gateways registered, changed or removed through one node's API (``ntxcp.registry``).

    Attributes:
        node: the node whose API made the change.
        gateway_ids: the gateways concerned.
        disconnect: close their connections with this reason (their secret changed or
            they were removed), ``None`` to keep them.
    """

    node: str
    gateway_ids: list[str]
    disconnect: str | None = None
