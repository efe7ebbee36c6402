"""Handler registry of an endpoint: one handler object per profile (spec §5)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ntxcp.errors import CallError, ErrorCode
from ntxcp.rpc import Role
from ntxcp.v10 import Profile
from ntxcp.v10.registry import ACTIONS, ActionSpec

__all__ = ["Dispatcher"]


class Dispatcher:
    """Maps each action to the bound handler method that answers it.

    The set of profiles with a handler (:attr:`profiles`) is shared by reference
    with every connection's state machine, so CALLs of a profile without a handler
    are answered ``NotSupported`` without reaching Python handler code (spec §5).

    Args:
        role: the side this dispatcher serves; decides which actions it handles.
    """

    def __init__(self, role: Role) -> None:
        self.role = role
        self.profiles: set[Profile] = set()
        self._methods: dict[str, tuple[Callable[..., Any], bool]] = {}

    def set_handler(self, profile: Profile, handler: object | None) -> None:
        """Register (or with ``None`` remove) the handler object of one profile.

        Raises:
            TypeError: the handler lacks a method for an action of the profile.
        """
        specs = [s for s in ACTIONS.values() if s.profile is profile and self.role.handles(s)]
        for spec in specs:
            self._methods.pop(spec.action, None)
        if handler is None:
            self.profiles.discard(profile)
            return
        missing = [
            s.handler_method
            for s in specs
            if not callable(getattr(handler, s.handler_method, None))
        ]
        if missing:
            raise TypeError(
                f"{type(handler).__name__} lacks {', '.join(missing)} "
                f"for the {profile.value} profile"
            )
        for spec in specs:
            method = getattr(handler, spec.handler_method)
            self._methods[spec.action] = (method, inspect.iscoroutinefunction(method))
        self.profiles.add(profile)

    def lookup(self, spec: ActionSpec) -> tuple[Callable[..., Any], bool] | None:
        """The bound method for an action and whether it is ``async def``."""
        return self._methods.get(spec.action)

    @staticmethod
    def not_supported(spec: ActionSpec) -> CallError:
        """The error for an action whose profile has no handler (spec §5)."""
        return CallError(ErrorCode.NOT_SUPPORTED, f"no handler for {spec.action}")
