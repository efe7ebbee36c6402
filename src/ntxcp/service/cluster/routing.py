"""C→G commands across nodes: a request to the owner's subject, its answer as the local one.

The node whose API receives a command for a gateway it does not hold sends a
:class:`~.wire.CallRequest` to ``ntxcp.gw.<token>.call`` (NATS core request-reply).
The owner sends the CALL on the gateway's connection, in that connection's own queue
(one CALL at a time, spec §2.3.1), and answers with a :class:`~.wire.CallReply`. Here
both directions of the translation live: :func:`reply_for` turns the owner's outcome
(the confirmation, or the exception ``ControlCenter.send_request`` raised) into a
reply, and :func:`RemoteCaller.send_request` raises the same exception on the asking
node, so the command runner answers with today's status codes whichever node holds
the gateway. What only a cluster adds:

* nobody subscribes to the subject: no node holds the gateway → ``NotConnectedError``
  (404);
* the bus is down → :class:`~.bus.BusUnavailableError` (503, with the reason);
* no reply within the call timeout plus a margin (the owner died with the request) →
  ``CallTimeoutError`` (504).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    NotConnectedError,
    QueueFullError,
)
from ntxcp.service.cluster.bus import NoOwnerError
from ntxcp.service.cluster.subjects import call_subject
from ntxcp.service.cluster.wire import CallReply, CallRequest
from ntxcp.v10 import ACTIONS, Confirmation, Request
from ntxcp.v10.codec import decode_payload, encode_payload

if TYPE_CHECKING:
    from typing import Any

    from ntxcp.service.cluster.bus import Bus

__all__ = ["REPLY_MARGIN", "RemoteCaller", "raise_reply", "reply_for"]

REPLY_MARGIN = 2.0
"""Seconds an asking node waits beyond the call timeout (the owner answers 504 first)."""

_log = logging.getLogger("ntxcp.service.cluster")
_REPLY_DECODER = msgspec.json.Decoder(CallReply)


def reply_for(outcome: Confirmation | BaseException) -> CallReply:
    """The reply to send for what ``ControlCenter.send_request`` returned or raised.

    An exception that is no outcome of a CALL (a bug) becomes ``failed``; the asking
    node answers it like its own bugs (500).
    """
    if isinstance(outcome, BaseException):
        return _error_reply(outcome)
    return CallReply("ok", confirmation=msgspec.Raw(encode_payload(outcome, validate=False)))


def _error_reply(exc: BaseException) -> CallReply:
    # Most specific first: DisconnectedError is a NotConnectedError.
    if isinstance(exc, CallTimeoutError):
        return CallReply("timeout", description=str(exc))
    if isinstance(exc, DisconnectedError):
        return CallReply("disconnected", description=str(exc))
    if isinstance(exc, NotConnectedError):
        return CallReply("not-connected", description=str(exc))
    if isinstance(exc, QueueFullError):
        return CallReply("queue-full", capacity=exc.capacity)
    if isinstance(exc, CallError):  # spec §2.1: the gateway's CALLERROR
        return CallReply(
            "callerror", code=exc.code.value, description=exc.description, details=exc.details
        )
    _log.error("a command from another node failed", exc_info=exc)
    return CallReply("failed", description=repr(exc))


def raise_reply(reply: CallReply, action: str, timeout: float) -> Confirmation:
    """The confirmation of an ``ok`` reply; else the exception the owner saw, raised here.

    Raises:
        CallError, CallTimeoutError, DisconnectedError, NotConnectedError,
        QueueFullError: as on the owner.
        RuntimeError: the owner failed (a bug there).
    """
    outcome = reply.outcome
    if outcome == "ok":
        return decode_payload(ACTIONS[action].confirmation, bytes(reply.confirmation))
    if outcome == "callerror":
        raise CallError(reply.code, reply.description, reply.details)
    if outcome == "timeout":
        raise CallTimeoutError(action, "", timeout)
    if outcome == "disconnected":
        raise DisconnectedError(reply.description)
    if outcome == "queue-full":
        raise QueueFullError(reply.capacity)
    if outcome == "not-connected":
        raise NotConnectedError(reply.description)
    raise RuntimeError(f"the owner of the gateway failed: {outcome} {reply.description}")


class RemoteCaller:
    """Sends C→G requests to gateways held by other nodes.

    Args:
        bus: the node's bus.
        call_timeout: the default seconds to wait for a gateway's answer.
    """

    def __init__(self, bus: Bus, call_timeout: float) -> None:
        self.bus = bus
        self.call_timeout = call_timeout
        self.sent = 0
        """Requests sent to other nodes."""

    async def send_request(
        self, gateway_id: str, request: Request[Any], *, timeout: float | None = None
    ) -> Confirmation:
        """Send ``request`` to the node that holds ``gateway_id``; its gateway's answer.

        Raises:
            BusUnavailableError: the bus is down (503).
            NotConnectedError: no node holds the gateway (404).
            CallTimeoutError: no answer in time (504).
            CallError, DisconnectedError, QueueFullError: as on the owner.
        """
        wait = self.call_timeout if timeout is None else timeout
        message = CallRequest(
            request.ACTION, msgspec.Raw(encode_payload(request, validate=False)), timeout
        )
        self.sent += 1
        try:
            data = await self.bus.request(
                call_subject(gateway_id), msgspec.json.encode(message), wait + REPLY_MARGIN
            )
        except NoOwnerError:
            raise NotConnectedError(f"no node holds gateway {gateway_id!r}") from None
        except TimeoutError:
            raise CallTimeoutError(request.ACTION, "", wait) from None
        return raise_reply(_REPLY_DECODER.decode(data), request.ACTION, wait)
