"""The size limit of a WebSocket upgrade request head (docs/resilience.md §4).

The control center reads at most 16 KiB of request head (request line and headers up
to the blank line, the WebSocket library's limit). A larger head is dropped at once,
long before ``handshake_timeout``, whether it comes in one piece or trickles; the
listener keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from endpoint_helpers import G2C_REPLIES, GW, T0, WAIT, Recording, eventually

from ntxcp.transport import SUBPROTOCOL

pytestmark = pytest.mark.timeout(30)

HEAD_LIMIT = 16 * 1024  # bytes of request head before the blank line


def upgrade_head(gateway_id: str, size: int) -> bytes:
    """A valid upgrade request head of exactly ``size`` bytes, blank line included."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET /ntxcp/{gateway_id} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
        "X-Padding: ",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    padding = size - len(head)
    assert padding >= 0
    lines[-1] += "p" * padding
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    assert len(head) == size
    return head


async def answer_to(port: int, head: bytes, pieces: int = 1) -> bytes:
    """Send ``head`` (in ``pieces`` writes) and read the answer's status line.

    Returns:
        The first line of the HTTP answer, ``b""`` when the connection was closed
        without one, or a note when neither happened within ``WAIT``.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        step = -(-len(head) // pieces)
        for start in range(0, len(head), step):
            writer.write(head[start : start + step])
            await writer.drain()
        return await asyncio.wait_for(reader.readline(), WAIT)
    except ConnectionError:  # closed while we were still writing, or reset
        return b""
    except TimeoutError:
        return f"(neither an answer nor a close within {WAIT} s)".encode()
    finally:
        writer.close()


async def test_a_head_just_under_the_limit_is_upgraded(make_cc):
    cc = await make_cc()
    status = await answer_to(cc.port, upgrade_head("GW-BIG-HEAD", HEAD_LIMIT - 64))
    assert status.startswith(b"HTTP/1.1 101 "), status
    await eventually(lambda: cc.is_connected("GW-BIG-HEAD"))


@pytest.mark.parametrize("pieces", [1, 8], ids=["at-once", "trickled"])
@pytest.mark.parametrize("size", [HEAD_LIMIT + 4, 4 * HEAD_LIMIT], ids=["just-over", "4x"])
async def test_a_head_over_the_limit_is_dropped_at_once(make_cc, make_gw, size, pieces):
    # handshake_timeout far beyond WAIT: a drop within WAIT is the size rule, not a timeout
    cc = await make_cc(handshake_timeout=60)
    Recording(control_center=True, replies=G2C_REPLIES).install(cc)
    assert await answer_to(cc.port, upgrade_head("GW-HUGE-HEAD", size), pieces) == b""
    assert not cc.is_connected("GW-HUGE-HEAD")
    # the listener keeps serving others
    gw = await make_gw(cc.url)
    assert (await gw.heartbeat(timeout=WAIT)).current_time == T0
    assert cc.gateways() == [GW]
