"""The NATS subjects of cluster mode, and how a gateway id becomes a subject token.

==============================  =====================================================
subject                         carries
==============================  =====================================================
``ntxcp.gw.<token>.call``       a C→G command for one gateway (request-reply); only
                                the node that holds the gateway's socket subscribes
``ntxcp.takeover``              a node admitted a gateway: its id, the node and the
                                session epoch (older sessions elsewhere close)
``ntxcp.events.<kind>``         a live event of one node (kinds of
                                :mod:`ntxcp.service.events`)
``ntxcp.listeners``             a node has event-stream subscribers: other nodes
                                send it their events for the next few seconds
                                (frames only of the gateways it names)
``ntxcp.registry``              gateways registered, changed or removed through
                                one node's API: the others re-read them
``ntxcp.nodes``                 every node's heartbeat (which nodes are alive)
==============================  =====================================================

Gateway ids are 1..48 printable ASCII characters without ``/`` (spec §1); NATS
subject tokens may not hold ``.``, ``*``, ``>`` or white space. :func:`gateway_token`
keeps ``A-Z a-z 0-9 _ -`` and writes every other character as ``~`` and the two
hexadecimal digits of each of its UTF-8 bytes (``~`` itself too), so the encoding is
one-to-one:
``GW.1 x`` becomes ``GW~2e1~20x``.
"""

from __future__ import annotations

import re

__all__ = [
    "EVENTS",
    "LISTENERS",
    "NODES",
    "REGISTRY",
    "TAKEOVER",
    "call_subject",
    "event_subject",
    "gateway_id_of",
    "gateway_token",
]

TAKEOVER = "ntxcp.takeover"
REGISTRY = "ntxcp.registry"
LISTENERS = "ntxcp.listeners"
NODES = "ntxcp.nodes"
EVENTS = "ntxcp.events.>"
"""Every event subject (a wildcard subscription)."""

_KEEP = re.compile(r"[^A-Za-z0-9_-]")
_ESCAPED = re.compile(r"(?:~[0-9a-f]{2})+")


def gateway_token(gateway_id: str) -> str:
    """The subject token of a gateway id (see the module's description)."""
    return _KEEP.sub(
        lambda match: "".join(f"~{byte:02x}" for byte in match[0].encode("utf-8")), gateway_id
    )


def gateway_id_of(token: str) -> str:
    """The gateway id of a subject token (the inverse of :func:`gateway_token`)."""
    return _ESCAPED.sub(
        lambda match: bytes.fromhex(match[0].replace("~", "")).decode("utf-8", "replace"), token
    )


def call_subject(gateway_id: str) -> str:
    """The subject the owner of ``gateway_id`` answers commands on."""
    return f"ntxcp.gw.{gateway_token(gateway_id)}.call"


def event_subject(kind: str) -> str:
    """The subject of live events of one kind (kinds are ``[a-z-]`` words)."""
    return f"ntxcp.events.{kind}"
