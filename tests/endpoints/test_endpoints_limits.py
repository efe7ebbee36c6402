"""Limits end to end: message size, fragments, bad-message rate, half-open connections.

Spec §1 (max message size → close 1009), RFC 6455 fragmentation, spec §2.2 rule 7
(bad messages per minute → close 1008).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from endpoint_helpers import (
    G2C_REPLIES,
    GW,
    T0,
    WAIT,
    Recording,
    call_frame,
    eventually,
    next_error,
    raw_connect,
)

from ntxcp import DisconnectedError

pytestmark = pytest.mark.timeout(30)

LIMIT = 1024


def data_transfer_of_size(size: int, unique_id: str = "1") -> str:
    """A DataTransfer CALL whose JSON text is exactly ``size`` bytes."""
    empty = json.dumps(call_frame(unique_id, "DataTransfer", {"vendorId": "V", "data": ""}))
    text = json.dumps(
        call_frame(unique_id, "DataTransfer", {"vendorId": "V", "data": "x" * (size - len(empty))})
    )
    assert len(text.encode()) == size
    return text


# --- message size (spec §1) ------------------------------------------------------------------


async def test_oversized_message_closes_with_1009(make_cc):
    cc = await make_cc(max_message_size=LIMIT)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    gone: list[str] = []
    cc.set_gateway_disconnected_handler(lambda connection: gone.append(connection.id))
    peer = await raw_connect(f"{cc.url}/{GW}")
    peer.send_text(data_transfer_of_size(LIMIT))  # exactly the limit: fine
    answer = await peer.receive()
    assert answer[:2] == [3, "1"]
    peer.send_text(data_transfer_of_size(LIMIT + 1, "2"))
    assert await peer.wait_closed() == 1009
    await eventually(lambda: gone == [GW])


async def test_oversized_message_from_gateway_fails_its_call(make_cc, make_gw):
    cc = await make_cc(max_message_size=LIMIT)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    gw = await make_gw(cc.url)
    down = asyncio.Event()
    gw.set_disconnected_handler(down.set)
    assert (await gw.data_transfer("V", data="small")).data == "pong"
    with pytest.raises(DisconnectedError):
        await gw.data_transfer("V", data="x" * 2 * LIMIT, timeout=5)
    await asyncio.wait_for(down.wait(), WAIT)
    assert not gw.is_connected


async def test_gateway_closes_on_oversized_message_with_1009(make_gw, raw_server):
    gw = await make_gw(raw_server.url, max_message_size=LIMIT)
    down = asyncio.Event()
    gw.set_disconnected_handler(down.set)
    peer = await raw_server.accept()
    peer.send_text(data_transfer_of_size(LIMIT + 100))
    assert await peer.wait_closed() == 1009
    await asyncio.wait_for(down.wait(), WAIT)


# --- fragmented messages (RFC 6455 §5.4) ------------------------------------------------------


async def test_fragmented_message_is_reassembled(make_cc):
    cc = await make_cc(max_message_size=LIMIT)
    recording = Recording(control_center=True, replies=G2C_REPLIES)
    recording.install(cc)
    peer = await raw_connect(f"{cc.url}/{GW}")
    text = json.dumps(call_frame("frag", "BootNotification", {"dingxGatewayModel": "DX-Frag"}))
    parts = [text[:5], text[5:20], text[20:]]
    peer.send_text(parts[0], fin=False)
    peer.send_text(parts[1], fin=False, first=False)
    peer.send_text(parts[2], fin=True, first=False)
    # nothing handled before the last fragment: a part taken for a message would have
    # been answered (FormationViolation) before the CALLRESULT
    answer = await peer.receive()
    assert answer[:2] == [3, "frag"]
    assert answer[2]["status"] == "Accepted"
    assert recording.actions() == ["BootNotification"]
    assert recording.received[0].request.dingx_gateway_model == "DX-Frag"
    # many fragments, together just under the limit: still one message
    text = data_transfer_of_size(LIMIT, "many")
    chunks = [text[i : i + 100] for i in range(0, len(text), 100)]
    for n, chunk in enumerate(chunks):
        peer.send_text(chunk, fin=n == len(chunks) - 1, first=n == 0)
    assert (await peer.receive())[:2] == [3, "many"]


async def test_fragments_over_the_limit_close_with_1009(make_cc):
    cc = await make_cc(max_message_size=LIMIT)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    peer = await raw_connect(f"{cc.url}/{GW}")
    text = data_transfer_of_size(LIMIT + 200)
    half = len(text) // 2  # each fragment is under the limit, the message is not
    peer.send_text(text[:half], fin=False)
    peer.send_text(text[half:], fin=True, first=False)
    assert await peer.wait_closed() == 1009


async def test_interleaved_fragments_close_with_1002(make_cc):
    cc = await make_cc()
    peer = await raw_connect(f"{cc.url}/{GW}")
    peer.send_text('[2,"1",', fin=False)
    peer.send_text('[2,"2","Heartbeat",{}]')  # a new message before the first ended
    assert await peer.wait_closed() == 1002


# --- bad-message limit (spec §2.2 rule 7) -------------------------------------------------------


async def test_bad_message_limit_closes_with_1008(make_cc):
    cc = await make_cc(bad_message_limit=50)
    peer = await raw_connect(f"{cc.url}/{GW}")
    for n in range(60):
        peer.send_text(f"garbage #{n}")
    assert await peer.wait_closed() == 1008
    answers = []
    while not peer.messages.empty():
        answers.append(peer.messages.get_nowait())
    assert len(answers) == 50  # every bad message within the limit was answered
    for answer in answers:
        assert answer[:3] == [4, "-1", "FormationViolation"]
        assert isinstance(answer[3], str) and answer[4] == {}
    report = await next_error(cc, "bad-message-limit")
    assert report.gateway_id == GW
    assert cc.error_stream.reported >= 51


async def test_bad_messages_within_the_limit_keep_the_connection(make_cc):
    cc = await make_cc(bad_message_limit=50)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    peer = await raw_connect(f"{cc.url}/{GW}")
    for n in range(50):
        peer.send_text("{" if n % 2 else f'[2, "id{n}", "Heartbeat", {{}}, "extra"]')
    answers = [await peer.receive() for _ in range(50)]
    assert {a[2] for a in answers} == {"FormationViolation"}
    assert {a[1] for a in answers} - {"-1"} == {f"id{n}" for n in range(0, 50, 2)}
    peer.send_json(call_frame("ok", "Heartbeat"))
    assert (await peer.receive())[:2] == [3, "ok"]
    assert not peer.disconnected.is_set()


async def test_bad_message_limit_can_be_disabled(make_cc):
    cc = await make_cc(bad_message_limit=None)
    peer = await raw_connect(f"{cc.url}/{GW}")
    for _ in range(120):
        peer.send_text("[]")
    answers = [await peer.receive() for _ in range(120)]
    assert all(a[:3] == [4, "-1", "FormationViolation"] for a in answers)
    assert not peer.disconnected.is_set()


# --- connections that never finish their upgrade -----------------------------------------------


async def test_stop_drops_connections_still_in_their_handshake(make_cc):
    cc = await make_cc(handshake_timeout=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", cc.port)
    writer.write(b"GET /ntxcp/GW-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    await writer.drain()
    # a later connection upgraded: the listener accepted the first one before it
    await raw_connect(f"{cc.url}/GW-LATER")
    await eventually(lambda: cc.is_connected("GW-LATER"))
    await cc.stop()
    # dropped, not left to the 60 s handshake timeout
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()


async def test_handshake_timeout(make_cc, make_gw):
    cc = await make_cc(handshake_timeout=0.2)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    reader, writer = await asyncio.open_connection("127.0.0.1", cc.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # silent client dropped
    writer.close()
    gw = await make_gw(cc.url)  # a real gateway is not affected
    assert (await gw.heartbeat()).current_time == T0
