"""The fleet index's bookkeeping behind ``GET /api/fleet``, without a server.

The index keeps the entries in natural order between queries, and per entry how many
of its services need attention; these tests change the fleet between two queries in
the ways that must make it take them again.
"""

from __future__ import annotations

from ntxcp.service.fleet import FleetIndex, FleetQuery
from ntxcp.service.storage import GatewayRecord

AT = "2026-12-05T01:00:00.000Z"


def _faulted(service_id: str) -> dict[str, object]:
    return {"serviceId": service_id, "status": "Faulted", "errorCode": "GroundFailure",
            "info": None, "vendorId": None, "vendorErrorCode": None, "timestamp": None,
            "receivedAt": AT}  # fmt: skip


def test_a_gateway_removed_and_registered_again_between_two_queries_starts_afresh() -> None:
    mirror = {g: GatewayRecord(g, True, None, None) for g in ("g-1", "g-2")}
    index = FleetIndex()
    index.load(mirror, [], [])
    index.connected("g-2", AT, "10.0.0.2:1", tls=False)
    index.apply_status("g-2", _faulted("1"))
    page = index.query(FleetQuery())
    assert [item["state"] for item in page.items] == ["never", "connected"]
    assert (page.attention_gateways, page.attention_services) == (1, 1)
    # Removed (its connection closed) and registered again under the same id, with no
    # event of the new one yet: the set of ids is the same as at the last query.
    index.disconnected("g-2")
    index.forget("g-2")
    page = index.query(FleetQuery())
    assert [item["state"] for item in page.items] == ["never", "never"]
    assert page.items[1]["services"] == []
    assert (page.attention_gateways, page.attention_services) == (0, 0)


def test_a_service_back_from_faulted_leaves_the_attention_counts() -> None:
    index = FleetIndex()
    index.load({"g": GatewayRecord("g", True, None, None)}, [], [])
    index.connected("g", AT, "10.0.0.1:1", tls=False)
    index.apply_status("g", _faulted("1"))
    index.apply_status("g", _faulted("2"))
    assert index.query(FleetQuery(attention=True)).attention_services == 2
    index.apply_status("g", {**_faulted("1"), "status": "Available", "errorCode": "NoError"})
    page = index.query(FleetQuery(attention=True))
    assert (page.attention_gateways, page.attention_services, page.matched) == (1, 1, 1)
    index.apply_status("g", {**_faulted("2"), "status": "Available", "errorCode": "NoError"})
    page = index.query(FleetQuery(attention=True))
    assert (page.attention_gateways, page.attention_services, page.matched) == (0, 0, 0)
