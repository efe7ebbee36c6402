"""What the service does with gateway traffic: boot policy, storing data, frame log.

:class:`GatewayTrafficHandler` answers every G→C action of spec §5 (core and firmware
profiles). Handlers that store data are ``async def`` methods that await the commit of
their write (see :mod:`.storage`, group commit) before returning, so the library sends
the CALLRESULT only after the data is safe. The ``uniqueId`` of the CALL being
answered (:func:`ntxcp.current_call`) is the key that drops a re-sent message
(store and forward, spec §6.2). What was stored is then published as a live event
(:mod:`.events`), for the dashboard.

:class:`FrameRecorder` is the control center's frame logger: it files every frame in
the frame log and counts it in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ntxcp.endpoints import current_call
from ntxcp.errors import CallError, ErrorCode
from ntxcp.rpc import FrameInfo
from ntxcp.service.backend import DatabaseUnavailableError, StorageBackend
from ntxcp.service.config import FrameLogMode, UnknownGatewayPolicy
from ntxcp.service.events import MAX_RAW_FRAME, EventHub
from ntxcp.service.fleet import FleetIndex
from ntxcp.service.framelog import EXCERPT_BYTES, FrameBudgets, excerpt
from ntxcp.service.metrics import KNOWN_ACTIONS, KNOWN_ERROR_CODES, known_label
from ntxcp.service.storage import FrameHandle, ms_text, now_ms, now_text
from ntxcp.v10 import AnyRequest, core, firmware
from ntxcp.v10.codec import to_builtins

if TYPE_CHECKING:
    from ntxcp.endpoints import ControlCenter, GatewayConnection
    from ntxcp.service.metrics import ServiceMetrics

__all__ = [
    "BOOT_RETRY_INTERVAL",
    "REFUSED_KEPT",
    "FrameRecorder",
    "GatewayTrafficHandler",
    "RefusedGateways",
]

_log = logging.getLogger("ntxcp.service")
T = TypeVar("T")

BOOT_RETRY_INTERVAL = 60
"""Seconds before a Pending or Rejected gateway boots again (spec §4.1 default)."""

MAX_SERVICES_PER_GATEWAY = 256
"""Services of one gateway whose current status is kept; a StatusNotification for a
further new ``serviceId`` is refused (``PropertyConstraintViolation``): the spec lets
it be any CiString50, and each one is a row and an entry of the overview's memory."""

REFUSED_KEPT = 1000
"""Refused gateway ids remembered for the API (``GET /api/refused-gateways``)."""

_POLICY_STATUS = {
    UnknownGatewayPolicy.ACCEPT: core.RegistrationStatus.ACCEPTED,
    UnknownGatewayPolicy.PENDING: core.RegistrationStatus.PENDING,
    UnknownGatewayPolicy.REJECT: core.RegistrationStatus.REJECTED,
}


class RefusedGateways:
    """The gateway ids refused under ``--unknown-gateways reject``: counted, not stored.

    A refused id never becomes a gateway record (anyone can make up ids, spec §1);
    the most recent ones are kept here, in memory, for the operator to see.

    Args:
        capacity: ids remembered (the least recently seen are forgotten first).
    """

    def __init__(self, capacity: int = REFUSED_KEPT) -> None:
        self.capacity = capacity
        self.total = 0
        """Refused connections since start-up."""
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def note(self, gateway_id: str, remote_address: str | None) -> None:
        """Count one refused connection of ``gateway_id``."""
        self.total += 1
        now = now_text()
        entry = self._recent.pop(gateway_id, None)
        if entry is None:
            entry = {"id": gateway_id, "firstSeen": now, "attempts": 0}
        entry["attempts"] += 1
        entry["lastSeen"] = now
        entry["remoteAddress"] = remote_address
        self._recent[gateway_id] = entry
        while len(self._recent) > self.capacity:
            self._recent.popitem(last=False)

    def recent(self) -> list[dict[str, Any]]:
        """The refused ids remembered, most recently seen first."""
        return [dict(entry) for entry in reversed(self._recent.values())]


StoreFunction = Callable[[StorageBackend, str, "str | None", Any], Awaitable["bool | int | None"]]
"""``store(storage, gateway_id, unique_id, request)``: ``False``/``None`` for a duplicate."""

_STORED: dict[str, tuple[str, StoreFunction]] = {
    # action: (live event kind, how it is stored)
    # Each calls the method of the backend in use (SQLite or PostgreSQL, see .backend).
    core.StatusNotificationRequest.ACTION: (
        "status",
        lambda storage, gateway_id, unique_id, request: storage.record_status(
            gateway_id, unique_id, request
        ),
    ),
    core.MeterValuesRequest.ACTION: (
        "meter",
        lambda storage, gateway_id, unique_id, request: storage.record_meter_values(
            gateway_id, unique_id, request
        ),
    ),
    core.DataTransferRequest.ACTION: (
        "data-transfer",
        lambda storage, gateway_id, unique_id, request: storage.record_data_transfer(
            gateway_id, unique_id, request
        ),
    ),
    firmware.DiagnosticsStatusNotificationRequest.ACTION: (
        "diagnostics",
        lambda storage, gateway_id, unique_id, request: storage.record_diagnostics_status(
            gateway_id, unique_id, request.status
        ),
    ),
    firmware.FirmwareStatusNotificationRequest.ACTION: (
        "firmware",
        lambda storage, gateway_id, unique_id, request: storage.record_firmware_status(
            gateway_id, unique_id, request.status
        ),
    ),
}
"""The gateway messages the service stores, one row each (spec §4.1, §4.2)."""


class GatewayTrafficHandler(core.ControlCenterHandler, firmware.ControlCenterHandler):
    """Answers the G→C actions (spec §4.1, §4.2) and stores what they carry.

    Args:
        storage: the database.
        metrics: the service's metrics.
        policy: how BootNotifications of unregistered gateways are answered.
        heartbeat_interval: the ``interval`` sent with ``Accepted`` (seconds).
        control_center: the endpoint (to tell a replaced connection from a lost one).
        events: where stored data and connections are published (``None``: nowhere).
        fleet: the overview's index, kept current with connections, boots and statuses.
    """

    def __init__(
        self,
        storage: StorageBackend,
        metrics: ServiceMetrics,
        policy: UnknownGatewayPolicy,
        heartbeat_interval: int,
        control_center: ControlCenter,
        events: EventHub | None = None,
        fleet: FleetIndex | None = None,
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.policy = policy
        self.heartbeat_interval = heartbeat_interval
        self.control_center = control_center
        self.events = events or EventHub()
        self.fleet = fleet or FleetIndex()
        self.refused = RefusedGateways()
        self.unresponsive: set[str] = set()
        """Connected gateways that missed their last pong."""

    # --- boot policy (spec §4.1 BootNotification) ----------------------------------------

    def _refused(self, gateway_id: str) -> bool:
        """Whether the policy refuses this gateway without keeping a record of it."""
        if self.policy is not UnknownGatewayPolicy.REJECT:
            return False
        return gateway_id not in self.storage.gateways

    def registration_status(self, gateway_id: str) -> core.RegistrationStatus:
        """Registered gateways are Accepted; others get what the policy says."""
        record = self.storage.gateways.get(gateway_id)
        if record is not None and record.registered:
            return core.RegistrationStatus.ACCEPTED
        return _POLICY_STATUS[self.policy]

    def _require_accepted(self, gateway_id: str, action: str) -> None:
        """Spec §4.1: until Accepted, a gateway sends nothing but BootNotification."""
        self._require_admitted(gateway_id, action)
        status = self.registration_status(gateway_id)
        if status is not core.RegistrationStatus.ACCEPTED:
            raise CallError(
                ErrorCode.SECURITY_ERROR,
                f"{action} refused: gateway is not accepted (registration status {status})",
            )

    def _require_admitted(self, gateway_id: str, action: str) -> None:
        """Refuse what a connection sends after it was revoked (removed, new secret).

        The revoked connection takes no new CALLs, but one received just before may
        still be waiting for its turn: it must not store anything (nor re-create the
        removed gateway).
        """
        if not self.control_center.is_connected(gateway_id):
            raise CallError(ErrorCode.SECURITY_ERROR, f"{action} refused: connection revoked")

    def _unique_id(self) -> str | None:
        call = current_call()
        return None if call is None else call.unique_id

    async def _stored(self, gateway_id: str, write: Awaitable[T]) -> T:
        """Await a write; if the database is unreachable, never answer the CALL.

        A CALLERROR would make the gateway give the message up (spec §6.2: it keeps
        in its outbox only what got no answer). So the connection is closed instead
        and this handler waits until that cancels it: the gateway reconnects
        and sends the message again with the same ``uniqueId``, which is stored once.
        """
        try:
            return await write
        except DatabaseUnavailableError as exc:
            _log.warning("[%s] database unreachable (%s): disconnecting", gateway_id, exc)
            self.control_center.disconnect(gateway_id, "database unavailable")
            await asyncio.get_running_loop().create_future()  # cancelled by the close
            raise  # pragma: no cover (the future never completes)

    def _duplicate(self, action: str) -> None:
        self.metrics.duplicates.inc((action,))

    # --- core profile (spec §4.1) ------------------------------------------------------

    async def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        """Store the boot info and answer with the gateway's registration status."""
        self._require_admitted(gateway_id, "BootNotification")
        status = self.registration_status(gateway_id)
        if self._refused(gateway_id):  # answered, counted, not stored
            self.metrics.boots.inc((status.value,))
            return core.BootNotificationConfirmation(
                status=status, current_time=datetime.now(UTC), interval=BOOT_RETRY_INTERVAL
            )
        await self._stored(gateway_id, self.storage.record_boot(gateway_id, request, status.value))
        self.fleet.boot(gateway_id, request)
        self.metrics.boots.inc((status.value,))
        if self.events.active_for("boot"):
            self.events.publish(
                "boot",
                gateway_id,
                lambda: {
                    "registrationStatus": status.value,
                    "bootInfo": to_builtins(request),
                    "lastBootAt": now_text(),
                },
            )
        accepted = status is core.RegistrationStatus.ACCEPTED
        return core.BootNotificationConfirmation(
            status=status,
            current_time=datetime.now(UTC),
            interval=self.heartbeat_interval if accepted else BOOT_RETRY_INTERVAL,
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        """Answer with the current time (the frame log notes that it was heard from)."""
        self._require_accepted(gateway_id, "Heartbeat")
        return core.HeartbeatConfirmation(current_time=datetime.now(UTC))

    async def on_status_notification(
        self, gateway_id: str, request: core.StatusNotificationRequest
    ) -> core.StatusNotificationConfirmation:
        """Store the status (current per service, and history) before answering.

        Raises:
            CallError: ``PropertyConstraintViolation`` for a new service of a gateway
                that reports :data:`MAX_SERVICES_PER_GATEWAY` already.
        """
        if not self.fleet.may_add_service(gateway_id, request.service_id, MAX_SERVICES_PER_GATEWAY):
            raise CallError(
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"serviceId {request.service_id!r}: this gateway reports "
                f"{MAX_SERVICES_PER_GATEWAY} services already, the most the control center keeps",
            )
        await self._store(gateway_id, request)
        self.fleet.status(gateway_id, request, now_text())
        return core.StatusNotificationConfirmation()

    async def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        """Store every sampled value before answering."""
        await self._store(gateway_id, request)
        return core.MeterValuesConfirmation()

    async def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        """Store the vendor data and answer ``Accepted``."""
        await self._store(gateway_id, request)
        return core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED)

    # --- firmware profile (spec §4.2) --------------------------------------------------

    async def on_diagnostics_status_notification(
        self, gateway_id: str, request: firmware.DiagnosticsStatusNotificationRequest
    ) -> firmware.DiagnosticsStatusNotificationConfirmation:
        """Store the diagnostics upload status before answering."""
        await self._store(gateway_id, request)
        return firmware.DiagnosticsStatusNotificationConfirmation()

    async def on_firmware_status_notification(
        self, gateway_id: str, request: firmware.FirmwareStatusNotificationRequest
    ) -> firmware.FirmwareStatusNotificationConfirmation:
        """Store the firmware update status before answering."""
        await self._store(gateway_id, request)
        return firmware.FirmwareStatusNotificationConfirmation()

    # --- the one shape of every stored message ------------------------------------------

    async def _store(self, gateway_id: str, request: AnyRequest) -> None:
        """Store one gateway message the way its row of :data:`_STORED` says.

        The gateway must be accepted; the write's commit is awaited; a duplicate is
        counted, anything stored is published as a live event.

        Raises:
            CallError: ``SecurityError`` for a gateway that is not accepted (spec §4.1).
        """
        action = request.ACTION
        self._require_accepted(gateway_id, action)
        kind, store = _STORED[action]
        stored = await self._stored(
            gateway_id, store(self.storage, gateway_id, self._unique_id(), request)
        )
        if stored is None or stored is False:  # the same uniqueId again (spec §6.2)
            self._duplicate(action)
            return
        if not isinstance(stored, bool):  # MeterValues: the number of samples stored
            self.metrics.meter_samples.inc(amount=stored)
        if self.events.active_for(kind):
            self._publish_payload(kind, gateway_id, request)

    def _publish_payload(self, kind: str, gateway_id: str, request: AnyRequest) -> None:
        """Publish a stored G→C request: its wire payload and when it was received."""
        received = now_text()
        self.events.publish(
            kind, gateway_id, lambda: {**to_builtins(request), "receivedAt": received}
        )

    # --- connection hooks (spec §6.1) --------------------------------------------------

    def on_connected(self, connection: GatewayConnection) -> None:
        """Record a new connection (address, TLS state, time)."""
        self.metrics.gateway_connections.inc()
        address = connection.remote_address
        remote = None if address is None else f"{address[0]}:{address[1]}"
        if self._refused(connection.id):
            self.refused.note(connection.id, remote)
            self.metrics.refused_gateways.inc()
            return
        self.storage.set_connected(connection.id, True, remote_address=remote, tls=connection.tls)
        at = now_text()
        self.fleet.connected(connection.id, at, remote, connection.tls)
        if self.events.active_for("connection"):
            self.events.publish(
                "connection",
                connection.id,
                {
                    "connected": True,
                    "state": "connected",
                    "at": at,
                    "remoteAddress": remote,
                    "tls": connection.tls,
                },
            )

    def on_disconnected(self, connection: GatewayConnection) -> None:
        """Record a closed connection, unless a newer one replaced it (spec §1)."""
        if self.control_center.is_connected(connection.id) or not self.storage.is_open:
            return
        if connection.id not in self.storage.gateways:  # removed: must not come back
            return
        self.unresponsive.discard(connection.id)
        self.storage.set_connected(connection.id, False)
        self.fleet.disconnected(connection.id)
        if self.events.active_for("connection"):
            self.events.publish(
                "connection",
                connection.id,
                {"connected": False, "state": "disconnected", "at": now_text()},
            )

    def on_responsive(self, connection: GatewayConnection) -> None:
        """A connected gateway missed a pong, or answers again (see the keep-alive)."""
        gateway_id = connection.id
        if (
            not self.control_center.is_connected(gateway_id)
            or gateway_id not in self.storage.gateways
        ):
            return
        if connection.answering:
            self.unresponsive.discard(gateway_id)
        else:
            self.unresponsive.add(gateway_id)
            self.metrics.missed_pongs.inc()
        self.fleet.responsive(gateway_id, connection.answering)
        if self.events.active_for("connection"):
            state = "connected" if connection.answering else "unresponsive"
            self.events.publish(
                "connection",
                gateway_id,
                {"connected": True, "state": state, "at": now_text()},
            )


_TYPE_NAMES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}


class FrameRecorder:
    """The frame logger: every frame in and out goes to the frame log and the metrics.

    The endpoint hands over each frame with what its RPC layer read of it
    (:class:`~ntxcp.rpc.FrameInfo`: message type, uniqueId, action, error code; an
    answer carries the action of the CALL it answers, spec §2), so every logged frame
    carries its action and nothing here parses frames.

    What a peer sends does not decide how much is logged (see :mod:`.framelog`): a
    frame that is not a JSON-RPC message, or comes from a gateway that is not
    accepted (spec §4.1), or a CALL answered with a CALLERROR while it still waits in
    the buffer, is kept as an excerpt; the byte budgets, the mode and the storage
    alarm decide whether a frame is logged at all. Every frame is counted in the
    metrics either way.

    Args:
        storage: where frames are logged (buffered, see :meth:`.storage.Storage.log_frame`).
        metrics: where frames are counted.
        events: where frames are published live (``None``: nowhere).
        mode: which frames to log.
        budgets: the byte budgets (``None``: no limit).
        accepted: whether a gateway is accepted (its frames are logged whole);
            ``None``: every gateway is.
        fleet: the overview's index, told when a gateway was heard from.
    """

    def __init__(
        self,
        storage: StorageBackend,
        metrics: ServiceMetrics,
        events: EventHub | None = None,
        *,
        mode: FrameLogMode = FrameLogMode.ALL,
        budgets: FrameBudgets | None = None,
        accepted: Callable[[str], bool] | None = None,
        fleet: FleetIndex | None = None,
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.events = events or EventHub()
        self.fleet = fleet or FleetIndex()
        self.mode = mode
        self.budgets = budgets
        self.accepted = accepted
        # The last large CALL received, still in the buffer: shortened if it is refused
        # (its CALLERROR leaves right after it, spec §2.2).
        self._large: tuple[str, str, FrameHandle, int] | None = None

    def __call__(self, gateway_id: str, direction: str, frame: bytes, info: FrameInfo) -> None:
        """Log and count one frame (``direction`` is ``"in"`` or ``"out"``)."""
        time = now_ms()
        message_type = info.message_type
        unique_id = info.unique_id
        action = info.action
        # Label values only from the spec's sets: a peer cannot add series.
        if message_type == 4:
            code = known_label(info.error_code or "", KNOWN_ERROR_CODES)
            self.metrics.call_errors.inc((code, direction))
        label = "" if action is None else known_label(action, KNOWN_ACTIONS)
        self.metrics.messages.inc((label, direction, _TYPE_NAMES.get(message_type or 0, "invalid")))
        if self.mode is not FrameLogMode.OFF:
            self._log(gateway_id, direction, time, message_type, action, unique_id, frame)
        if direction == "in":
            self.storage.touch(gateway_id, time)
            self.fleet.seen(gateway_id, time)
        if self.events.active_for("seen"):
            self._publish(
                gateway_id, direction, ms_text(time), message_type, action, unique_id, frame
            )

    def _log(
        self,
        gateway_id: str,
        direction: str,
        time: int,
        message_type: int | None,
        action: str | None,
        unique_id: str | None,
        frame: bytes,
    ) -> None:
        """File one frame in the frame log, within the limits."""
        refused = message_type is None or (
            direction == "in" and self.accepted is not None and not self.accepted(gateway_id)
        )
        if self.mode is FrameLogMode.ERRORS and not refused and message_type != 4:
            return
        size = len(frame)
        raw: bytes
        if refused and size > EXCERPT_BYTES:
            raw, cut = excerpt(frame), size
            self.metrics.frame_log_truncated.inc()
        else:
            raw, cut = frame, None
        logged = size if cut is None else len(raw)
        reason = "storage-alarm" if self.storage.frame_log_paused else None
        if reason is None and self.budgets is not None:
            reason = self.budgets.spend(gateway_id, logged)
        if reason is not None:
            self.metrics.frame_log_dropped.inc((reason,))
            self.metrics.frame_log_dropped_bytes.inc((reason,), logged)
            return
        handle = self.storage.log_frame(
            gateway_id, direction, time, message_type, action, unique_id, raw, cut
        )
        if unique_id is None:
            return
        if message_type == 2 and direction == "in" and cut is None and size > EXCERPT_BYTES:
            self._large = (gateway_id, unique_id, handle, size)
        elif message_type == 4 and direction == "out" and self._large is not None:
            large_gateway, large_id, large_handle, full = self._large
            if large_gateway == gateway_id and large_id == unique_id:
                # Refused after all (spec §2.2: answered with a CALLERROR): keep an excerpt.
                self._large = None
                frames, index = large_handle
                if self.storage.shorten_frame(large_handle, excerpt(frames[index][6]), full):
                    self.metrics.frame_log_truncated.inc()

    def _publish(
        self,
        gateway_id: str,
        direction: str,
        time: str,
        message_type: int | None,
        action: str | None,
        unique_id: str | None,
        frame: bytes,
    ) -> None:
        """Publish a frame (and, coming in, that the gateway was heard from)."""
        events = self.events
        if direction == "in":
            events.seen(gateway_id, time)
        if not events.wants_frame(gateway_id):
            return
        raw = frame.decode("utf-8", "replace") if len(frame) <= MAX_RAW_FRAME else None
        events.publish(
            "frame",
            gateway_id,
            {
                "direction": direction,
                "time": time,
                "messageType": _TYPE_NAMES.get(message_type or 0),
                "action": action,
                "uniqueId": unique_id,
                "raw": raw,
            },
        )
