"""Handshake rules end to end (spec §1): subprotocol, path and id, Basic auth, validation hook.

Every refusal happens before the upgrade with an HTTP status, and is reported on the
control center's error stream as ``handshake-refused``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from endpoint_helpers import (
    G2C_REPLIES,
    GW,
    T0,
    Recording,
    basic_auth,
    eventually,
    handshake_status,
    raw_connect,
    reports,
)
from picows import WSHandshakeError

import ntxcp
from ntxcp import HandshakeInfo, HandshakeRefusedError
from ntxcp.transport import ClientOptions, connect
from ntxcp.transport._gate import AuthGate
from ntxcp.transport._picows import _Upgrade

pytestmark = pytest.mark.timeout(30)


class NoHandler:
    """A link handler for connections that are expected to be refused."""

    def on_open(self, link: Any) -> None:
        self.link = link

    def on_message(self, data: bytes) -> None:
        pass

    def on_close(self, code: int, reason: str) -> None:
        pass


def refusals(cc: ntxcp.ControlCenter) -> list[ntxcp.EndpointError]:
    return reports(cc, "handshake-refused")


# --- subprotocol ---------------------------------------------------------------------------


async def test_subprotocol_is_selected(make_cc):
    cc = await make_cc()
    peer = await raw_connect(f"{cc.url}/{GW}", subprotocol="ocpp1.6, ntxcp1.0")
    assert peer.transport is not None
    assert peer.transport.response.headers["Sec-WebSocket-Protocol"] == "ntxcp1.0"
    await eventually(lambda: cc.is_connected(GW))
    connection = cc.connection(GW)
    assert connection is not None and connection.subprotocol == "ntxcp1.0"
    peer.close()


async def test_other_subprotocol_only_is_refused_with_400(make_cc):
    cc = await make_cc()
    assert await handshake_status(f"{cc.url}/{GW}", subprotocol="ocpp1.6") == 400
    with pytest.raises(HandshakeRefusedError) as caught:
        await connect(f"{cc.url}/{GW}", ClientOptions(subprotocols=("ocpp1.6",)), NoHandler())
    assert caught.value.status == 400
    assert caught.value.permanent
    assert "ntxcp1.0" in caught.value.reason
    found = refusals(cc)
    assert len(found) == 2
    assert all(r.gateway_id == GW and "400" in str(r) for r in found)
    assert cc.gateways() == []


async def test_missing_subprotocol_refused_by_default(make_cc):
    cc = await make_cc()
    assert await handshake_status(f"{cc.url}/{GW}", subprotocol=None) == 400
    with pytest.raises(HandshakeRefusedError) as caught:
        await connect(f"{cc.url}/{GW}", ClientOptions(subprotocols=()), NoHandler())
    assert caught.value.status == 400
    assert len(refusals(cc)) == 2


async def test_missing_subprotocol_accepted_when_lenient(make_cc):
    cc = await make_cc(accept_missing_subprotocol=True)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    peer = await raw_connect(f"{cc.url}/{GW}", subprotocol=None)
    assert peer.transport is not None
    assert "Sec-WebSocket-Protocol" not in peer.transport.response.headers
    await eventually(lambda: cc.is_connected(GW))
    connection = cc.connection(GW)
    assert connection is not None and connection.subprotocol is None
    peer.send_json([2, "1", "Heartbeat", {}])
    assert (await peer.receive())[:2] == [3, "1"]
    # offering only another protocol is still refused
    assert await handshake_status(f"{cc.url}/other", subprotocol="ocpp1.6") == 400
    assert refusals(cc) != []


# --- path and gateway id -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/ntxcp", 404, id="no-id"),
        pytest.param("/ntxcp/", 404, id="empty-id"),
        pytest.param("/other/GW-1", 404, id="other-base-path"),
        pytest.param("/ntxcp/a/b", 404, id="two-segments"),
        pytest.param("/", 404, id="root"),
        pytest.param("/ntxcp/" + "x" * 49, 400, id="49-chars"),
        pytest.param("/ntxcp/caf%C3%A9", 400, id="non-ascii-percent-encoded"),
        pytest.param("/ntxcp/%FF%FE", 400, id="not-utf8"),
        pytest.param("/ntxcp/GW%2F1", 400, id="encoded-slash"),
        pytest.param("/ntxcp/GW%0A1", 400, id="control-char"),
        pytest.param("/ntxcp/" + "x" * 48, 101, id="48-chars"),
        pytest.param("/ntxcp/GW-1?site=7", 101, id="query-ignored"),
    ],
)
async def test_path_and_id_rules(make_cc, path, status):
    cc = await make_cc()
    base = cc.url.removesuffix("/ntxcp")
    assert await handshake_status(base + path) == status
    found = refusals(cc)
    if status == 101:
        assert found == []
    else:
        assert len(found) == 1
        assert str(status) in str(found[0])


async def test_percent_encoded_id_is_decoded(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    peer = await raw_connect(f"{cc.url}/GW%201")
    await eventually(lambda: cc.gateways() == ["GW 1"])
    peer.close()
    await eventually(lambda: cc.gateways() == [])
    # the gateway quotes its id in the URL; the control center sees it decoded
    gw = await make_gw(cc.url, "Site 7 | GW#2")
    assert gw.url == f"{cc.url}/Site%207%20%7C%20GW%232"
    await eventually(lambda: cc.gateways() == ["Site 7 | GW#2"])
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    await gw.heartbeat()
    assert recording.received[0].gateway_id == "Site 7 | GW#2"


async def test_a_custom_base_path(make_cc, make_gw):
    cc = await make_cc(path="/ocpp/v1/")
    assert cc.path == "/ocpp/v1"
    assert cc.url.endswith("/ocpp/v1")
    gw = await make_gw(cc.url)
    assert gw.is_connected
    assert await handshake_status(cc.url.removesuffix("/ocpp/v1") + "/ntxcp/GW-9") == 404


def test_gateway_refuses_an_invalid_id_locally():
    for bad in ("", "x" * 49, "a/b", "café", "tab\there"):
        with pytest.raises(ValueError):
            ntxcp.Gateway(bad)


# --- HTTP Basic auth (profile 1) ---------------------------------------------------------


async def test_basic_auth(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    checked: list[tuple[str, str]] = []

    def check(gateway_id: str, password: str) -> bool:
        checked.append((gateway_id, password))
        return password == f"secret of {gateway_id}"

    cc.set_basic_auth_handler(check)
    gw = await make_gw(cc.url, password=f"secret of {GW}")
    assert (await gw.heartbeat()).current_time == T0
    assert checked == [(GW, f"secret of {GW}")]
    assert refusals(cc) == []

    with pytest.raises(HandshakeRefusedError) as caught:  # wrong password
        await make_gw(cc.url, "GW-2", password="guess")
    assert caught.value.status == 401
    assert caught.value.permanent
    with pytest.raises(HandshakeRefusedError) as caught:  # no credentials
        await make_gw(cc.url, "GW-3")
    assert caught.value.status == 401
    # username is not the gateway id, even with the right password of that user
    headers = {"Authorization": basic_auth("GW-4", "secret of GW-4")}
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(cc.url, "GW-5", extra_headers=headers)
    assert caught.value.status == 401
    assert await handshake_status(f"{cc.url}/GW-5", headers=headers) == 401
    # the right password of the gateway in the path, under another username (spec §1:
    # the username is the gateway id): refused without asking the password check
    headers = {"Authorization": basic_auth("someone-else", "secret of GW-7")}
    assert await handshake_status(f"{cc.url}/GW-7", headers=headers) == 401
    # a malformed header counts as missing
    assert await handshake_status(f"{cc.url}/GW-6", headers={"Authorization": "Basic !!"}) == 401
    found = refusals(cc)
    assert [r.gateway_id for r in found] == ["GW-2", "GW-3", "GW-5", "GW-5", "GW-7", "GW-6"]
    assert all("401" in str(r) for r in found)
    assert cc.gateways() == [GW]
    assert ("GW-4", "secret of GW-4") not in checked
    assert ("GW-7", "secret of GW-7") not in checked


# --- Basic auth checked by a coroutine (the upgrade waits, nothing else does) --------------


async def test_async_basic_auth_waits_without_blocking_others(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    release = asyncio.Event()
    checking: list[str] = []

    async def check(gateway_id: str, password: str, info: HandshakeInfo) -> bool:
        checking.append(gateway_id)
        if gateway_id == "GW-slow":
            await release.wait()
        return password == f"secret of {gateway_id}"

    cc.set_async_basic_auth_handler(check)
    first = await make_gw(cc.url, password=f"secret of {GW}")
    slow = asyncio.ensure_future(make_gw(cc.url, "GW-slow", password="secret of GW-slow"))
    await eventually(lambda: "GW-slow" in checking)
    # While the check of GW-slow is pending, the loop serves everyone else.
    for _ in range(3):
        assert (await first.heartbeat()).current_time == T0
    assert await handshake_status(f"{cc.url}/GW-2", headers=_auth("GW-2", "guess")) == 401
    assert not slow.done()
    release.set()
    gw = await asyncio.wait_for(slow, 5)
    assert (await gw.heartbeat()).current_time == T0
    assert sorted(cc.gateways()) == [GW, "GW-slow"]
    assert await handshake_status(f"{cc.url}/GW-3") == 401  # no credentials: no check
    assert await handshake_status(f"{cc.url}/GW-4", headers=_auth("GW-5", "x")) == 401
    assert "GW-3" not in checking and "GW-4" not in checking
    # The sync hook replaces the async one, even on a running control center.
    cc.set_basic_auth_handler(lambda gateway_id, password: password == "sync")
    assert await handshake_status(f"{cc.url}/GW-6", headers=_auth("GW-6", "sync")) == 101
    assert "GW-6" not in checking


async def test_async_basic_auth_refusals(make_cc):
    cc = await make_cc(handshake_timeout=0.5)

    async def check(gateway_id: str, password: str, info: HandshakeInfo) -> bool:
        if gateway_id == "GW-limited":
            raise ntxcp.transport.Refusal(429, "too many attempts")
        if gateway_id == "GW-broken":
            raise RuntimeError("database gone")
        if gateway_id == "GW-hang":
            await asyncio.sleep(60)
        return True

    cc.set_async_basic_auth_handler(check)
    assert await handshake_status(f"{cc.url}/GW-limited", headers=_auth("GW-limited", "x")) == 429
    assert await handshake_status(f"{cc.url}/GW-broken", headers=_auth("GW-broken", "x")) == 500
    # the handshake timeout covers the check: the connection is dropped, nothing hangs
    try:  # picows returns normally when the server drops the connection mid-upgrade
        peer = await raw_connect(f"{cc.url}/GW-hang", headers=_auth("GW-hang", "x"))
    except (ConnectionError, TimeoutError, WSHandshakeError):
        pass
    else:
        assert not peer.connected.is_set()
    # the transport rules of spec §1 still come first, with their own answers
    assert await handshake_status(f"{cc.url}/GW-ok", headers=_auth("GW-ok", "x")) == 101
    assert await handshake_status(f"{cc.url}/GW-ok", subprotocol="other") == 400
    assert await handshake_status(cc.url + "/a%2Fb", headers=_auth("a/b", "x")) == 400
    found = [str(r) for r in reports(cc, "handshake-refused")]
    assert any("429" in r for r in found) and any("500" in r for r in found)
    cc.set_async_basic_auth_handler(None)  # off again: no credentials needed
    assert await handshake_status(f"{cc.url}/GW-7") == 101


def _auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": basic_auth(user, password)}


# --- the validation hook (spec §1 "connection check") --------------------------------------


async def test_validation_hook_gets_handshake_info(make_cc, make_gw):
    cc = await make_cc()
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    seen: list[tuple[str, HandshakeInfo]] = []

    def validate(gateway_id: str, info: HandshakeInfo) -> bool:
        seen.append((gateway_id, info))
        return info.headers.get("x-site") == "Berlin"

    cc.set_new_gateway_validation_handler(validate)
    cc.set_basic_auth_handler(lambda gateway_id, password: password == "pw")
    gw = await make_gw(cc.url, password="pw", extra_headers={"X-Site": "Berlin"})
    assert gw.is_connected
    gateway_id, info = seen[0]
    assert gateway_id == GW
    assert isinstance(info, HandshakeInfo)
    assert info.gateway_id == GW
    assert info.path == f"/ntxcp/{GW}"
    assert info.headers["X-Site"] == "Berlin"
    assert info.headers["x-site"] == "Berlin"  # case-insensitive
    assert info.remote_address is not None and info.remote_address[0] == "127.0.0.1"
    connection = cc.connection(GW)
    assert connection is not None and connection.remote_address == info.remote_address
    assert info.subprotocol == "ntxcp1.0"
    assert info.credentials == (GW, "pw")
    assert info.tls is False
    assert info.peer_certificate is None and info.certificate_common_name is None
    assert refusals(cc) == []


async def test_validation_hook_refuses_with_401_and_500(make_cc, make_gw):
    cc = await make_cc()
    connected: list[str] = []
    cc.set_new_gateway_handler(lambda connection: connected.append(connection.id))

    def validate(gateway_id: str, info: HandshakeInfo) -> bool:
        if gateway_id == "broken":
            raise RuntimeError("database down")
        return gateway_id.startswith("DX-")

    cc.set_new_gateway_validation_handler(validate)
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(cc.url, "unknown")
    assert caught.value.status == 401
    with pytest.raises(HandshakeRefusedError) as caught:
        await make_gw(cc.url, "broken")
    assert caught.value.status == 500
    assert not caught.value.permanent
    gw = await make_gw(cc.url, "DX-1")
    assert gw.is_connected
    await eventually(lambda: connected == ["DX-1"])
    found = refusals(cc)
    assert [(r.gateway_id, "401" in str(r), "500" in str(r)) for r in found] == [
        ("unknown", True, False),
        ("broken", False, True),
    ]
    # removing the hook lets everyone in again
    cc.set_new_gateway_validation_handler(None)
    assert (await make_gw(cc.url, "unknown")).is_connected


async def test_refusals_are_streamed(make_cc):
    cc = await make_cc()
    cc.set_new_gateway_validation_handler(lambda gateway_id, info: False)
    got: list[ntxcp.EndpointError] = []

    async def read() -> None:
        async for error in cc.errors():
            got.append(error)
            if len(got) == 3:
                return

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0)
    assert await handshake_status(f"{cc.url}/a") == 401
    assert await handshake_status(f"{cc.url}/a", subprotocol="x") == 400
    assert await handshake_status(cc.url.removesuffix("/ntxcp") + "/elsewhere") == 404
    await asyncio.wait_for(reader, 2)
    assert [e.kind for e in got] == ["handshake-refused"] * 3
    assert [e.gateway_id for e in got] == ["a", "a", None]


# --- refused connections leave nothing behind (issue: hostile peers, memory) -------------


def _live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def test_refused_handshakes_leave_no_reference_cycles(make_cc):
    """A refused upgrade is freed by reference counting, not left for the collector.

    A refusal kept with its traceback made a cycle (the traceback's frame holds the
    connection's objects, which hold the refusal): every wrong password left its
    connection's protocol objects until a full collection, which the service holds back
    during storms — a wrong-password flood kept megabytes after it ended.
    """
    cc = await make_cc()

    async def check(gateway_id: str, password: str, info: HandshakeInfo) -> bool:
        if password == "limited":
            raise ntxcp.transport.Refusal(429, "too many attempts")
        return password == "right"

    cc.set_async_basic_auth_handler(check)
    gc.collect()
    gc.disable()  # what is left now is left for good, unless reference counting frees it
    try:
        for i in range(10):
            assert await handshake_status(f"{cc.url}/GW-{i}", headers=_auth(f"GW-{i}", "no")) == 401
            assert (
                await handshake_status(f"{cc.url}/GW-{i}", headers=_auth(f"GW-{i}", "limited"))
                == 429
            )
            assert await handshake_status(f"{cc.url}/GW-{i}", subprotocol="other") == 400
        assert len(reports(cc, "handshake-refused")) == 30
        await eventually(lambda: _live(AuthGate) == 0 and _live(_Upgrade) == 0)
    finally:
        gc.enable()
