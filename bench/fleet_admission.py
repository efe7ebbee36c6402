"""A fleet comes back: time until N gateways are admitted after a SIGKILL and restart.

For each mode, registers N gateways (timing the registration), starts
``ntxcp control-center`` and ``ntxcp gateway --secrets`` (one process running the N
gateways, each with its own secret), waits until all are connected, then kills the
control center with SIGKILL and starts it again on the same ports and database. It
prints how long after the restart (from the new process's start and from its ready
line) all N gateways were admitted again, the admission rate, and the Heartbeat
latency of a probe gateway that calls back to back during the storm. Modes:

* ``none``: no authentication (``--auth none``);
* ``generated``: Basic auth with generated secrets (keyed fast hash, checked on the
  event loop), registered with ``ntxcp gateways import``;
* ``scrypt``: Basic auth with passwords chosen by a person (scrypt, checked in
  threads, bounded; a KDF run per gateway, as after every restart);
* ``tls-generated``: as ``generated``, over TLS (security profile 2, an ECDSA P-256
  certificate made for the run).

All traffic is on 127.0.0.1. The load generator (its own process) shares the machine
with the control center, so the numbers are an upper bound of what the server alone
needs; the CPU seconds each process spent during the storm and the load average are
printed next to every row. ``--baseline`` runs every case a second time with the
admission pacing off (``--max-handshakes 0 --accept-rate 0``), in the same run.

    python bench/fleet_admission.py --gateways 1000,5000,10000 --baseline  # the table
    python bench/fleet_admission.py [--gateways 1000] [--modes none,generated,scrypt]
    python bench/fleet_admission.py --quick      # 100 gateways, every mode, a smoke run

scrypt runs a KDF per gateway after every restart (tens of ms each, minutes for
thousands): it is measured up to ``--scrypt-max`` gateways (1,000) and left out above.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from tls_handshake import self_signed  # noqa: E402

import ntxcp  # noqa: E402
from ntxcp.service.backend import create_storage  # noqa: E402
from ntxcp.service.config import ServiceConfig  # noqa: E402
from ntxcp.service.machine_secrets import (  # noqa: E402
    generate_secret,
    hash_machine_secret,
    verify_machine_secret,
)
from ntxcp.service.passwords import hash_password, verify_password  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

MODES = ("none", "generated", "scrypt", "tls-generated")
PROBE = "PROBE"
_CONNECTED = re.compile(r"^ntxcp_connected_gateways (\d+)", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _connected(api_url: str) -> int:
    try:
        with urllib.request.urlopen(api_url + "metrics", timeout=5) as response:
            match = _CONNECTED.search(response.read().decode())
    except OSError:
        return -1
    return int(match[1]) if match else -1


_LAG_BUCKET = re.compile(r'^ntxcp_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


def _lag_buckets(api_url: str) -> dict[float, float]:
    """The service's event-loop lag histogram (cumulative counts by upper bound)."""
    try:
        with urllib.request.urlopen(api_url + "metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {float(le): float(count) for le, count in _LAG_BUCKET.findall(text)}


def _lag_percentile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The bucket bound (ms) under which ``q`` % of the lags measured in between fell."""
    deltas = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = deltas[-1][1] if deltas else 0.0
    for le, count in deltas:
        if total and count >= q / 100 * total:
            return le * 1000
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def _probe(
    url: str,
    password: str | None,
    context: ssl.SSLContext | None,
    samples: list[tuple[float, float]],
    stop: asyncio.Event,
) -> None:
    """Heartbeats back to back (20 ms apart), reconnecting at once after a loss."""
    while not stop.is_set():
        gw = ntxcp.Gateway(PROBE, password=password, ssl=context, reconnect=False)
        try:
            await asyncio.wait_for(gw.start(url), 10)
            await asyncio.wait_for(gw.boot_notification("DX-PROBE"), 10)
            while not stop.is_set():
                began = time.perf_counter()
                await asyncio.wait_for(gw.heartbeat(), 10)
                samples.append((time.time(), time.perf_counter() - began))
                await asyncio.sleep(0.02)
        except (Exception, TimeoutError):
            await asyncio.sleep(0.05)
        finally:
            await gw.stop()


_UNPACED = ("--max-handshakes", "0", "--accept-rate", "0")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _register(
    mode: str, gateways: int, args: argparse.Namespace, work: Path, db: Path
) -> tuple[Path, str]:
    """Register the fleet and the probe; returns the secrets file and the probe's secret."""
    secrets_file = work / "secrets.csv"
    ids = [f"FLEET-{n}" for n in range(gateways)]
    if mode == "none":
        secrets_file.write_text("".join(f"{gateway_id},\n" for gateway_id in ids))
        return secrets_file, ""
    if mode == "scrypt":
        # One scrypt hash shared by every gateway: each check still costs a KDF run
        # (outcomes are remembered per gateway), and the setup takes no minutes.
        password = "a person's password"
        stored = hash_password(password)
        started = time.perf_counter()

        async def fill() -> None:
            storage = create_storage(ServiceConfig(db=str(db)))
            await storage.start()
            await storage.register_gateways([(i, stored) for i in [*ids, PROBE]])
            await storage.close()

        asyncio.run(fill())
        print(f"  registration: one scrypt hash {time.perf_counter() - started:.2f} s "
              "(the same hash stored for every gateway)")  # fmt: skip
        secrets_file.write_text("".join(f"{gateway_id},{password}\n" for gateway_id in ids))
        return secrets_file, password
    source = work / "fleet.csv"
    source.write_text("".join(f"{gateway_id},generate\n" for gateway_id in [*ids, PROBE]))
    service = ServiceProcess(work, "--log-level", "warning", db=db).start()
    try:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ntxcp", "gateways", "import", str(source),
             "--output", str(secrets_file), "--api", service.api_url],
            check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        took = time.perf_counter() - started
    finally:
        service.stop()
    print(f"  registration: {gateways + 1} gateways with generated secrets by "
          f"'ntxcp gateways import' in {took:.2f} s")  # fmt: skip
    lines = secrets_file.read_text().splitlines()[1:]
    probe_secret = next(line.split(",", 1)[1] for line in lines if line.startswith(PROBE + ","))
    secrets_file.write_text("\n".join(line for line in lines if not line.startswith(PROBE)))
    return secrets_file, probe_secret


def _wait_for(api_url: str, count: int, timeout: float) -> list[tuple[float, int]]:
    """Poll the connected gauge until it reaches ``count``; returns the timeline."""
    timeline: list[tuple[float, int]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        connected = _connected(api_url)
        timeline.append((time.time(), connected))
        if connected >= count:
            break
        time.sleep(0.1)
    return timeline


def run_mode(mode: str, gateways: int, paced: bool, args: argparse.Namespace) -> dict[str, object]:
    """One case: register, connect the fleet, kill and restart, measure."""
    pacing = "paced" if paced else "unpaced"
    print(f"mode {mode}: {gateways} gateways, {pacing}")
    result: dict[str, object] = {"mode": mode, "gateways": gateways, "pacing": pacing}
    if mode == "scrypt" and gateways > args.scrypt_max:
        result["error"] = f"left out (over --scrypt-max {args.scrypt_max})"
        return result
    work = Path(tempfile.mkdtemp(prefix=f"ntxcp-fleet-{mode}-"))
    db = work / "cc.sqlite"
    secrets_file, probe_secret = _register(mode, gateways, args, work, db)
    port, api_port = _free_port(), _free_port()
    flags = ["--port", str(port), "--api-port", str(api_port), "--log-level", "error"]
    if not paced:
        flags += _UNPACED
    elif args.accept_rate is not None:
        flags += ["--accept-rate", str(args.accept_rate)]
    if mode != "none":
        flags += ["--auth", "basic"]
    context: ssl.SSLContext | None = None
    simulator_tls: list[str] = []
    if mode.startswith("tls"):
        cert, key = self_signed(work)
        flags += ["--certfile", str(cert), "--keyfile", str(key)]
        context = ssl.create_default_context(cafile=str(cert))
        simulator_tls = ["--cafile", str(cert)]
    service = ServiceProcess(work, *flags, db=db).start()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "ntxcp", "gateway", "--url", service.ws_url,
         "--secrets", str(secrets_file), "--meter-interval", "0", "--summary-interval", "0",
         *simulator_tls],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(work / "simulator.log").open("wb"),
    )  # fmt: skip
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    password = probe_secret or None

    def run_probe() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_probe(service.ws_url, password, context, samples, stop))

    thread = threading.Thread(target=run_probe, daemon=True)
    try:
        first = _wait_for(service.api_url, gateways, args.timeout)
        if first[-1][1] < gateways:
            print(f"  the fleet did not connect: {first[-1][1]} of {gateways}")
            result["error"] = "fleet did not connect"
            return result
        thread.start()
        _wait_for(service.api_url, gateways + 1, 30)
        assert service.proc is not None
        os.kill(service.proc.pid, signal.SIGKILL)
        service.proc.wait()
        killed = time.time()
        simulator_cpu = _cpu_seconds(simulator.pid)
        load_before = os.getloadavg()[0]
        service = ServiceProcess(work, *flags, db=db)
        service.start()
        ready = time.time()
        lag_before = _lag_buckets(service.api_url)
        timeline = _wait_for(service.api_url, gateways + 1, args.timeout)
        lag_after = _lag_buckets(service.api_url)
        done_at, reached = timeline[-1]
        assert service.proc is not None
        service_cpu = _cpu_seconds(service.proc.pid)
        simulator_cpu = _cpu_seconds(simulator.pid) - simulator_cpu
        storm = [lat for at, lat in samples if ready <= at <= done_at]
        rates = _rates(timeline)
        result.update(
            {
                "restart_s": round(ready - killed, 2),
                "all_admitted_s": round(done_at - killed, 2) if reached > gateways else None,
                "after_ready_s": round(done_at - ready, 2),
                "admitted": reached,
                "peak_rate": rates[0],
                "mean_rate": rates[1],
                "probe_calls": len(storm),
                "probe_p50_ms": round(_percentile(storm, 50) * 1000, 2),
                "probe_p99_ms": round(_percentile(storm, 99) * 1000, 2),
                "probe_max_ms": round(max(storm, default=float("nan")) * 1000, 2),
                "loop_lag_p50_ms": _lag_percentile(lag_before, lag_after, 50),
                "loop_lag_p99_ms": _lag_percentile(lag_before, lag_after, 99),
                "loop_lag_samples": lag_after.get(float("inf"), 0.0)
                - lag_before.get(float("inf"), 0.0),
                "service_cpu_s": round(service_cpu, 2),
                "simulator_cpu_s": round(simulator_cpu, 2),
                "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}",
            }
        )
        print("  " + json.dumps(result))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(15)
        simulator.send_signal(signal.SIGTERM)
        try:
            simulator.wait(20)
        except subprocess.TimeoutExpired:
            simulator.kill()
        service.kill()
    return result


def _rates(timeline: list[tuple[float, int]]) -> tuple[float, float]:
    """The peak admissions per second (over 1 s) and the mean over the storm."""
    points = [(at, max(0, count)) for at, count in timeline]
    peak = 0.0
    for i, (at, count) in enumerate(points):
        for later_at, later in points[i + 1 :]:
            if later_at - at >= 1.0:
                peak = max(peak, (later - count) / (later_at - at))
                break
    rising = [(at, count) for at, count in points if count > 0]
    mean = 0.0
    if len(rising) > 1 and rising[-1][0] > rising[0][0]:
        mean = (rising[-1][1] - rising[0][1]) / (rising[-1][0] - rising[0][0])
    return round(peak, 1), round(mean, 1)


def _check_costs() -> None:
    """One password check of each kind, on this machine now."""
    key, secret = os.urandom(32), generate_secret()
    stored = hash_machine_secret(key, secret)
    runs = 20_000
    began = time.perf_counter()
    for _ in range(runs):
        verify_machine_secret(key, secret, stored)
    fast = (time.perf_counter() - began) / runs
    slow_hash = hash_password(secret)
    began = time.perf_counter()
    for _ in range(5):
        verify_password(secret, slow_hash)
    slow = (time.perf_counter() - began) / 5
    print(f"one check: generated secret {fast * 1e6:.1f} us, scrypt {slow * 1e3:.1f} ms")


def _table(results: list[dict[str, object]]) -> None:
    """The compact table: one row per case."""
    heads = ("mode", "N", "pacing", "all in s", "after ready", "peak/s", "mean/s",
             "p50 ms", "p99 ms", "max ms", "calls", "lag p99 ≤", "cc CPU s", "sim CPU s",
             "load")  # fmt: skip
    widths = (13, 6, 7, 8, 11, 7, 7, 7, 7, 7, 6, 9, 8, 9, 9)
    print(" ".join(f"{head:>{width}}" for head, width in zip(heads, widths, strict=True)))
    keys = ("all_admitted_s", "after_ready_s", "peak_rate", "mean_rate", "probe_p50_ms",
            "probe_p99_ms", "probe_max_ms", "probe_calls", "loop_lag_p99_ms", "service_cpu_s",
            "simulator_cpu_s", "load")  # fmt: skip
    for r in results:
        start = f"{r['mode']:>13} {r['gateways']:>6} {r['pacing']:>7}"
        if "error" in r:
            print(f"{start} {r['error']}")
            continue
        cells = ["not all" if r[key] is None else r[key] for key in keys]
        print(
            start,
            " ".join(f"{cell!s:>{width}}" for cell, width in zip(cells, widths[3:], strict=True)),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", default="1000", help="fleet sizes, comma-separated")
    parser.add_argument("--modes", default="none,generated,scrypt,tls-generated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wait")
    parser.add_argument("--scrypt-max", type=int, default=1000, help="largest scrypt fleet")
    parser.add_argument(
        "--baseline", action="store_true", help="each case also without admission pacing"
    )
    parser.add_argument("--quick", action="store_true", help="100 gateways, 60 s waits")
    parser.add_argument(
        "--accept-rate",
        type=float,
        default=None,
        help="the service's --accept-rate for the paced runs (default: its own default)",
    )
    args = parser.parse_args()
    if args.quick:
        args.gateways, args.timeout = "100", 60.0
    try:
        sizes = [int(size) for size in args.gateways.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--gateways takes comma-separated numbers, not {args.gateways!r}")
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    _check_costs()
    pacings = (True, False) if args.baseline else (True,)
    results = [
        run_mode(mode, size, paced, args) for size in sizes for mode in modes for paced in pacings
    ]
    print()
    _table(results)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
