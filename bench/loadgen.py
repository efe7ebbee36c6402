"""Load generator of the ntxcp benchmark suite (picows on uvloop).

It plays the gateways (charge points). Every payload is pre-encoded; only the uniqueId
changes. Answers are checked cheaply (message type and uniqueId) and never parsed as
JSON, so that the generator spends as little CPU per call as possible.

Modes:
  calls   N gateways boot, then send MeterValues back to back (one outstanding per
          connection): a warm-up, then a measured window.                   (W1, W2)
  idle    one heartbeat gateway boots, then N idle gateways boot and stay connected;
          during the hold the heartbeat gateway sends a Heartbeat every --hb-ms.  (W3)
  answer  N gateways boot and answer every GetConfiguration CALL of the server. (W4)

Output: one JSON object per line on stdout: events (``connected``, ``window_start``,
``window_end``, ``baseline``, ``hold_start``, ``hold_end``) and a final ``result``.
Every wait is bounded; ``--max-runtime`` ends the process whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import sys
import time
from array import array
from collections.abc import Callable

import picows
import uvloop

TEXT = picows.WSMsgType.TEXT
CLOSE = picows.WSMsgType.CLOSE
TS = b'"2026-01-01T00:00:00.000Z"'
SAMPLED = (
    b'{"value":"12345.6","context":"Sample.Periodic",'
    b'"measurand":"Energy.Active.Import.Register","unit":"Wh"},'
    b'{"value":"7200","context":"Sample.Periodic","measurand":"Power.Active.Import","unit":"W"},'
    b'{"value":"31.3","context":"Sample.Periodic","measurand":"Current.Import",'
    b'"phase":"L1","unit":"A"},'
    b'{"value":"230.1","context":"Sample.Periodic","measurand":"Voltage",'
    b'"phase":"L1-N","unit":"V"}'
)
GETCONF_ANSWER = (
    b'{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"300"},'
    b'{"key":"MeterValueSampleInterval","readonly":false,"value":"60"}],"unknownKey":[]}'
)
FLAVORS = {
    # subprotocol, BootNotification payload, MeterValues payload
    "ntxcp": (
        "ntxcp1.0",
        b'{"dingxGatewayModel":"BenchGW","dingxGatewayVendor":"Bench"}',
        b'{"serviceId":1,"meterValue":[{"timestamp":'
        + TS
        + b',"sampledValue":['
        + SAMPLED
        + b"]}]}",
    ),
    "ocpp16": (
        "ocpp1.6",
        b'{"chargePointModel":"BenchGW","chargePointVendor":"Bench"}',
        b'{"connectorId":1,"meterValue":[{"timestamp":'
        + TS
        + b',"sampledValue":['
        + SAMPLED
        + b"]}]}",
    ),
}
MAX_SAMPLES = 4_000_000
now = time.perf_counter


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Stats:
    def __init__(self) -> None:
        self.samples = array("d")
        self.measuring = False
        self.calls = 0
        self.call_errors = 0
        self.timeouts = 0
        self.unexpected_closes = 0
        self.answered = 0

    def record(self, seconds: float) -> None:
        self.calls += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(seconds)

    def counters(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "call_errors": self.call_errors,
            "timeouts": self.timeouts,
            "unexpected_closes": self.unexpected_closes,
            "answered": self.answered,
        }

    def latency(self) -> dict[str, float | int | None]:
        s = sorted(self.samples)
        n = len(s)

        def pct(p: float) -> float | None:
            if not n:
                return None
            i = min(n - 1, max(0, math.ceil(p / 100.0 * n) - 1))
            return s[i] * 1000.0

        return {
            "samples": n,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "p999_ms": pct(99.9),
            "max_ms": s[-1] * 1000.0 if n else None,
        }


STATS = Stats()
OnAnswer = Callable[["Conn", float, bool], None]


class Conn(picows.WSListener):
    """One gateway: at most one outstanding CALL."""

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.seq = 0
        self.pending: bytes | None = None
        self.sent_at = 0.0
        self.on_answer: OnAnswer | None = None
        self.transport: picows.WSTransport | None = None
        self.open = False
        self.closing = False
        self.id_prefix = b'"%x.' % idx

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.open = True

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self.open and not self.closing:
            STATS.unexpected_closes += 1
        self.open = False

    def call(self, action: bytes, body: bytes) -> None:
        self.seq += 1
        pid = self.id_prefix + b'%x"' % self.seq
        self.pending = pid
        self.sent_at = now()
        assert self.transport is not None
        self.transport.send(TEXT, b"[2," + pid + b',"' + action + b'",' + body + b"]")

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt == TEXT:
            data = frame.get_payload_as_bytes()
            k = 1
            while data[k] == 32:
                k += 1
            kind = data[k]
            if kind == 50:  # b"2": a CALL of the server (W4)
                q1 = data.find(b'"', k)
                q2 = data.find(b'"', q1 + 1)
                transport.send(TEXT, b"[3," + data[q1 : q2 + 1] + b"," + GETCONF_ANSWER + b"]")
                STATS.answered += 1
                return
            pid = self.pending
            if pid is None or data.find(pid, k) < 0:
                return  # late or unknown answer
            elapsed = now() - self.sent_at
            self.pending = None
            ok = kind == 51  # b"3"
            if not ok:
                STATS.call_errors += 1
            if self.on_answer is not None:
                self.on_answer(self, elapsed, ok)
        elif mt == CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and self.open:
            self.transport.disconnect()


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.subprotocol, self.boot, self.meter = FLAVORS[args.flavor]

    async def open_one(self, idx: int) -> tuple[Conn, bool]:
        a = self.args
        conn = Conn(idx)
        kwargs: dict[str, object] = {}
        if a.source_ips > 1:
            kwargs["local_addr"] = (f"127.0.0.{1 + idx % a.source_ips}", 0)
        try:
            await asyncio.wait_for(
                picows.ws_connect(
                    lambda: conn,
                    f"{a.url}/{a.prefix}-{idx}",
                    extra_headers={"Sec-WebSocket-Protocol": self.subprotocol},
                    websocket_handshake_timeout=a.call_timeout,
                    read_buffer_init_size=a.read_buffer,
                    **kwargs,
                ),
                a.call_timeout,
            )
        except (OSError, TimeoutError, picows.WSError):
            return conn, False
        booted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_boot(c: Conn, _s: float, ok: bool) -> None:
            if not booted.done():
                booted.set_result(ok)

        conn.on_answer = on_boot
        conn.call(b"BootNotification", self.boot)
        try:
            ok = await asyncio.wait_for(booted, a.call_timeout)
        except TimeoutError:
            ok = False
        conn.on_answer = None
        return conn, ok

    async def open_all(self, first: int, count: int) -> tuple[list[Conn], int, int]:
        conns: list[Conn] = []
        ok = failed = 0
        it = iter(range(first, first + count))

        async def worker() -> None:
            nonlocal ok, failed
            for idx in it:
                conn, good = await self.open_one(idx)
                conns.append(conn)
                if good:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(min(self.args.ramp, count))))
        # The generator's own garbage collector must not add pauses to the measurement:
        # everything allocated so far lives until the end, and the hot paths make no
        # reference cycles.
        gc.collect()
        gc.freeze()
        gc.disable()
        return conns, ok, failed

    async def watchdog(self, conns: list[Conn]) -> None:
        limit = self.args.call_timeout
        while True:
            await asyncio.sleep(0.5)
            t = now()
            for c in conns:
                if c.pending is not None and t - c.sent_at > limit:
                    STATS.timeouts += 1
                    c.pending = None

    @staticmethod
    def close_all(conns: list[Conn]) -> None:
        for c in conns:
            c.close()

    async def mode_calls(self) -> None:
        a = self.args
        t0 = now()
        conns, ok, failed = await self.open_all(0, a.conns)
        emit("connected", ok=ok, failed=failed, seconds=now() - t0)
        live = [c for c in conns if c.open]
        running = True
        meter = self.meter

        def on_answer(c: Conn, elapsed: float, good: bool) -> None:
            if STATS.measuring and good:
                STATS.record(elapsed)
            if running and c.open:
                c.call(b"MeterValues", meter)

        for c in live:
            c.on_answer = on_answer
            c.call(b"MeterValues", meter)
        wd = asyncio.ensure_future(self.watchdog(live))
        await asyncio.sleep(a.warmup)
        STATS.measuring = True
        w0 = now()
        emit("window_start")
        await asyncio.sleep(a.duration)
        STATS.measuring = False
        seconds = now() - w0
        emit("window_end")
        running = False
        wd.cancel()
        emit(
            "result",
            mode="calls",
            flavor=a.flavor,
            conns=a.conns,
            connected=ok,
            connect_failed=failed,
            seconds=seconds,
            calls_per_s=STATS.calls / seconds,
            **STATS.counters(),
            **STATS.latency(),
        )
        self.close_all(conns)

    async def mode_idle(self) -> None:
        a = self.args
        hb_conns, hb_ok, _ = await self.open_all(10_000_000, 1)
        if not hb_ok:
            emit("result", mode="idle", error="the heartbeat gateway could not connect")
            self.close_all(hb_conns)
            return
        hb = hb_conns[0]
        await asyncio.sleep(a.pause)
        emit("baseline")
        await asyncio.sleep(a.pause)
        t0 = now()
        conns, ok, failed = await self.open_all(0, a.conns)
        ramp = now() - t0
        emit("connected", ok=ok, failed=failed, seconds=ramp)
        await asyncio.sleep(a.settle)
        skipped = 0

        def on_answer(c: Conn, elapsed: float, good: bool) -> None:
            if STATS.measuring and good:
                STATS.record(elapsed)

        hb.on_answer = on_answer
        wd = asyncio.ensure_future(self.watchdog([hb]))
        STATS.measuring = True
        emit("hold_start")
        h0 = now()
        period = a.hb_ms / 1000.0
        tick = h0
        while now() - h0 < a.hold:
            if hb.pending is None and hb.open:
                hb.call(b"Heartbeat", b"{}")
            else:
                skipped += 1
            tick += period
            if a.spin:
                # busy-poll the event loop: the generator's core never sleeps, so its
                # wake-up latency stays out of the measured round trip
                while now() < tick:
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(max(0.0, tick - now()))
        STATS.measuring = False
        seconds = now() - h0
        emit("hold_end")
        wd.cancel()
        still_open = sum(1 for c in conns if c.open)
        emit(
            "result",
            mode="idle",
            flavor=a.flavor,
            conns=a.conns,
            connected=ok,
            connect_failed=failed,
            ramp_seconds=ramp,
            still_open=still_open,
            hold_seconds=seconds,
            heartbeats_skipped=skipped,
            **STATS.counters(),
            **STATS.latency(),
        )
        self.close_all(conns)
        self.close_all(hb_conns)

    async def mode_answer(self) -> None:
        a = self.args
        t0 = now()
        conns, ok, failed = await self.open_all(0, a.conns)
        emit("connected", ok=ok, failed=failed, seconds=now() - t0)
        until = now() + a.hold
        while now() < until and any(c.open for c in conns):
            await asyncio.sleep(0.2)
        emit(
            "result",
            mode="answer",
            flavor=a.flavor,
            conns=a.conns,
            connected=ok,
            connect_failed=failed,
            **STATS.counters(),
        )
        self.close_all(conns)


async def main(args: argparse.Namespace) -> int:
    runner = Runner(args)
    mode = {"calls": runner.mode_calls, "idle": runner.mode_idle, "answer": runner.mode_answer}
    try:
        await asyncio.wait_for(mode[args.mode](), args.max_runtime)
    except TimeoutError:
        emit("result", error="max-runtime reached", **STATS.counters())
        return 3
    await asyncio.sleep(0.1)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("calls", "idle", "answer"), default="calls")
    ap.add_argument("--flavor", choices=tuple(FLAVORS), default="ntxcp")
    ap.add_argument("--url", required=True, help="base URL; /<prefix>-<n> is appended")
    ap.add_argument("--prefix", default="GW")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--hold", type=float, default=15.0)
    ap.add_argument("--settle", type=float, default=2.0, help="wait after connecting (idle)")
    ap.add_argument("--pause", type=float, default=1.0, help="wait around the RSS baseline")
    ap.add_argument("--hb-ms", type=float, default=10.0)
    ap.add_argument("--spin", type=int, default=0, help="idle mode: busy-poll between beats")
    ap.add_argument("--source-ips", type=int, default=1)
    ap.add_argument("--ramp", type=int, default=100, help="connections opened concurrently")
    ap.add_argument("--read-buffer", type=int, default=4096)
    ap.add_argument("--call-timeout", type=float, default=10.0)
    ap.add_argument("--max-runtime", type=float, default=300.0)
    return ap.parse_args(argv)


if __name__ == "__main__":
    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    rc = uvloop.run(main(parse_args()))
    sys.stdout.flush()
    os._exit(rc)
