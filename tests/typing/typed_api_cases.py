"""Cases for mypy: the typed request API (read by tests/test_typed_api.py, never run).

A line ending in an "error" comment must get a mypy error containing the comment's
text; every other line must type-check under ``--strict``.
"""

from __future__ import annotations

from typing import assert_type

import ntxcp
import ntxcp.sync
from ntxcp.v10 import core, firmware, remotetrigger


def on_reset(confirmation: core.ResetConfirmation | None, error: BaseException | None) -> None:
    pass


def on_meter_values(
    confirmation: core.MeterValuesConfirmation | None, error: BaseException | None
) -> None:
    pass


async def control_center(cc: ntxcp.ControlCenter) -> None:
    assert_type(await cc.reset("GW", "Soft"), core.ResetConfirmation)
    assert_type(await cc.reset("GW", core.ResetType.HARD), core.ResetConfirmation)
    assert_type(await cc.send_request("GW", core.ClearCacheRequest()), core.ClearCacheConfirmation)
    assert_type(
        await cc.trigger_message("GW", "Heartbeat"), remotetrigger.TriggerMessageConfirmation
    )
    assert_type(await cc.get_diagnostics("GW", "ftp://x/y"), firmware.GetDiagnosticsConfirmation)
    cc.send_request_async("GW", core.ResetRequest(type=core.ResetType.SOFT), on_reset)
    cc.reset_async("GW", on_reset, "Hard")
    cc.clear_cache_async("GW", on_reset)  # error: incompatible type
    await cc.reset("GW", "Sotf")  # error: incompatible type
    cc.send_request_async("GW", core.ClearCacheRequest(), on_reset)  # error: incompatible type
    await cc.get_configuration("GW", keys=["a"], timout=3)  # error: Unexpected keyword


async def gateway(gw: ntxcp.Gateway) -> None:
    assert_type(await gw.boot_notification("M"), core.BootNotificationConfirmation)
    assert_type(await gw.meter_values(1, [], timeout=3), core.MeterValuesConfirmation)
    assert_type(await gw.send_request(core.HeartbeatRequest()), core.HeartbeatConfirmation)
    gw.send_request_async(core.MeterValuesRequest(service_id=1, meter_value=[]), on_meter_values)
    gw.send_request_async(core.HeartbeatRequest(), on_meter_values)  # error: incompatible type
    await gw.status_notification("0", "NoErr", "Available")  # error: incompatible type
    await gw.boot_notification("M", dingx_gateway_vendr="V")  # error: Unexpected keyword


def blocking_gateway() -> None:
    gw = ntxcp.sync.Gateway("GW", store="x.db")
    assert_type(gw.boot_notification("M"), core.BootNotificationConfirmation)
    assert_type(gw.meter_values(1, [], timeout=3), core.MeterValuesConfirmation)
    assert_type(gw.send_request(core.HeartbeatRequest()), core.HeartbeatConfirmation)
    assert_type(gw.connect_count, int)
    assert_type(gw.last_close, tuple[int, str] | None)
    assert_type(gw.url, str | None)
    gw.send_request_async(core.HeartbeatRequest(), on_meter_values)  # error: incompatible type
    ntxcp.sync.Gateway("GW", stroe="x")  # error: Unexpected keyword
    gw.boot_notification("M", dingx_gateway_vendr="V")  # error: Unexpected keyword
    gw.meter_values(1, [], timout=3)  # error: Unexpected keyword
    gw.reset_type = 3  # error: has no attribute
