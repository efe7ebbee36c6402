"""Null server: the harness ceiling.

Answers every CALL with a fixed, pre-encoded CALLRESULT (only the uniqueId is copied
in), does no JSON parsing and no validation. It accepts both the ``ntxcp1.0`` and the
``ocpp1.6`` subprotocols on any path. With ``--w4-gateways N`` it also plays the server
side of W4: once N gateways are connected it sends a pre-encoded GetConfiguration CALL
to each of them, one outstanding per gateway, and counts the answers.

Prints ``READY <port>`` once listening, and JSON event lines (``window_start``,
``window_end``, ``result``) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time

import picows
import uvloop

SUBPROTOCOLS = (b"ntxcp1.0", b"ocpp1.6")
TIME = b'"2026-01-01T00:00:00.000Z"'
ANSWERS = {
    b'"MeterValues"': b"{}",
    b'"Heartbeat"': b'{"currentTime":' + TIME + b"}",
    b'"BootNotification"': b'{"status":"Accepted","currentTime":' + TIME + b',"interval":300}',
    b'"StatusNotification"': b"{}",
}
GETCONF_HEAD = b'[2,"'
GETCONF_TAIL = b'","GetConfiguration",{}]'


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


class State:
    def __init__(self) -> None:
        self.connected: set[NullListener] = set()
        self.w4_target = 0
        self.w4_started = asyncio.Event()
        self.counting = False
        self.answers = 0
        self.running = False


class NullListener(picows.WSListener):
    __slots__ = ("seq", "state", "transport")

    def __init__(self, state: State) -> None:
        self.state = state
        self.transport: picows.WSTransport | None = None
        self.seq = 0

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        st = self.state
        st.connected.add(self)
        if st.w4_target and len(st.connected) >= st.w4_target:
            st.w4_started.set()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.state.connected.discard(self)

    def send_getconf(self) -> None:
        self.seq += 1
        assert self.transport is not None
        self.transport.send(
            picows.WSMsgType.TEXT, GETCONF_HEAD + str(self.seq).encode() + GETCONF_TAIL
        )

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt == picows.WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            q1 = data.find(b'"')
            q2 = data.find(b'"', q1 + 1)
            if q1 < 0 or q2 < 0:
                return
            kind = data[1:q1].strip(b" ,")
            if kind == b"2":
                act_start = data.find(b'"', q2 + 1)
                action = data[act_start : data.find(b'"', act_start + 1) + 1]
                body = ANSWERS.get(action, b"{}")
                msg = b'[3,"' + data[q1 + 1 : q2] + b'",' + body + b"]"
                transport.send(picows.WSMsgType.TEXT, msg)
            elif kind == b"3":
                st = self.state
                if st.counting:
                    st.answers += 1
                if st.running:
                    self.send_getconf()
        elif mt == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def pick_subprotocol(request: picows.WSUpgradeRequest) -> bytes | None:
    offered = request.headers.get("Sec-WebSocket-Protocol")
    if not offered:
        return None
    names = [p.strip().encode() for p in str(offered).split(",")]
    for name in SUBPROTOCOLS:
        if name in names:
            return name
    return None


async def run_w4(state: State, warmup: float, duration: float, wait: float) -> None:
    try:
        await asyncio.wait_for(state.w4_started.wait(), wait)
    except TimeoutError:
        emit("result", error=f"only {len(state.connected)} of {state.w4_target} connected")
        return
    state.running = True
    for lis in list(state.connected):
        lis.send_getconf()
    await asyncio.sleep(warmup)
    state.answers = 0
    state.counting = True
    t0 = time.monotonic()
    emit("window_start")
    await asyncio.sleep(duration)
    state.counting = False
    elapsed = time.monotonic() - t0
    emit("window_end")
    state.running = False
    n = state.answers
    emit("result", calls=n, seconds=elapsed, calls_per_s=n / elapsed, gateways=len(state.connected))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--w4-gateways", type=int, default=0)
    ap.add_argument("--w4-warmup", type=float, default=1.0)
    ap.add_argument("--w4-duration", type=float, default=10.0)
    ap.add_argument("--w4-wait", type=float, default=60.0)
    ap.add_argument("--max-runtime", type=float, default=3600.0)
    args = ap.parse_args()
    state = State()
    state.w4_target = args.w4_gateways

    def factory(request: picows.WSUpgradeRequest) -> object:
        proto = pick_subprotocol(request)
        listener = NullListener(state)
        if proto is None:
            return listener
        response = picows.WSUpgradeResponse.create_101_response(
            extra_headers={"Sec-WebSocket-Protocol": proto.decode()}
        )
        return picows.WSUpgradeResponseWithListener(response, listener)

    server = await picows.ws_create_server(
        factory, args.host, args.port, backlog=4096, read_buffer_init_size=4096
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    tasks = []
    if args.w4_gateways:
        tasks.append(
            asyncio.ensure_future(run_w4(state, args.w4_warmup, args.w4_duration, args.w4_wait))
        )
    await asyncio.sleep(args.max_runtime)
    server.close()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gc.disable()  # the null server makes no reference cycles; no collector pauses
    uvloop.run(main())
