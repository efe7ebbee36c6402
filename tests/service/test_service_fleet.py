"""``GET /api/fleet``: the overview's filtered, sorted page and the fleet's counts.

A real service process per backend, 2,000 gateways imported, a few real ones
connected with their own boot identity and statuses. The index is checked against
what the gateways did, after changes, and after a restart (loaded from the database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from service_helpers import TOKEN, Api, ServiceProcess, at, gateway, iso, until

from databases import Databases

pytestmark = pytest.mark.timeout(120)

FLEET = 2_000


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def _fleet(api: Api, **params: str) -> dict[str, Any]:
    status, body = await api.get("/api/fleet", **params)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def _import(api: Api, prefix: str, count: int) -> None:
    entries = [{"id": f"{prefix}-{n}"} for n in range(1, count + 1)]
    status, body = await api.post("/api/gateway-imports", {"gateways": entries})
    assert status == 201, body


async def test_filters_sorts_and_counts(service: ServiceProcess, api: Api) -> None:
    await _import(api, "FL", FLEET)
    async with (
        gateway(service.ws_url, "FL-2") as acme,
        gateway(service.ws_url, "FL-10") as other,
        gateway(service.ws_url, "FL-1500") as leaving,
    ):
        await acme.boot_notification("Edge-X", dingx_gateway_vendor="Acme", firmware_version="4.2")
        await other.boot_notification("Hub-9", dingx_gateway_vendor="Ding", firmware_version="1.0")
        await leaving.boot_notification("Hub-9", dingx_gateway_vendor="Ding")
        await acme.status_notification("1", "NoError", "Available")
        await acme.status_notification("2", "GroundFailure", "Faulted")
        await other.status_notification("1", "NoError", "Available")
        await leaving.status_notification("1", "NoError", "Faulted")
        await leaving.stop()

        async def left() -> bool:
            return (await _fleet(api))["states"]["disconnected"] == 1

        await until(left)
        body = await _fleet(api, limit="5")
        assert body["total"] == FLEET
        assert body["states"] == {
            "connected": 2,
            "unresponsive": 0,
            "disconnected": 1,
            "never": FLEET - 3,
        }
        # Only FL-2's faulted service counts: FL-1500's statuses are last-known.
        assert body["attention"] == {"gateways": 1, "services": 1}
        assert body["matched"] == FLEET and body["offset"] == 0
        assert _ids(body) == ["FL-1", "FL-2", "FL-3", "FL-4", "FL-5"]  # natural order

        first = body["items"][1]
        assert first["state"] == "connected" and first["connected"] is True
        assert (first["vendor"], first["model"], first["firmware"]) == ("Acme", "Edge-X", "4.2")
        assert first["registered"] is True and first["registrationStatus"] == "Accepted"
        assert [s["status"] for s in first["services"]] == ["Available", "Faulted"]
        assert first["attentionServices"] == 1 and first["needsAttention"] is True
        assert first["lastSeen"] is not None
        never = body["items"][0]
        assert never["state"] == "never" and never["lastSeen"] is None

        last = await _fleet(api, offset=str(FLEET - 2))
        assert _ids(last) == [f"FL-{FLEET - 1}", f"FL-{FLEET}"]
        assert _ids(await _fleet(api, order="desc", limit="2")) == [
            f"FL-{FLEET}",
            f"FL-{FLEET - 1}",
        ]

        # Text: id, vendor, model, firmware; case ignored.
        by_id = await _fleet(api, q="fl-15", limit="1000")
        assert by_id["matched"] == 1 + 10 + 100  # FL-15, FL-150..159, FL-1500..1599
        assert by_id["total"] == FLEET  # the counts are the fleet's, not the filter's
        assert _ids(await _fleet(api, q="ACME")) == ["FL-2"]
        assert _ids(await _fleet(api, q="hub-9")) == ["FL-10", "FL-1500"]
        assert _ids(await _fleet(api, q="4.2")) == ["FL-2"]
        assert (await _fleet(api, q="nothing-like-it"))["matched"] == 0

        assert _ids(await _fleet(api, state="connected")) == ["FL-2", "FL-10"]
        assert _ids(await _fleet(api, state="disconnected")) == ["FL-1500"]
        assert _ids(await _fleet(api, attention="true")) == ["FL-2"]
        assert (await _fleet(api, attention="false"))["matched"] == FLEET - 1
        assert _ids(await _fleet(api, q="hub", state="connected")) == ["FL-10"]

        by_state = await _fleet(api, sort="state", limit="4")
        assert _ids(by_state) == ["FL-2", "FL-10", "FL-1500", "FL-1"]
        by_state_desc = await _fleet(api, sort="state", order="desc", limit="1")
        assert _ids(by_state_desc) == ["FL-1"]  # never connected; ties stay in natural order
        await other.heartbeat()  # the newest frame
        recent = await _fleet(api, sort="lastSeen", order="desc", limit="3")
        assert _ids(recent)[0] == "FL-10"
        assert set(_ids(recent)) == {"FL-10", "FL-2", "FL-1500"}
        oldest = await _fleet(api, sort="lastSeen", limit="1")
        assert _ids(oldest) == ["FL-1"]  # never seen first, in natural order


async def test_new_removed_and_changed_gateways_show_at_once(
    service: ServiceProcess, api: Api
) -> None:
    status, _ = await api.post("/api/gateways", {"id": "NEW-7"})
    assert status == 201
    assert _ids(await _fleet(api, q="new-7")) == ["NEW-7"]
    async with gateway(service.ws_url, "SEEN-3") as seen:  # not registered, only seen
        await seen.boot_notification("Hub-1")
        await seen.status_notification("0", "OtherError", "Available", info="fan")
        body = await _fleet(api, q="seen-3")
        item = body["items"][0]
        assert item["registered"] is False and item["state"] == "connected"
        assert item["needsAttention"] is True  # an error code other than NoError
        await seen.status_notification("0", "NoError", "Available", timestamp=at(2))
        item = (await _fleet(api, q="seen-3"))["items"][0]
        assert item["needsAttention"] is False
        # A late, older report never replaces the newer status (as status_current).
        await seen.status_notification("0", "NoError", "Faulted", timestamp=at(1))
        item = (await _fleet(api, q="seen-3"))["items"][0]
        assert item["services"][0]["status"] == "Available"
        assert item["services"][0]["timestamp"] == iso(at(2))
        status, _ = await api.request("DELETE", "/api/gateways/SEEN-3")
        assert status == 204
    assert (await _fleet(api, q="seen-3"))["matched"] == 0
    status, _ = await api.request("DELETE", "/api/gateways/NEW-7")
    assert status == 204
    assert (await _fleet(api, q="new-7"))["matched"] == 0


async def test_the_natural_order_follows_registrations_and_removals(api: Api) -> None:
    await _import(api, "ORD", 30)
    status, _ = await api.post("/api/gateways", {"id": "ORD-2a"})  # goes in its place
    assert status == 201
    assert _ids(await _fleet(api, q="ord-2", limit="3")) == ["ORD-2", "ORD-2a", "ORD-20"]
    for gateway_id in ("ORD-2a", "ORD-5"):
        status, _ = await api.request("DELETE", f"/api/gateways/{gateway_id}")
        assert status == 204
    order = _ids(await _fleet(api, q="ord-", limit="6"))
    assert order == ["ORD-1", "ORD-2", "ORD-3", "ORD-4", "ORD-6", "ORD-7"]
    assert (await _fleet(api, q="ord-"))["matched"] == 29


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"state": "asleep"}, "state"),
        ({"sort": "model"}, "sort"),
        ({"order": "up"}, "order"),
        ({"attention": "yes"}, "attention"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"q": "x" * 101}, "q"),
        ({"q": "a\tb"}, "q"),
        ({"q": "a\n"}, "q"),
        ({"after": "FL-1"}, "after"),
    ],
)
async def test_bad_parameters_are_refused(api: Api, params: dict[str, str], parameter: str) -> None:
    status, body = await api.get("/api/fleet", **params)
    assert status == 400, body
    assert body["parameter"] == parameter


async def test_the_index_is_loaded_from_the_database_at_start(
    databases: Databases, tmp_path: Path
) -> None:
    db = databases.new()
    first = ServiceProcess(tmp_path, "--api-token", TOKEN, db=db).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, first.api_url, TOKEN)
            await _import(api, "R", 30)
            async with gateway(first.ws_url, "R-12") as gw:
                await gw.boot_notification("Edge-X", dingx_gateway_vendor="Acme")
                await gw.status_notification("1", "NoError", "Faulted")
        assert first.stop() == 0, first.stderr()
    finally:
        first.kill()
    again = ServiceProcess(tmp_path, "--api-token", TOKEN, db=db).start()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, again.api_url, TOKEN)
            body = await _fleet(api, q="acme")
            assert body["total"] == 30
            assert body["states"]["disconnected"] == 1 and body["states"]["never"] == 29
            item = body["items"][0]
            assert (item["id"], item["model"], item["state"]) == ("R-12", "Edge-X", "disconnected")
            assert [s["status"] for s in item["services"]] == ["Faulted"]
            assert item["needsAttention"] is False  # last known only
            assert item["lastSeen"] is not None
            assert body["attention"] == {"gateways": 0, "services": 0}
        assert again.stop() == 0, again.stderr()
    finally:
        again.kill()
