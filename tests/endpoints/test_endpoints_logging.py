"""The library's logging: silent unless configured, gateway id as a structured field."""

from __future__ import annotations

import logging

import pytest
from endpoint_helpers import GW, eventually


def test_the_library_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("ntxcp").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


async def test_records_about_a_gateway_carry_its_id(
    make_cc, make_gw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ntxcp")
    cc = await make_cc()
    gw = await make_gw(cc.url)
    await eventually(lambda: cc.is_connected(GW))
    await gw.stop()
    await eventually(lambda: not cc.is_connected(GW))
    about_gateway = [
        record
        for record in caplog.records
        if record.name in ("ntxcp.control_center", "ntxcp.gateway")
        and ("connected" in record.getMessage())
    ]
    assert {record.name for record in about_gateway} == {
        "ntxcp.control_center",
        "ntxcp.gateway",
    }
    assert all(getattr(record, "gateway_id", None) == GW for record in about_gateway)


def test_a_failing_hook_is_logged_with_the_gateway_id(caplog: pytest.LogCaptureFixture) -> None:
    from ntxcp.endpoints._hooks import call_hook

    def hook() -> None:
        raise RuntimeError("boom")

    call_hook(hook, log=logging.getLogger("ntxcp.gateway"), gateway_id="GW-HOOK")
    [record] = [r for r in caplog.records if "hook" in r.getMessage()]
    assert record.gateway_id == "GW-HOOK"  # type: ignore[attr-defined]
