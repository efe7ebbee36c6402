"""Handler base classes of the profile modules (spec §5)."""

from __future__ import annotations

import inspect
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mypy import api as mypy_api

from ntxcp.errors import CallError, ErrorCode
from ntxcp.v10 import ACTIONS, PROFILES, Request, core, firmware, remotetrigger, types

STAMP = datetime(2026, 11, 23, 18, 36, 34, tzinfo=UTC)

# One valid request of each action, to call the base methods with.
REQUESTS: dict[str, Request] = {
    "BootNotification": core.BootNotificationRequest(dingx_gateway_model="DX"),
    "Heartbeat": core.HeartbeatRequest(),
    "StatusNotification": core.StatusNotificationRequest(
        service_id="0",
        error_code=core.DingxGatewayErrorCode.NO_ERROR,
        status=core.DingxGatewayStatus.AVAILABLE,
    ),
    "MeterValues": core.MeterValuesRequest(
        service_id=1,
        meter_value=[
            types.MeterValue(timestamp=STAMP, sampled_value=[types.SampledValue(value="1")])
        ],
    ),
    "DataTransfer": core.DataTransferRequest(vendor_id="com.dingx"),
    "ChangeConfiguration": core.ChangeConfigurationRequest(key="k", value="v"),
    "GetConfiguration": core.GetConfigurationRequest(),
    "ClearCache": core.ClearCacheRequest(),
    "Reset": core.ResetRequest(type=core.ResetType.SOFT),
    "CaptureProcess": core.CaptureProcessRequest(service_id="s", datapoint_ids=["a"]),
    "GetDiagnostics": firmware.GetDiagnosticsRequest(location="ftp://h/p"),
    "DiagnosticsStatusNotification": firmware.DiagnosticsStatusNotificationRequest(
        status=firmware.DiagnosticsStatus.IDLE
    ),
    "UpdateFirmware": firmware.UpdateFirmwareRequest(location="https://h/f", retrieve_date=STAMP),
    "FirmwareStatusNotification": firmware.FirmwareStatusNotificationRequest(
        status=firmware.FirmwareStatus.IDLE
    ),
    "TriggerMessage": remotetrigger.TriggerMessageRequest(
        requested_message=remotetrigger.MessageTrigger.HEARTBEAT
    ),
}


def test_one_request_per_action() -> None:
    assert list(REQUESTS) == list(ACTIONS)
    for action, request in REQUESTS.items():
        assert type(request) is ACTIONS[action].request


def _cases() -> list[tuple[type, str, str, bool]]:
    cases = []
    for profile in PROFILES.values():
        for action in profile.actions:
            method = ACTIONS[action].handler_method
            for cls, with_id in (
                (profile.control_center_handler, True),
                (profile.gateway_handler, False),
            ):
                if method in vars(cls):
                    cases.append((cls, action, method, with_id))
    return cases


@pytest.mark.parametrize(
    ("cls", "action", "method", "with_id"),
    _cases(),
    ids=lambda v: v.__qualname__ if isinstance(v, type) else str(v),
)
def test_base_methods_answer_not_supported(
    cls: type, action: str, method: str, with_id: bool
) -> None:
    handler = cls()
    args = ("gw-1", REQUESTS[action]) if with_id else (REQUESTS[action],)
    with pytest.raises(CallError) as info:
        getattr(handler, method)(*args)
    assert info.value.code is ErrorCode.NOT_SUPPORTED
    assert info.value.description == f"{action} is not supported by this handler"
    params = list(inspect.signature(getattr(handler, method)).parameters)
    assert params == (["gateway_id", "request"] if with_id else ["request"])


def test_sixteen_handler_methods() -> None:
    # 15 actions, DataTransfer on both sides
    assert len(_cases()) == 16


async def test_sync_and_async_overrides_work() -> None:
    class Center(core.ControlCenterHandler):
        def on_heartbeat(
            self, gateway_id: str, request: core.HeartbeatRequest
        ) -> core.HeartbeatConfirmation:
            return core.HeartbeatConfirmation(current_time=STAMP)

    class Gateway(remotetrigger.GatewayHandler):
        async def on_trigger_message(
            self, request: remotetrigger.TriggerMessageRequest
        ) -> remotetrigger.TriggerMessageConfirmation:
            return remotetrigger.TriggerMessageConfirmation(
                status=remotetrigger.TriggerMessageStatus.ACCEPTED
            )

    conf = Center().on_heartbeat("gw-1", core.HeartbeatRequest())
    assert conf == core.HeartbeatConfirmation(current_time=STAMP)
    request = remotetrigger.TriggerMessageRequest(
        requested_message=remotetrigger.MessageTrigger.HEARTBEAT
    )
    reply = Gateway().on_trigger_message(request)
    assert inspect.isawaitable(reply)
    assert (await reply).status is remotetrigger.TriggerMessageStatus.ACCEPTED
    with pytest.raises(CallError):
        Center().on_boot_notification("gw-1", core.BootNotificationRequest(dingx_gateway_model="x"))


TYPING_SNIPPET = """
    import datetime

    from ntxcp.v10 import core, firmware, remotetrigger


    class Sync(core.ControlCenterHandler):
        def on_heartbeat(
            self, gateway_id: str, request: core.HeartbeatRequest
        ) -> core.HeartbeatConfirmation:
            return core.HeartbeatConfirmation(current_time=datetime.datetime.now(datetime.UTC))


    class Async(core.GatewayHandler):
        async def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
            return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)


    class Firmware(firmware.GatewayHandler):
        async def on_update_firmware(
            self, request: firmware.UpdateFirmwareRequest
        ) -> firmware.UpdateFirmwareConfirmation:
            return firmware.UpdateFirmwareConfirmation()


    class Trigger(remotetrigger.GatewayHandler):
        def on_trigger_message(
            self, request: remotetrigger.TriggerMessageRequest
        ) -> remotetrigger.TriggerMessageConfirmation:
            return remotetrigger.TriggerMessageConfirmation(
                status=remotetrigger.TriggerMessageStatus.REJECTED
            )


    class Wrong(core.GatewayHandler):
        def on_clear_cache(self, request: core.ClearCacheRequest) -> core.ResetConfirmation:
            return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)
"""


def test_def_and_async_def_overrides_type_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snippet = tmp_path / "handlers_snippet.py"
    snippet.write_text(textwrap.dedent(TYPING_SNIPPET), encoding="utf-8")
    monkeypatch.setenv("MYPYPATH", str(Path(__file__).resolve().parents[2] / "src"))
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(snippet)]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert stderr == ""
    # only the override with the wrong confirmation type is an error
    assert len(errors) == 1, stdout
    assert "on_clear_cache" in errors[0]
    assert status == 1
