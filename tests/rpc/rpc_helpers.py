"""Small helpers shared by the tests of the RPC layer (spec §2)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ntxcp.errors import ErrorCode
from ntxcp.rpc import Event, Role, RpcConnection
from ntxcp.v10 import ACTIONS, Profile, Request, decode_payload

ALL_PROFILES = frozenset(Profile)
ERROR_CODES = frozenset(code.value for code in ErrorCode)


def connection(
    role: Role | str,
    profiles: Iterable[Profile | str] = ALL_PROFILES,
    *,
    ids: Iterable[str] | None = None,
    **kwargs: Any,
) -> RpcConnection:
    """An ``RpcConnection`` whose ``uniqueId``s come from ``ids`` when given."""
    if ids is not None:
        it = iter(ids)
        kwargs["id_factory"] = lambda: next(it)
    return RpcConnection(Role(role), profiles={Profile(p) for p in profiles}, **kwargs)


def request(action: str, payload: dict[str, Any]) -> Request:
    """The typed request of ``action`` built from its wire payload."""
    return decode_payload(ACTIONS[action].request, json.dumps(payload))


def names(events: Iterable[Event]) -> list[str]:
    """The class names of ``events``, in order."""
    return [type(event).__name__ for event in events]


def sent(conn: RpcConnection) -> list[list[Any]]:
    """Decode every frame the connection wants to write (and forget them)."""
    return [json.loads(frame) for frame in conn.data_to_send()]


def assert_callerror(frame: Any) -> None:
    """Check that ``frame`` is a well-formed CALLERROR with a code of spec §2.1."""
    assert isinstance(frame, list)
    assert len(frame) == 5
    assert frame[0] == 4
    assert isinstance(frame[1], str)
    assert frame[2] in ERROR_CODES
    assert isinstance(frame[3], str)
    assert isinstance(frame[4], dict)
