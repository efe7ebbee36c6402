"""The asyncio endpoints: :class:`ControlCenter` and :class:`Gateway` (spec §6)."""

from ntxcp.endpoints._errors import ErrorStream
from ntxcp.endpoints._session import CallContext, FrameTap, current_call
from ntxcp.endpoints.backoff import Backoff
from ntxcp.endpoints.control_center import ControlCenter, GatewayConnection
from ntxcp.endpoints.gateway import Gateway
from ntxcp.endpoints.state import GatewayState

__all__ = [
    "Backoff",
    "CallContext",
    "ControlCenter",
    "ErrorStream",
    "FrameTap",
    "Gateway",
    "GatewayConnection",
    "GatewayState",
    "current_call",
]
