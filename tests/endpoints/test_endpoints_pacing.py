"""Admission pacing: a storm of connections waits in the listen backlog, none is refused.

The control center accepts a connection only while fewer than ``max_handshakes`` are
between their accept and the decision on their upgrade, and at most ``accept_rate`` a
second; the others wait in the kernel's accept queue. Behaviour, not timing: which
connections are in progress, which wait, and that every one is admitted in the end.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from endpoint_helpers import G2C_REPLIES, T0, Recording, eventually

import ntxcp
from ntxcp import HandshakeInfo, client_tls_context, server_tls_context
from ntxcp.transport import AdmissionCounts, _pacing
from ntxcp.transport._pacing import AdmissionPacer, TokenBucket

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def places_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Places that never expire during a test (the default frees them after 1 s)."""
    monkeypatch.setattr(_pacing, "PLACE_TIMEOUT", 60.0)


async def test_a_connection_beyond_the_cap_waits_and_is_admitted_when_one_finishes(
    make_cc, make_gw, places_kept
):
    cc = await make_cc(max_handshakes=2, accept_rate=0)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    checking: dict[str, asyncio.Event] = {}

    async def check(gateway_id: str, password: str, info: HandshakeInfo) -> bool:
        checking[gateway_id] = release = asyncio.Event()
        await release.wait()
        return True

    cc.set_async_basic_auth_handler(check)
    starting = [asyncio.ensure_future(make_gw(cc.url, f"GW-{n}", password="pw")) for n in range(3)]
    await eventually(lambda: len(checking) == 2 and cc.admission.waiting == 1)
    assert cc.admission == AdmissionCounts(
        accepted=2, handshakes=0, in_progress=2, waiting=1, pauses=1
    )
    first = sorted(checking)[0]
    checking[first].set()  # one handshake ends: the waiting connection is taken
    await eventually(lambda: len(checking) == 3)
    assert cc.admission.accepted == 3 and cc.admission.waiting == 0
    for release in checking.values():
        release.set()
    gateways = await asyncio.wait_for(asyncio.gather(*starting), 10)
    assert sorted(cc.gateways()) == ["GW-0", "GW-1", "GW-2"]  # none refused
    assert (await gateways[2].heartbeat()).current_time == T0
    counts = cc.admission
    assert (counts.accepted, counts.handshakes, counts.in_progress) == (3, 3, 0)


async def test_a_connection_gone_before_its_upgrade_frees_its_place(make_cc, make_gw, places_kept):
    cc = await make_cc(max_handshakes=1, accept_rate=0)
    silent = socket.create_connection(("127.0.0.1", cc.port))
    try:
        await eventually(lambda: cc.admission.in_progress == 1)
        blocked = asyncio.ensure_future(make_gw(cc.url, "GW-after"))
        await eventually(lambda: cc.admission.waiting == 1)
        assert not blocked.done()
    finally:
        silent.close()  # no upgrade request ever came: its place is free again
    gw = await asyncio.wait_for(blocked, 10)
    assert gw.is_connected
    counts = cc.admission
    assert (counts.accepted, counts.handshakes, counts.in_progress) == (2, 1, 0)


async def test_a_silent_connection_holds_its_place_for_a_while_only(make_cc, make_gw, monkeypatch):
    monkeypatch.setattr(_pacing, "PLACE_TIMEOUT", 0.2)
    cc = await make_cc(max_handshakes=1, accept_rate=0)
    with socket.create_connection(("127.0.0.1", cc.port)):  # sends nothing, stays open
        gw = await make_gw(cc.url, "GW-next")  # admitted once the silent place expired
        assert gw.is_connected
        counts = cc.admission
        assert (counts.accepted, counts.handshakes, counts.in_progress) == (2, 1, 0)


async def test_a_failed_tls_handshake_frees_its_place(make_cc, make_gw, pki, places_kept):
    tls = server_tls_context(str(pki.server_cert), str(pki.server_key))
    cc = await make_cc(ssl=tls, max_handshakes=1, accept_rate=0)
    with socket.create_connection(("127.0.0.1", cc.port)) as plain:
        plain.sendall(b"GET /ntxcp/GW HTTP/1.1\r\n\r\n")  # not a TLS client hello
        await eventually(lambda: cc.admission.accepted == 1 and cc.admission.in_progress == 0)
    trust = client_tls_context(str(pki.ca_cert))
    gw = await make_gw(cc.url, "GW-tls", ssl=trust)
    assert gw.is_connected
    assert cc.admission.handshakes == 1


async def test_the_accept_rate_paces_and_no_connection_is_refused(make_cc, make_gw):
    cc = await make_cc(max_handshakes=0, accept_rate=20)  # a burst of 2, then 20 a second
    gateways = await asyncio.wait_for(
        asyncio.gather(*(make_gw(cc.url, f"GW-{n}") for n in range(6))), 10
    )
    assert all(gw.is_connected for gw in gateways)
    counts = cc.admission
    assert (counts.accepted, counts.handshakes) == (6, 6)
    assert counts.pauses >= 1  # the bucket ran dry at least once


async def test_admission_counts_are_zero_before_the_start() -> None:
    cc = ntxcp.ControlCenter(max_handshakes=5, accept_rate=50)
    assert cc.admission == AdmissionCounts()


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10, burst=2, clock=lambda: now[0])
    assert bucket.available() == 2 and bucket.wait() == 0.0
    bucket.take()
    bucket.take()
    assert bucket.available() == 0
    assert bucket.wait() == pytest.approx(0.1)
    now[0] = 0.25
    assert bucket.available() == 2  # never more than the burst
    unlimited = TokenBucket(0)
    unlimited.take()
    assert unlimited.available() > 0 and unlimited.wait() == 0.0


def test_the_pacer_counts_places_and_says_when_there_is_room_again() -> None:
    pacer = AdmissionPacer(max_handshakes=2, accept_rate=0)
    rooms: list[int] = []
    pacer.on_room = lambda: rooms.append(pacer.room())
    first, second = pacer.started(), pacer.started()
    assert pacer.room() == 0 and pacer.in_progress == 2
    first.release(decided=True)
    first.release(decided=True)  # a place is freed once, a decision counted once
    assert rooms == [1] and pacer.handshakes == 1 and pacer.in_progress == 1
    second.release(decided=False)  # gone before its upgrade: no handshake counted
    assert rooms == [1] and pacer.handshakes == 1 and pacer.in_progress == 0
    with pytest.raises(ValueError):
        AdmissionPacer(max_handshakes=-1)


async def test_a_decision_after_the_place_expired_is_still_counted() -> None:
    pacer = AdmissionPacer(max_handshakes=1, accept_rate=0)
    slot = pacer.started()
    slot.expire_after(0)
    await eventually(lambda: pacer.in_progress == 0)
    slot.release(decided=True)
    assert (pacer.in_progress, pacer.handshakes) == (0, 1)
