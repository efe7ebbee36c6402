"""Heartbeat latency of good gateways while the service is attacked, one attack at a time.

Runs ``ntxcp control-center --auth basic --unknown-gateways reject`` with ``--good``
registered gateways calling every 0.1 s (half Heartbeats, half DataTransfers), then
each attack of ``tests/resilience/service_attacks.py`` alone for ``--attack`` seconds
(wrong-password flood, garbage and invented labels, unread event streams, idle API
connections) and all of them together, with a quiet pause in between. Prints the good
gateways' p50/p99/max per window and compares each with the quiet baseline of the
same run (target: p99 under 50 ms). All traffic is on 127.0.0.1.

    python bench/hostile_service.py [--good 50] [--attack 8] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "resilience"), str(ROOT / "tests")]

from resilience_helpers import percentile, rss_kib, spawn  # noqa: E402

from service_process import ServiceProcess  # noqa: E402

ATTACKS = {  # name: arguments of service_attacks.py that switch the others off
    "wrong passwords": ["--garbage=0", "--sse=0", "--idle=0"],
    "garbage + invented labels": ["--password-flooders=0", "--sse=0", "--idle=0"],
    "unread event streams": ["--password-flooders=0", "--garbage=0", "--idle=0"],
    "idle API connections": ["--password-flooders=0", "--garbage=0", "--sse=0"],
    "all at once": [],
}


def _post(api_url: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        api_url.rstrip("/") + "/api/gateways",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).close()


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:7.1f}" if values else "      -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--good", type=int, default=50)
    parser.add_argument("--attack", type=float, default=8.0, help="seconds per attack")
    parser.add_argument("--pause", type=float, default=6.0, help="quiet seconds between")
    parser.add_argument("--quick", action="store_true", help="2 s attacks, 10 gateways")
    args = parser.parse_args()
    if args.quick:
        args.good, args.attack, args.pause = 10, 2.0, 2.0
    work = Path(tempfile.mkdtemp(prefix="ntxcp-hostile-"))
    service = ServiceProcess(
        work, "--auth", "basic", "--unknown-gateways", "reject", "--log-level", "error"
    ).start()
    procs = []
    try:
        for i in range(args.good):
            _post(service.api_url, {"id": f"GOOD-{i:03d}", "password": f"pw GOOD-{i:03d}"})
        for i in range(4):
            _post(service.api_url, {"id": f"EVIL-{i}", "password": f"evil EVIL-{i}"})
        windows: list[tuple[str, float, float]] = []
        duration = 2 + args.pause + len(ATTACKS) * (args.attack + args.pause + 4)
        out = work / "good.json"
        good = spawn(
            "good",
            "good_gateways.py",
            [
                f"--url={service.ws_url}",
                f"--count={args.good}",
                f"--duration={duration}",
                f"--out={out}",
                "--password-prefix=pw ",
            ],
            work,
        )
        procs.append(good)
        good.wait_line("READY", 60)
        time.sleep(1)
        start = time.time()
        time.sleep(args.pause)
        windows.append(("quiet baseline", start, time.time()))
        ws_port = urllib.parse.urlsplit(service.ws_url).port
        api_port = urllib.parse.urlsplit(service.api_url).port
        assert service.proc is not None
        peak = rss_kib(service.proc.pid)
        for name, switches in ATTACKS.items():
            attack = spawn(
                name.split()[0],
                "service_attacks.py",
                [
                    f"--port={ws_port}",
                    f"--api-port={api_port}",
                    f"--duration={args.attack}",
                    f"--known={args.good}",
                    *switches,
                ],
                work,
            )
            procs.append(attack)
            attack.wait_line("ATTACK", 15)
            start = time.time()
            while attack.popen.poll() is None and time.time() < start + args.attack + 30:
                peak = max(peak, rss_kib(service.proc.pid))
                time.sleep(0.2)
            windows.append((name, start, time.time()))
            time.sleep(args.pause)
        good.wait_line("DONE", duration + 60)
        rss_end = rss_kib(service.proc.pid)
    finally:
        for proc in procs:
            proc.kill()
        service.stop()
    samples = json.loads(out.read_text())["samples"]
    load = os.getloadavg()[0]
    print(f"good gateways: {args.good} (Basic auth) calling every 0.1 s; load average {load:.1f}")
    print(f"{'window':28} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  p99 vs quiet")
    baseline = None
    for name, lo, hi in windows:
        values = [lat for t, lat in samples if lo <= t <= hi]
        p99 = percentile(values, 99) if values else float("nan")
        baseline = p99 if baseline is None else baseline
        ratio = f"x{p99 / baseline:.1f}" if baseline else "-"
        flag = "" if p99 * 1000 < 50 else "  (over the 50 ms target)"
        print(
            f"{name:28} {len(values):6} {_ms(values, 50)} {_ms(values, 99)} "
            f"{_ms(values, 100)}  {ratio}{flag}"
        )
    print(f"server RSS peak {peak / 1024:.1f} MiB, at the end {rss_end / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
