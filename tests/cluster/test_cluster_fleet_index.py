"""The fleet index's rules for other nodes' gateways (cluster mode), without servers."""

from __future__ import annotations

from ntxcp.service.fleet import FleetIndex, FleetQuery
from ntxcp.service.storage import GatewayRecord

EARLY, LATE = "2026-12-05T01:00:00.000Z", "2026-12-05T01:00:05.000Z"


def index_of(*gateway_ids: str) -> FleetIndex:
    """The index of node ``b`` knowing these gateways (none seen yet)."""
    index = FleetIndex()
    index.load({g: GatewayRecord(g, True, None, None) for g in gateway_ids}, [], [])
    index.node_id = "b"
    return index


def opened(at: str) -> dict[str, object]:
    """A ``connection`` event's data for a new connection."""
    return {"connected": True, "state": "connected", "at": at, "remoteAddress": "x:1"}


CLOSED = {"connected": False, "state": "disconnected", "at": LATE}


def shown(index: FleetIndex, gateway_id: str) -> tuple[str, str | None]:
    """(state, node) of a gateway in ``GET /api/fleet``."""
    (item,) = index.query(FleetQuery(text=gateway_id)).items
    return item["state"], item["node"]


def test_an_older_session_reported_late_does_not_replace_the_newer() -> None:
    index = index_of("g")
    index.apply_connection("a", "g", opened(LATE))
    index.apply_connection("c", "g", opened(EARLY))  # c's session was taken over by a
    assert shown(index, "g") == ("connected", "a")
    index.apply_connection("c", "g", CLOSED)  # c closing its old socket
    assert shown(index, "g") == ("connected", "a")
    index.apply_connection("a", "g", CLOSED)
    assert shown(index, "g") == ("disconnected", None)


def test_closing_a_socket_here_after_a_takeover_keeps_the_other_nodes_session() -> None:
    index = index_of("g")
    index.connected("g", EARLY, "x:1", False)
    assert shown(index, "g") == ("connected", "b")
    index.apply_connection("a", "g", opened(LATE))
    index.disconnected("g")  # b's older socket closes
    index.responsive("g", False)  # and b's keep-alive says nothing about a's session
    assert shown(index, "g") == ("connected", "a")


def test_only_the_gateways_of_the_node_gone_are_disconnected() -> None:
    index = index_of("g1", "g2", "g3")
    index.apply_connection("a", "g1", opened(EARLY))
    index.apply_connection("a", "g2", opened(EARLY))
    index.apply_connection("c", "g3", opened(EARLY))
    index.apply_status("g1", {"serviceId": "1", "status": "Faulted", "errorCode": "NoError"})
    assert index.query(FleetQuery()).attention_gateways == 1
    assert sorted(index.holders()) == ["a", "c"]
    assert index.node_gone("a") == 2
    page = index.query(FleetQuery())
    assert (page.states["connected"], page.states["disconnected"]) == (1, 2)
    assert page.attention_gateways == 0  # the statuses of a closed connection do not count
    assert index.holders() == ["c"]
