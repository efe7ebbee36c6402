"""The Go API's callback form of the control center's requests (``reset_async`` ...)."""

from __future__ import annotations

import asyncio

import pytest
from endpoint_helpers import C2G_REPLIES, GW, Recording, eventually

from ntxcp.errors import NotConnectedError, PayloadValidationError
from ntxcp.v10 import core


async def test_the_callback_gets_the_typed_confirmation(make_cc, make_gw):
    cc = await make_cc()
    gw = await make_gw(cc.url)
    gateway = Recording(control_center=False, replies=C2G_REPLIES)
    gateway.install(gw)
    await eventually(lambda: cc.is_connected(GW))
    outcomes: list[tuple[core.ResetConfirmation | None, BaseException | None]] = []
    done = asyncio.Event()

    def on_reset(confirmation: core.ResetConfirmation | None, error: BaseException | None) -> None:
        outcomes.append((confirmation, error))
        done.set()

    assert cc.reset_async(GW, on_reset, "Soft") is None  # returns at once
    await asyncio.wait_for(done.wait(), 5)
    [(confirmation, error)] = outcomes
    assert error is None and isinstance(confirmation, core.ResetConfirmation)
    assert gateway.received[0].request == core.ResetRequest(type=core.ResetType.SOFT)


async def test_errors_that_prevent_sending_are_raised_not_called_back(make_cc):
    cc = await make_cc()
    called: list[object] = []
    with pytest.raises(NotConnectedError):
        cc.clear_cache_async("nobody", lambda confirmation, error: called.append(error))
    with pytest.raises(PayloadValidationError):
        cc.reset_async("nobody", lambda confirmation, error: called.append(error), "Sotf")  # type: ignore[arg-type]
    assert called == []
