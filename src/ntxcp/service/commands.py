"""C→G requests on behalf of the HTTP API: validate, send, record the outcome.

``POST /api/gateways/{id}/calls/{Action}`` takes the wire payload of a C→G action
(spec §4, camelCase JSON) as its body. :class:`CommandRunner` decodes it with the
action's request class (the same validation as on the wire, spec §2.2 rule 4), sends
it with :meth:`ntxcp.ControlCenter.send_request`, and stores the command and its
outcome. It returns an HTTP status and a JSON body instead of raising, so every
outcome, including the gateway's CALLERROR (spec §2.1), maps to one documented answer
(statuses from the API's one table, :mod:`.http_errors`):

======  ===============================================================
status  when
======  ===============================================================
200     the confirmation, as wire JSON
404     unknown action, a G→C-only action, unknown or unconnected gateway
422     the payload breaks rules of spec §4 (``errors`` lists every invalid
        field with its ``path``, ``code`` and a message in words; ``code`` and
        ``path`` are those of the first)
502     the gateway answered a CALLERROR, or disconnected first
503     too many requests already wait for this gateway (spec §2.3.1); in a
        cluster, the gateway is held by another node and the bus is down
504     no answer within the call timeout (spec §2.3.2)
======  ===============================================================

In a cluster (:mod:`ntxcp.service.cluster`) a command for a gateway held by another
node is sent to that node (:attr:`CommandRunner.remote`), which raises what the
owner's endpoint raised, so the table holds whichever node holds the gateway. The
node whose API received the command records it, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import msgspec.inspect as mi

from ntxcp.errors import (
    CallError,
    CallTimeoutError,
    DisconnectedError,
    ErrorCode,
    NotConnectedError,
    PayloadValidationError,
    QueueFullError,
)
from ntxcp.service.api_contract import gateway_actions, wire_datetime
from ntxcp.service.cluster.bus import BusUnavailableError
from ntxcp.service.http_errors import status_for
from ntxcp.service.payload_problems import invalid_payload_body
from ntxcp.v10 import ACTIONS, Direction, Request
from ntxcp.v10.codec import DECODE_ERRORS, decode_payload, encode_payload, to_builtins

if TYPE_CHECKING:
    from ntxcp.endpoints import ControlCenter
    from ntxcp.service.backend import StorageBackend
    from ntxcp.service.cluster.routing import RemoteCaller
    from ntxcp.service.metrics import ServiceMetrics

__all__ = ["CommandResult", "CommandRunner", "gateway_actions"]

_log = logging.getLogger("ntxcp.service.commands")


@dataclass(slots=True)
class CommandResult:
    """The HTTP answer to a call request.

    Attributes:
        status: the HTTP status.
        body: the JSON body.
        command_id: the stored command's id (``None`` when nothing was sent).
    """

    status: int
    body: dict[str, Any]
    command_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class CommandRunner:
    """Sends C→G requests for the API and keeps a record of each.

    Args:
        control_center: the endpoint the gateways are connected to.
        storage: where commands and their outcomes are recorded.
        metrics: where call durations are observed.
    """

    def __init__(
        self, control_center: ControlCenter, storage: StorageBackend, metrics: ServiceMetrics
    ) -> None:
        self.control_center = control_center
        self.storage = storage
        self.metrics = metrics
        self.remote: RemoteCaller | None = None
        """Sends commands to gateways held by other nodes (cluster mode)."""
        self.known: Callable[[str], Awaitable[bool]] | None = None
        """Whether any node knows a gateway (cluster mode; else the local mirror)."""

    async def call(
        self,
        gateway_id: str,
        action: str,
        body: bytes,
        timeout: float | None = None,
        *,
        token_name: str | None = None,
    ) -> CommandResult:
        """Validate and send one C→G request; never raises for a bad request.

        Args:
            gateway_id: the target gateway.
            action: the action's wire name, e.g. ``"Reset"``.
            body: the request payload as JSON (empty means ``{}``).
            timeout: seconds to wait for the answer (default: the endpoint's).
            token_name: the API token that sent it, for the command log.

        Returns:
            The HTTP status and JSON body to answer with.
        """
        spec = ACTIONS.get(action)
        if spec is None:
            return CommandResult(
                404,
                {"error": f"unknown action {action!r}", "actions": gateway_actions()},
            )
        if spec.direction is Direction.GATEWAY_TO_CONTROL_CENTER:
            return CommandResult(
                404,
                {
                    "error": f"{action} is sent by gateways to the control center, "
                    "not to a gateway",
                    "actions": gateway_actions(),
                },
            )
        send: Callable[..., Awaitable[Any]] = self.control_center.send_request
        if not self.control_center.is_connected(gateway_id):
            known = self.known
            if not (
                gateway_id in self.storage.gateways if known is None else await known(gateway_id)
            ):
                return CommandResult(404, {"error": f"unknown gateway {gateway_id!r}"})
            if self.remote is None:
                return CommandResult(404, {"error": f"gateway {gateway_id!r} is not connected"})
            send = self.remote.send_request  # held by another node, or by none (404)
        payload = body.strip() or b"{}"
        try:
            payload = _api_body(payload, spec.request)  # 1.0 → 1, date-times in wire form
            request = decode_payload(spec.request, payload)
        except PayloadValidationError as exc:
            # Every invalid field, in words (the decoder stops at the first).
            return CommandResult(status_for(exc), invalid_payload_body(action, payload, exc))
        request_json = encode_payload(request, validate=False).decode("utf-8")
        command_id = await self.storage.command_started(
            gateway_id, action, request_json, token_name
        )
        started = time.perf_counter()
        result: CommandResult
        try:
            confirmation = await send(gateway_id, request, timeout=timeout)
        except CallTimeoutError as exc:
            result = CommandResult(status_for(exc), {"error": str(exc)})
            await self._finish(command_id, "timeout", started, action, error=("", str(exc), {}))
        except DisconnectedError as exc:
            result = CommandResult(
                status_for(exc), {"error": f"gateway disconnected before answering: {exc}"}
            )
            await self._finish(
                command_id, "disconnected", started, action, error=("", str(exc), {})
            )
        except NotConnectedError as exc:
            result = CommandResult(
                status_for(exc), {"error": f"gateway {gateway_id!r} is not connected"}
            )
            await self._finish(
                command_id, "not-connected", started, action, error=("", str(exc), {})
            )
        except QueueFullError as exc:
            result = CommandResult(status_for(exc), {"error": str(exc)})
            await self._finish(command_id, "queue-full", started, action, error=("", str(exc), {}))
        except BusUnavailableError as exc:
            result = CommandResult(status_for(exc), {"error": str(exc)})
            await self._finish(
                command_id, "bus-unavailable", started, action, error=("", str(exc), {})
            )
        except CallError as exc:
            # spec §2.1: the gateway's CALLERROR, or an invalid confirmation (§2.2 rule 6).
            result = CommandResult(
                status_for(exc),
                {
                    "error": f"gateway answered {action} with CALLERROR {exc.code.value}",
                    "code": exc.code.value,
                    "description": exc.description,
                    "details": exc.details,
                },
            )
            await self._finish(
                command_id,
                "callerror",
                started,
                action,
                error=(exc.code.value, exc.description, exc.details),
            )
        else:
            answer = to_builtins(confirmation)
            result = CommandResult(200, answer)
            await self._finish(command_id, "ok", started, action, response=answer)
        result.command_id = command_id
        result.headers["X-Command-Id"] = str(command_id)
        return result

    async def _finish(
        self,
        command_id: int,
        outcome: str,
        started: float,
        action: str,
        *,
        response: dict[str, Any] | None = None,
        error: tuple[str, str, dict[str, Any]] | None = None,
    ) -> None:
        duration = time.perf_counter() - started
        self.metrics.api_call_seconds.observe(duration, (action,))
        try:
            await self.storage.command_finished(
                command_id,
                outcome,
                duration,
                response_json=None if response is None else msgspec.json.encode(response).decode(),
                error_code=None if error is None else (error[0] or None),
                error_description=None if error is None else error[1],
                error_details_json=None
                if error is None
                else msgspec.json.encode(error[2]).decode(),
            )
        except Exception:  # the gateway's answer still reaches the caller
            _log.exception("could not record the outcome of command %d", command_id)


def _api_body(body: bytes, cls: type[Request[Any]]) -> bytes:
    """The body of a call as the wire payload, read the way the API's document says.

    The document describes bodies in JSON Schema: ``1.0`` is an integer there (written
    ``1`` on the wire, where spec §3 refuses ``1.0``), and a ``date-time`` is RFC 3339
    with a ``T``. Date-times are written in the wire form (UTC, milliseconds, ``Z``);
    one out of years 1..9999 in UTC becomes the nearest representable instant. An
    empty body is ``{}``; a body that is not JSON is returned as it is, for the
    payload decoder to report (``FormationViolation``).

    Raises:
        PayloadValidationError: a date-time that is not RFC 3339 (with its path).
    """
    body = body.strip()
    if not body:
        return b"{}"
    try:
        value = msgspec.json.decode(body)
    except DECODE_ERRORS:
        return body
    return msgspec.json.encode(_as_wire(value, mi.type_info(cls), ""))


def _as_wire(value: Any, info: mi.Type, path: str) -> Any:
    """``value`` with its integral numbers and date-times in wire form, following ``info``."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):  # Optional[X]: only X holds anything to rewrite
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return value if len(members) != 1 else _as_wire(value, members[0], path)
    if isinstance(info, mi.IntType) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(info, mi.DateTimeType) and isinstance(value, str):
        try:
            return wire_datetime(value)
        except ValueError as exc:
            raise PayloadValidationError(
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, f"date-time {exc}"
            ) from None
    if isinstance(info, mi.ListType) and isinstance(value, list):
        return [_as_wire(item, info.item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {
            key: _as_wire(item, fields[key], f"{path}.{key}" if path else key)
            if key in fields
            else item
            for key, item in value.items()
        }
    return value
