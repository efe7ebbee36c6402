"""The gateway's connection state: an enum and its allowed transitions (spec §6.2).

::

    IDLE ──start──> CONNECTING ──connected──> CONNECTED ──boot Accepted──> READY
      ^                 │  ^                      │                          │
      └─ start failed ──┘  └──── reconnecting ── DISCONNECTED <── link lost ─┘
    any ──stop()──> STOPPING ──> STOPPED ──start──> CONNECTING

Without the lifecycle (no ``boot`` request) a connection goes straight to READY.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

__all__ = ["GatewayState", "StateMachine"]


class GatewayState(StrEnum):
    """Where a gateway stands (see the module docs for the transitions)."""

    IDLE = "idle"
    """Never started, or the first connection failed; :meth:`start` may be called."""
    CONNECTING = "connecting"
    """Opening a connection, or waiting for the next attempt (reconnect backoff)."""
    CONNECTED = "connected"
    """Connected; the lifecycle's BootNotification is not accepted yet (spec §4.1)."""
    READY = "ready"
    """Connected, and boot accepted (or no lifecycle): G→C messages flow."""
    DISCONNECTED = "disconnected"
    """The connection was lost and the gateway does not reconnect (yet)."""
    STOPPING = "stopping"
    """:meth:`stop` is closing the connection."""
    STOPPED = "stopped"
    """Stopped; undelivered messages stay in the outbox."""


_S = GatewayState
TRANSITIONS: dict[GatewayState, frozenset[GatewayState]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.STOPPING}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.READY, _S.IDLE, _S.DISCONNECTED, _S.STOPPING}),
    _S.CONNECTED: frozenset({_S.READY, _S.DISCONNECTED, _S.STOPPING}),
    _S.READY: frozenset({_S.DISCONNECTED, _S.STOPPING}),
    _S.DISCONNECTED: frozenset({_S.CONNECTING, _S.STOPPING}),
    _S.STOPPING: frozenset({_S.STOPPED}),
    _S.STOPPED: frozenset({_S.CONNECTING, _S.STOPPING}),
}
"""The allowed transitions, from each state."""


class StateMachine:
    """The current :class:`GatewayState`, with events to wait on.

    Attributes:
        connected: set in CONNECTED and READY.
        ready: set in READY.
        stopping: set in STOPPING and STOPPED.
    """

    def __init__(self) -> None:
        self._state = GatewayState.IDLE
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()

    @property
    def state(self) -> GatewayState:
        """The current state."""
        return self._state

    @property
    def is_stopping(self) -> bool:
        """Whether :meth:`stop` was called (STOPPING or STOPPED)."""
        return self._state in (GatewayState.STOPPING, GatewayState.STOPPED)

    def enter(self, state: GatewayState) -> None:
        """Move to ``state`` (staying in the current state is allowed).

        Raises:
            RuntimeError: the transition is not in :data:`TRANSITIONS`.
        """
        if state is self._state:
            return
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"gateway cannot go from {self._state} to {state}")
        self._state = state
        _toggle(self.connected, state in (GatewayState.CONNECTED, GatewayState.READY))
        _toggle(self.ready, state is GatewayState.READY)
        _toggle(self.stopping, state in (GatewayState.STOPPING, GatewayState.STOPPED))


def _toggle(event: asyncio.Event, on: bool) -> None:
    if on:
        event.set()
    else:
        event.clear()
