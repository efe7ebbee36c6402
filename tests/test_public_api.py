"""The public surface: what `import ntxcp` offers, and the Go API it mirrors."""

from __future__ import annotations

import inspect

import ntxcp
import ntxcp.sync
from ntxcp import ControlCenter, Gateway

EXPECTED_EXPORTS = {
    "Backoff",
    "CallContext",
    "CallError",
    "CallTimeoutError",
    "ControlCenter",
    "DisconnectedError",
    "EndpointError",
    "ErrorCode",
    "ErrorKind",
    "Gateway",
    "GatewayConnection",
    "HandshakeInfo",
    "HandshakeRefusedError",
    "NotConnectedError",
    "NtxcpError",
    "PayloadValidationError",
    "QueueFullError",
    "__version__",
    "client_tls_context",
    "current_call",
    "server_tls_context",
}

# Go DingXControlCenter method -> Python counterpart (seed-ntxcp10-go-api.txt).
GO_CONTROL_CENTER = {
    "ChangeConfiguration": "change_configuration",
    "ClearCache": "clear_cache",
    "DataTransfer": "data_transfer",
    "GetConfiguration": "get_configuration",
    "Reset": "reset",
    "GetDiagnostics": "get_diagnostics",
    "UpdateFirmware": "update_firmware",
    "TriggerMessage": "trigger_message",
    "CaptureProcess": "capture_process",
    "SetCoreHandler": "set_core_handler",
    "SetFirmwareManagementHandler": "set_firmware_management_handler",
    "SetRemoteTriggerHandler": "set_remote_trigger_handler",
    "SetNewChargingStationValidationHandler": "set_new_gateway_validation_handler",
    "SetNewDingxGatewayHandler": "set_new_gateway_handler",
    "SetDingxGatewayDisconnectedHandler": "set_gateway_disconnected_handler",
    "SendRequestAsync": "send_request_async",
    "Start": "start",
    "Stop": "stop",
    "Errors": "errors",
}

# Go DingXGateway method -> Python counterpart.
GO_GATEWAY = {
    "BootNotification": "boot_notification",
    "DataTransfer": "data_transfer",
    "Heartbeat": "heartbeat",
    "MeterValues": "meter_values",
    "StatusNotification": "status_notification",
    "DiagnosticsStatusNotification": "diagnostics_status_notification",
    "FirmwareStatusNotification": "firmware_status_notification",
    "SetCoreHandler": "set_core_handler",
    "SetFirmwareManagementHandler": "set_firmware_management_handler",
    "SetRemoteTriggerHandler": "set_remote_trigger_handler",
    "SendRequest": "send_request",
    "SendRequestAsync": "send_request_async",
    "Start": "start",
    "Stop": "stop",
    "IsConnected": "is_connected",
    "Errors": "errors",
}


def test_top_level_exports_are_exactly_the_documented_ones() -> None:
    assert set(ntxcp.__all__) == EXPECTED_EXPORTS
    for name in ntxcp.__all__:
        assert hasattr(ntxcp, name), name


def test_every_go_control_center_method_has_a_counterpart() -> None:
    for go_name, py_name in GO_CONTROL_CENTER.items():
        assert hasattr(ControlCenter, py_name), f"{go_name} -> {py_name} missing"


def test_every_go_gateway_method_has_a_counterpart_async_and_blocking() -> None:
    for go_name, py_name in GO_GATEWAY.items():
        assert hasattr(Gateway, py_name), f"{go_name} -> {py_name} missing on Gateway"
        assert hasattr(ntxcp.sync.Gateway, py_name), f"{go_name} -> {py_name} missing on sync"


def test_awaitable_request_methods_are_coroutines_with_a_timeout() -> None:
    for py_name in list(GO_CONTROL_CENTER.values())[:9]:
        method = getattr(ControlCenter, py_name)
        assert inspect.iscoroutinefunction(method), py_name
        assert "timeout" in inspect.signature(method).parameters, py_name
    for py_name in list(GO_GATEWAY.values())[:7]:
        method = getattr(Gateway, py_name)
        assert inspect.iscoroutinefunction(method), py_name
        assert "timeout" in inspect.signature(method).parameters, py_name
