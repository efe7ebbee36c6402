"""The action and profile table (spec §4, §5)."""

from __future__ import annotations

import pytest

from ntxcp.v10 import (
    ACTIONS,
    PROFILES,
    ActionSpec,
    Direction,
    Profile,
    action_spec,
    core,
    firmware,
    handled_by_control_center,
    handled_by_gateway,
    remotetrigger,
)

G2C = Direction.GATEWAY_TO_CONTROL_CENTER
C2G = Direction.CONTROL_CENTER_TO_GATEWAY

# spec §5 table
EXPECTED: dict[str, tuple[Profile, Direction]] = {
    "BootNotification": (Profile.CORE, G2C),
    "Heartbeat": (Profile.CORE, G2C),
    "StatusNotification": (Profile.CORE, G2C),
    "MeterValues": (Profile.CORE, G2C),
    "DataTransfer": (Profile.CORE, Direction.BOTH),
    "ChangeConfiguration": (Profile.CORE, C2G),
    "GetConfiguration": (Profile.CORE, C2G),
    "ClearCache": (Profile.CORE, C2G),
    "Reset": (Profile.CORE, C2G),
    "CaptureProcess": (Profile.CORE, C2G),
    "GetDiagnostics": (Profile.FIRMWARE, C2G),
    "DiagnosticsStatusNotification": (Profile.FIRMWARE, G2C),
    "UpdateFirmware": (Profile.FIRMWARE, C2G),
    "FirmwareStatusNotification": (Profile.FIRMWARE, G2C),
    "TriggerMessage": (Profile.REMOTE_TRIGGER, C2G),
}

HANDLER_METHODS = {
    "BootNotification": "on_boot_notification",
    "Heartbeat": "on_heartbeat",
    "StatusNotification": "on_status_notification",
    "MeterValues": "on_meter_values",
    "DataTransfer": "on_data_transfer",
    "ChangeConfiguration": "on_change_configuration",
    "GetConfiguration": "on_get_configuration",
    "ClearCache": "on_clear_cache",
    "Reset": "on_reset",
    "CaptureProcess": "on_capture_process",
    "GetDiagnostics": "on_get_diagnostics",
    "DiagnosticsStatusNotification": "on_diagnostics_status_notification",
    "UpdateFirmware": "on_update_firmware",
    "FirmwareStatusNotification": "on_firmware_status_notification",
    "TriggerMessage": "on_trigger_message",
}


def test_fifteen_actions_in_spec_order() -> None:
    assert list(ACTIONS) == list(EXPECTED)


@pytest.mark.parametrize("action", list(EXPECTED))
def test_action_spec(action: str) -> None:
    spec = ACTIONS[action]
    assert isinstance(spec, ActionSpec)
    assert action_spec(action) is spec
    assert spec.action == action
    assert (spec.profile, spec.direction) == EXPECTED[action]
    assert EXPECTED[action] == (spec.request.PROFILE, spec.request.DIRECTION)
    assert spec.confirmation is spec.request.CONFIRMATION
    assert spec.handler_method == HANDLER_METHODS[action]


@pytest.mark.parametrize("action", list(EXPECTED))
def test_handled_by(action: str) -> None:
    direction = EXPECTED[action][1]
    assert handled_by_control_center(action) is (direction is not C2G)
    assert handled_by_gateway(action) is (direction is not G2C)


@pytest.mark.parametrize("name", ["Authorize", "bootnotification", "", "StartTransaction"])
def test_unknown_actions(name: str) -> None:
    assert action_spec(name) is None
    assert not handled_by_control_center(name)
    assert not handled_by_gateway(name)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        ACTIONS["Foo"] = ACTIONS["Heartbeat"]  # type: ignore[index]
    with pytest.raises(TypeError):
        PROFILES[Profile.CORE] = PROFILES[Profile.FIRMWARE]  # type: ignore[index]
    with pytest.raises(AttributeError):
        ACTIONS["Heartbeat"].action = "Foo"  # type: ignore[misc]


def test_profiles() -> None:
    assert list(PROFILES) == list(Profile)
    assert PROFILES[Profile.CORE].control_center_handler is core.ControlCenterHandler
    assert PROFILES[Profile.CORE].gateway_handler is core.GatewayHandler
    assert PROFILES[Profile.FIRMWARE].control_center_handler is firmware.ControlCenterHandler
    assert PROFILES[Profile.FIRMWARE].gateway_handler is firmware.GatewayHandler
    rt = PROFILES[Profile.REMOTE_TRIGGER]
    assert rt.control_center_handler is remotetrigger.ControlCenterHandler
    assert rt.gateway_handler is remotetrigger.GatewayHandler
    for profile, spec in PROFILES.items():
        assert spec.profile is profile
        assert spec.actions == tuple(a for a, (p, _) in EXPECTED.items() if p is profile)


@pytest.mark.parametrize("profile", list(Profile))
def test_handler_classes_have_exactly_their_sides_methods(profile: Profile) -> None:
    spec = PROFILES[profile]
    cc_expected = {HANDLER_METHODS[a] for a in spec.actions if handled_by_control_center(a)}
    gw_expected = {HANDLER_METHODS[a] for a in spec.actions if handled_by_gateway(a)}

    def methods(cls: type) -> set[str]:
        return {name for name in vars(cls) if name.startswith("on_")}

    assert methods(spec.control_center_handler) == cc_expected
    assert methods(spec.gateway_handler) == gw_expected
