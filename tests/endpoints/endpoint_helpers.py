"""Helpers of the end-to-end endpoint tests: sample messages, recording handlers, raw peers.

Everything here runs over real sockets on 127.0.0.1. The "raw" peers are bare picows
WebSocket clients and servers that speak whatever a test wants, to observe close codes
and frames that the library's own endpoints would never send.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
    ws_create_server,
)

import ntxcp
from ntxcp.errors import EndpointError
from ntxcp.v10 import ACTIONS, Confirmation, Direction, Profile, Request, core, firmware
from ntxcp.v10 import remotetrigger as rt
from ntxcp.v10 import types as t
from waiting import eventually as eventually  # re-exported

T0 = datetime(2026, 11, 23, 18, 36, 34, 123000, tzinfo=UTC)
T1 = datetime(2026, 11, 24, 6, 0, 0, 500000, tzinfo=UTC)
GW = "GW-1"
WAIT = 5.0  # upper bound of every wait for something that should happen at once


# --- the 15 actions, with a request, its confirmation and the typed call ---------------


@dataclass(frozen=True)
class Case:
    """One action in one direction.

    Attributes:
        action: the wire name.
        request: the request the typed call sends (all fields set where possible).
        confirmation: what the handler answers.
        typed: the endpoint's typed method, called as ``typed(endpoint)`` for a gateway
            and ``typed(endpoint, gateway_id)`` for a control center.
    """

    action: str
    request: Request
    confirmation: Confirmation
    typed: Callable[..., Any]

    def __str__(self) -> str:
        return self.action


METER_VALUE = t.MeterValue(
    timestamp=T0,
    sampled_value=[
        t.SampledValue(
            value="1234.5",
            context=t.ReadingContext.SAMPLE_PERIODIC,
            format=t.ValueFormat.RAW,
            measurand=t.Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
            phase=t.Phase.L1,
            location=t.Location.OUTLET,
            unit=t.UnitOfMeasure.KWH,
        ),
        t.SampledValue(value="230", measurand=t.Measurand.VOLTAGE, unit=t.UnitOfMeasure.V),
    ],
)

G2C_CASES: list[Case] = [
    Case(
        "BootNotification",
        core.BootNotificationRequest(
            dingx_gateway_model="DX-100",
            dingx_gateway_vendor="Ding",
            dingx_gateway_serial_number="SN-0001",
            firmware_version="1.2.3",
            iccid="89490200001234567890",
            imsi="262011234567890",
            meter_type="eHZ",
            meter_serial_number="M-77",
        ),
        core.BootNotificationConfirmation(
            status=core.RegistrationStatus.ACCEPTED, current_time=T0, interval=300
        ),
        lambda gw: gw.boot_notification(
            "DX-100",
            dingx_gateway_vendor="Ding",
            dingx_gateway_serial_number="SN-0001",
            firmware_version="1.2.3",
            iccid="89490200001234567890",
            imsi="262011234567890",
            meter_type="eHZ",
            meter_serial_number="M-77",
        ),
    ),
    Case(
        "Heartbeat",
        core.HeartbeatRequest(),
        core.HeartbeatConfirmation(current_time=T0),
        lambda gw: gw.heartbeat(),
    ),
    Case(
        "StatusNotification",
        core.StatusNotificationRequest(
            service_id="1",
            error_code=core.DingxGatewayErrorCode.WEAK_SIGNAL,
            status=core.DingxGatewayStatus.CHARGING,
            info="signal -97 dBm",
            timestamp=T0,
            vendor_id="Ding",
            vendor_error_code="W17",
        ),
        core.StatusNotificationConfirmation(),
        lambda gw: gw.status_notification(
            "1",
            core.DingxGatewayErrorCode.WEAK_SIGNAL,
            "Charging",
            info="signal -97 dBm",
            timestamp=T0,
            vendor_id="Ding",
            vendor_error_code="W17",
        ),
    ),
    Case(
        "MeterValues",
        core.MeterValuesRequest(service_id=3, meter_value=[METER_VALUE]),
        core.MeterValuesConfirmation(),
        lambda gw: gw.meter_values(3, [METER_VALUE]),
    ),
    Case(
        "DataTransfer",
        core.DataTransferRequest(vendor_id="Ding", message_id="ping", data='{"n": 1}'),
        core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED, data="pong"),
        lambda gw: gw.data_transfer("Ding", message_id="ping", data='{"n": 1}'),
    ),
    Case(
        "DiagnosticsStatusNotification",
        firmware.DiagnosticsStatusNotificationRequest(status=firmware.DiagnosticsStatus.UPLOADED),
        firmware.DiagnosticsStatusNotificationConfirmation(),
        lambda gw: gw.diagnostics_status_notification(firmware.DiagnosticsStatus.UPLOADED),
    ),
    Case(
        "FirmwareStatusNotification",
        firmware.FirmwareStatusNotificationRequest(status=firmware.FirmwareStatus.INSTALLED),
        firmware.FirmwareStatusNotificationConfirmation(),
        lambda gw: gw.firmware_status_notification("Installed"),
    ),
]

C2G_CASES: list[Case] = [
    Case(
        "ChangeConfiguration",
        core.ChangeConfigurationRequest(key="HeartbeatInterval", value="600"),
        core.ChangeConfigurationConfirmation(status=core.ConfigurationStatus.REBOOT_REQUIRED),
        lambda cc, gid: cc.change_configuration(gid, "HeartbeatInterval", "600"),
    ),
    Case(
        "ClearCache",
        core.ClearCacheRequest(),
        core.ClearCacheConfirmation(status=core.ClearCacheStatus.REJECTED),
        lambda cc, gid: cc.clear_cache(gid),
    ),
    Case(
        "DataTransfer",
        core.DataTransferRequest(vendor_id="Ding", message_id="cfg", data="blob"),
        core.DataTransferConfirmation(status=core.DataTransferStatus.UNKNOWN_MESSAGE_ID),
        lambda cc, gid: cc.data_transfer(gid, "Ding", message_id="cfg", data="blob"),
    ),
    Case(
        "GetConfiguration",
        core.GetConfigurationRequest(key=["HeartbeatInterval", "Nope"]),
        core.GetConfigurationConfirmation(
            configuration_key=[t.KeyValue(key="HeartbeatInterval", readonly=False, value="600")],
            unknown_key=["Nope"],
        ),
        lambda cc, gid: cc.get_configuration(gid, ["HeartbeatInterval", "Nope"]),
    ),
    Case(
        "Reset",
        core.ResetRequest(type=core.ResetType.HARD),
        core.ResetConfirmation(status=core.ResetStatus.ACCEPTED),
        lambda cc, gid: cc.reset(gid, "Hard"),
    ),
    Case(
        "CaptureProcess",
        core.CaptureProcessRequest(service_id="heat-1", datapoint_ids=["t_flow", "t_x"]),
        core.CaptureProcessConfirmation(
            status=core.CaptureProcessStatus.ACCEPTED,
            datapoints=[
                t.CapturedDatapoint(
                    datapoint_id="t_flow", value="55.5", unit="Celsius", timestamp=T0
                )
            ],
            unknown_datapoint_ids=["t_x"],
        ),
        lambda cc, gid: cc.capture_process(gid, "heat-1", ("t_flow", "t_x")),
    ),
    Case(
        "GetDiagnostics",
        firmware.GetDiagnosticsRequest(
            location="ftp://diag.example.com/upload",
            retries=2,
            retry_interval=30,
            start_time=T0,
            stop_time=T1,
        ),
        firmware.GetDiagnosticsConfirmation(file_name="diag-GW-1.tar.gz"),
        lambda cc, gid: cc.get_diagnostics(
            gid,
            "ftp://diag.example.com/upload",
            retries=2,
            retry_interval=30,
            start_time=T0,
            stop_time=T1,
        ),
    ),
    Case(
        "UpdateFirmware",
        firmware.UpdateFirmwareRequest(
            location="https://fw.example.com/dx-2.0.bin",
            retrieve_date=T1,
            retries=3,
            retry_interval=60,
        ),
        firmware.UpdateFirmwareConfirmation(),
        lambda cc, gid: cc.update_firmware(
            gid, "https://fw.example.com/dx-2.0.bin", T1, retries=3, retry_interval=60
        ),
    ),
    Case(
        "TriggerMessage",
        rt.TriggerMessageRequest(requested_message=rt.MessageTrigger.METER_VALUES, service_id="3"),
        rt.TriggerMessageConfirmation(status=rt.TriggerMessageStatus.ACCEPTED),
        lambda cc, gid: cc.trigger_message(gid, "MeterValues", service_id="3"),
    ),
]

G2C_REPLIES = {case.action: case.confirmation for case in G2C_CASES}
C2G_REPLIES = {case.action: case.confirmation for case in C2G_CASES}


# --- recording handlers ---------------------------------------------------------------


@dataclass
class Received:
    """One CALL a handler got."""

    action: str
    gateway_id: str | None
    request: Request
    thread: str


_BASES = {
    (Profile.CORE, True): core.ControlCenterHandler,
    (Profile.FIRMWARE, True): firmware.ControlCenterHandler,
    (Profile.REMOTE_TRIGGER, True): rt.ControlCenterHandler,
    (Profile.CORE, False): core.GatewayHandler,
    (Profile.FIRMWARE, False): firmware.GatewayHandler,
    (Profile.REMOTE_TRIGGER, False): rt.GatewayHandler,
}


class Recording:
    """Handler objects (one per profile) that record every CALL and answer from a table.

    Args:
        control_center: build the control center's handlers (G→C actions) when true,
            the gateway's (C→G actions) otherwise.
        replies: the confirmation to answer per action; a callable is called with the
            request and its result answered (it may raise).
        is_async: write the handler methods as ``async def`` (else plain ``def``).
        delay: seconds an ``async`` handler sleeps before answering.
    """

    def __init__(
        self,
        *,
        control_center: bool,
        replies: dict[str, Any],
        is_async: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.received: list[Received] = []
        self.replies = dict(replies)
        self.delay = delay
        self.handlers: dict[Profile, object] = {}
        handled = (
            Direction.GATEWAY_TO_CONTROL_CENTER
            if control_center
            else (Direction.CONTROL_CENTER_TO_GATEWAY)
        )
        for profile in Profile:
            namespace: dict[str, Any] = {}
            for spec in ACTIONS.values():
                if spec.profile is profile and spec.direction in (handled, Direction.BOTH):
                    namespace[spec.handler_method] = self._method(
                        spec.action, control_center, is_async
                    )
            base = _BASES[(profile, control_center)]
            cls = type(f"Recording{base.__name__}", (base,), namespace)
            self.handlers[profile] = cls()

    def _answer(self, action: str, gateway_id: str | None, request: Request) -> Any:
        self.received.append(Received(action, gateway_id, request, threading.current_thread().name))
        reply = self.replies[action]
        return reply(request) if callable(reply) else reply

    def _method(self, action: str, control_center: bool, is_async: bool) -> Any:
        recording = self
        if control_center and is_async:

            async def cc_async(_self: object, gateway_id: str, request: Request) -> Any:
                await asyncio.sleep(recording.delay)
                return recording._answer(action, gateway_id, request)

            return cc_async
        if control_center:

            def cc_sync(_self: object, gateway_id: str, request: Request) -> Any:
                return recording._answer(action, gateway_id, request)

            return cc_sync
        if is_async:

            async def gw_async(_self: object, request: Request) -> Any:
                await asyncio.sleep(recording.delay)
                return recording._answer(action, None, request)

            return gw_async

        def gw_sync(_self: object, request: Request) -> Any:
            return recording._answer(action, None, request)

        return gw_sync

    def install(self, endpoint: Any) -> None:
        """Register the three handlers on a control center or a gateway."""
        endpoint.set_core_handler(self.handlers[Profile.CORE])
        endpoint.set_firmware_management_handler(self.handlers[Profile.FIRMWARE])
        endpoint.set_remote_trigger_handler(self.handlers[Profile.REMOTE_TRIGGER])

    def actions(self) -> list[str]:
        """The actions received so far, in order."""
        return [r.action for r in self.received]


# --- error streams --------------------------------------------------------------------


async def next_error(endpoint: Any, kind: str, timeout: float = WAIT) -> EndpointError:
    """Wait for the first report of ``kind`` on an endpoint's error stream."""

    async def scan() -> EndpointError:
        async for error in endpoint.errors():
            if error.kind == kind:
                return error
        raise AssertionError(f"error stream ended without a {kind!r} report")

    return await asyncio.wait_for(scan(), timeout)


def reports(endpoint: Any, kind: str | None = None) -> list[EndpointError]:
    """Take the buffered reports of an endpoint (of one kind, when given)."""
    taken = endpoint.error_stream.pending()
    return [e for e in taken if kind is None or e.kind == kind]


# --- raw WebSocket peers (picows) -------------------------------------------------------


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class RawPeer(WSListener):  # type: ignore[misc]
    """A bare WebSocket end that queues every text message and records the close code.

    Attributes:
        messages: text messages received (decoded JSON when possible).
        close_code: the code of the close frame received (``None`` until one arrives).
        disconnected: set when the TCP connection is gone.
    """

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason = ""
        self.disconnected = asyncio.Event()
        self.connected = asyncio.Event()
        self.request: WSUpgradeRequest | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.connected.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            text = frame.get_payload_as_utf8_text()
            try:
                self.messages.put_nowait(json.loads(text))
            except ValueError:
                self.messages.put_nowait(text)
        elif frame.msg_type is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value if frame.payload_size >= 2 else 1005
            self.close_reason = frame.get_close_reason() if frame.payload_size > 2 else ""
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected.set()

    # --- sending ---------------------------------------------------------------------

    def send_text(self, text: str | bytes, *, fin: bool = True, first: bool = True) -> None:
        """Send a text frame (``first=False``: a continuation frame)."""
        assert self.transport is not None
        data = text.encode() if isinstance(text, str) else text
        self.transport.send(WSMsgType.TEXT if first else WSMsgType.CONTINUATION, data, fin=fin)

    def send_json(self, value: Any) -> None:
        """Send one JSON message."""
        self.send_text(json.dumps(value))

    def close(self, code: int = 1000) -> None:
        """Send a close frame and disconnect."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode(code))
            self.transport.disconnect()

    async def receive(self, timeout: float = WAIT) -> Any:
        """The next message (fails after ``timeout``)."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def wait_closed(self, timeout: float = WAIT) -> int | None:
        """Wait for the disconnection; return the close code received."""
        await asyncio.wait_for(self.disconnected.wait(), timeout)
        return self.close_code


async def raw_connect(
    url: str,
    *,
    subprotocol: str | None = ntxcp.transport.SUBPROTOCOL,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> RawPeer:
    """Open a raw WebSocket to ``url`` (offering ``ntxcp1.0`` unless told otherwise).

    Raises:
        WSHandshakeError: the server refused the upgrade.
    """
    all_headers = dict(headers or {})
    if subprotocol is not None:
        all_headers["Sec-WebSocket-Protocol"] = subprotocol
    peer = RawPeer()
    await ws_connect(
        lambda: peer,
        url,
        extra_headers=all_headers,
        max_redirects=0,
        websocket_handshake_timeout=WAIT,
        **kwargs,
    )
    return peer


async def handshake_status(url: str, **kwargs: Any) -> int:
    """Try an upgrade with :func:`raw_connect`; return 101 or the refusal's HTTP status."""
    try:
        peer = await raw_connect(url, **kwargs)
    except WSHandshakeError as exc:
        assert exc.response is not None, exc
        return int(exc.response.status)
    peer.close()
    await peer.wait_closed()
    return 101


class RawServer:
    """A bare WebSocket server that accepts any path with subprotocol ``ntxcp1.0``.

    Attributes:
        peers: a queue of the :class:`RawPeer` of every accepted connection.
    """

    def __init__(self, **options: Any) -> None:
        self.peers: asyncio.Queue[RawPeer] = asyncio.Queue()
        self._all: list[RawPeer] = []
        self._server: asyncio.Server | None = None
        self._options = options  # for ws_create_server, e.g. enable_auto_pong=False

    async def start(self) -> RawServer:
        def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            peer = RawPeer()
            peer.request = request
            self.peers.put_nowait(peer)
            self._all.append(peer)
            response = WSUpgradeResponse.create_101_response(
                {"Sec-WebSocket-Protocol": ntxcp.transport.SUBPROTOCOL}
            )
            return WSUpgradeResponseWithListener(response, peer)

        self._server = await ws_create_server(factory, "127.0.0.1", 0, **self._options)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ntxcp"

    async def accept(self, timeout: float = WAIT) -> RawPeer:
        """The next connection, once its upgrade completed."""
        peer = await asyncio.wait_for(self.peers.get(), timeout)
        await asyncio.wait_for(peer.connected.wait(), timeout)
        return peer

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            for peer in self._all:
                if peer.transport is not None and not peer.transport.is_disconnected:
                    peer.transport.underlying_transport.abort()
            await asyncio.wait_for(self._server.wait_closed(), WAIT)


def call_frame(unique_id: str, action: str, payload: dict[str, Any] | None = None) -> list[Any]:
    """A CALL as a JSON value."""
    return [2, unique_id, action, payload or {}]


# --- a control center on its own thread (for the blocking gateway) ----------------------


class ThreadedLoop:
    """An event loop on a background thread, to run a control center next to blocking code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 15.0) -> Any:
        """Run a coroutine on the loop and block for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the loop thread and block for its result."""

        async def run() -> Any:
            return fn()

        return self.run(run())

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
