"""The table of ntxcp 1.0 actions and profiles (spec §4, §5).

:data:`ACTIONS` maps each action's wire name to an :class:`ActionSpec`: its request and
confirmation classes, profile, direction and the name of the handler method that
answers it. :data:`PROFILES` maps each profile to its handler base classes. Both are
built once at import from the request classes' own class attributes, so there is a
single source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ntxcp.v10 import core, firmware, remotetrigger
from ntxcp.v10.base import AnyRequest, Confirmation, Direction, Profile

__all__ = [
    "ACTIONS",
    "PROFILES",
    "ActionSpec",
    "ProfileSpec",
    "action_spec",
    "handled_by_control_center",
    "handled_by_gateway",
]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """Everything the library knows about one action (spec §4, §5).

    Attributes:
        action: the wire name, e.g. ``"BootNotification"``.
        request: the request class.
        confirmation: the confirmation class.
        profile: the profile the action belongs to.
        direction: who sends the CALL.
        handler_method: the name of the handler method that answers it, e.g.
            ``"on_boot_notification"``.
    """

    action: str
    request: type[AnyRequest]
    confirmation: type[Confirmation]
    profile: Profile
    direction: Direction
    handler_method: str


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One profile and the handler base classes of its two sides (spec §5).

    Attributes:
        profile: the profile.
        control_center_handler: base class of the control center's handler (G→C
            actions).
        gateway_handler: base class of the gateway's handler (C→G actions).
        actions: the wire names of the profile's actions.
    """

    profile: Profile
    control_center_handler: type
    gateway_handler: type
    actions: tuple[str, ...]


# spec §4 order.
_REQUESTS: tuple[type[AnyRequest], ...] = (
    core.BootNotificationRequest,
    core.HeartbeatRequest,
    core.StatusNotificationRequest,
    core.MeterValuesRequest,
    core.DataTransferRequest,
    core.ChangeConfigurationRequest,
    core.GetConfigurationRequest,
    core.ClearCacheRequest,
    core.ResetRequest,
    core.CaptureProcessRequest,
    firmware.GetDiagnosticsRequest,
    firmware.DiagnosticsStatusNotificationRequest,
    firmware.UpdateFirmwareRequest,
    firmware.FirmwareStatusNotificationRequest,
    remotetrigger.TriggerMessageRequest,
)


def _handler_method(action: str) -> str:
    """``"BootNotification"`` -> ``"on_boot_notification"`` (run once per action)."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


ACTIONS: Mapping[str, ActionSpec] = MappingProxyType(
    {
        cls.ACTION: ActionSpec(
            action=cls.ACTION,
            request=cls,
            confirmation=cls.CONFIRMATION,
            profile=cls.PROFILE,
            direction=cls.DIRECTION,
            handler_method=_handler_method(cls.ACTION),
        )
        for cls in _REQUESTS
    }
)
"""Every action of ntxcp 1.0 by wire name, in spec order (read-only)."""

_HANDLERS: dict[Profile, tuple[type, type]] = {
    Profile.CORE: (core.ControlCenterHandler, core.GatewayHandler),
    Profile.FIRMWARE: (firmware.ControlCenterHandler, firmware.GatewayHandler),
    Profile.REMOTE_TRIGGER: (remotetrigger.ControlCenterHandler, remotetrigger.GatewayHandler),
}

PROFILES: Mapping[Profile, ProfileSpec] = MappingProxyType(
    {
        profile: ProfileSpec(
            profile=profile,
            control_center_handler=cc_handler,
            gateway_handler=gw_handler,
            actions=tuple(name for name, spec in ACTIONS.items() if spec.profile is profile),
        )
        for profile, (cc_handler, gw_handler) in _HANDLERS.items()
    }
)
"""Every profile with its handler base classes and actions (read-only)."""


def action_spec(name: str) -> ActionSpec | None:
    """Look an action up by wire name.

    Args:
        name: the action, e.g. ``"Heartbeat"`` (case-sensitive).

    Returns:
        Its spec, or ``None`` for an action unknown to ntxcp 1.0 (which a receiver
        answers with ``NotImplemented``, spec §2.2 rule 3).
    """
    return ACTIONS.get(name)


def handled_by_control_center(name: str) -> bool:
    """Whether the control center answers CALLs of this action (G→C or both, spec §5).

    Args:
        name: the action's wire name.

    Returns:
        ``False`` for a C→G or unknown action.
    """
    spec = ACTIONS.get(name)
    return spec is not None and spec.direction is not Direction.CONTROL_CENTER_TO_GATEWAY


def handled_by_gateway(name: str) -> bool:
    """Whether a gateway answers CALLs of this action (C→G or both, spec §5).

    Args:
        name: the action's wire name.

    Returns:
        ``False`` for a G→C or unknown action.
    """
    spec = ACTIONS.get(name)
    return spec is not None and spec.direction is not Direction.GATEWAY_TO_CONTROL_CENTER
