#!/usr/bin/env python3
"""Fuzz the HTTP API against its own OpenAPI document with schemathesis.

Starts ``ntxcp control-center`` with an API token on free loopback ports, two
simulated gateways (``ntxcp gateway --count 2 --loopback-only``: fuzzed firmware and
diagnostics locations can reach nothing beyond this machine), waits until both are
connected, then runs ``schemathesis run`` on ``/openapi.json`` with every check and
every phase (examples, coverage, fuzzing, stateful). ``/api/events`` is left out: it
is a stream that stays open by design (tests/dashboard cover it).

Usage:
    scripts/fuzz_api.py                       # a longer run with a random seed
    scripts/fuzz_api.py --seed 1 --max-examples 10   # what the test suite runs

The exit status is schemathesis's: 0 when no check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

TOKEN = "fuzz-token-7d1c"
READY = re.compile(r"^ntxcp control center ready: gateways (\S+)/<id>  api (\S+)$")
GATEWAYS = ("FUZZ-1", "FUZZ-2")


def _read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline().decode(errors="replace").strip()
            if READY.match(line):
                return line
            if not line and proc.poll() is not None:
                break
    raise RuntimeError("the control center did not print its ready line")


def _connected(api_url: str) -> set[str]:
    request = urllib.request.Request(
        api_url.rstrip("/") + "/api/gateways", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # loopback only
        listing = json.load(response)
    return {g["id"] for g in listing["items"] if g["connected"]}


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; returns its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: random)")
    parser.add_argument(
        "--max-examples", type=int, default=100, help="examples per operation (default 100)"
    )
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers")
    args = parser.parse_args(argv)
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        print("schemathesis is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ntxcp-fuzz-") as directory, ExitStack() as logs:

        def log_file(name: str) -> BinaryIO:
            return logs.enter_context((Path(directory) / name).open("wb"))

        try:
            service = subprocess.Popen(
                [
                    sys.executable, "-m", "ntxcp", "control-center",
                    "--db", str(Path(directory) / "cc.sqlite"),
                    "--port", "0", "--api-port", "0",
                    "--api-token", TOKEN, "--call-timeout", "5",
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log_file("service.log"), env=env,
            )  # fmt: skip
            processes.append(service)
            ws_url, api_url = READY.match(_read_ready_line(service, 30.0)).groups()  # type: ignore[union-attr]
            for gateway_id in GATEWAYS:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable, "-m", "ntxcp", "gateway", "--url", ws_url,
                            "--id", gateway_id, "--loopback-only", "--meter-interval", "2",
                            "--summary-interval", "0",
                        ],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=log_file(f"{gateway_id}.log"), env=env,
                    )
                )  # fmt: skip
            deadline = time.monotonic() + 30
            while _connected(api_url) != set(GATEWAYS):
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulated gateways did not connect")
                time.sleep(0.1)
            # Most generated gateway ids are the connected ones, so that calls reach a
            # gateway instead of ending in 404.
            config = Path(directory) / "schemathesis.toml"
            ids = ", ".join(f'"{gateway_id}"' for gateway_id in GATEWAYS)
            config.write_text(
                f"[dictionaries.gateways]\nvalues = [{ids}]\n\n"
                '[parameters]\n"path.id" = { dictionary = "gateways", probability = 0.8 }\n'
            )
            command = [
                schemathesis, "--config-file", str(config),
                "run", api_url.rstrip("/") + "/openapi.json",
                "--checks", "all",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--header", f"Authorization: Bearer {TOKEN}",
                "--exclude-path", "/api/events",
                "--max-examples", str(args.max_examples),
                "--workers", str(args.workers),
                "--request-timeout", "30",
                "--generation-database", "none",
                "--suppress-health-check", "all",
            ]  # fmt: skip
            if args.seed is not None:
                command += ["--seed", str(args.seed)]
            print("$", " ".join(command).replace(TOKEN, "[token]"), flush=True)
            # Run where schemathesis may leave its caches: the temporary directory.
            result = subprocess.run(command, env=env, cwd=directory, check=False)
            if service.poll() is not None:
                print("the control center died during the run", file=sys.stderr)
                return 1
            return result.returncode
        finally:
            for proc in reversed(processes):
                proc.terminate()
            for proc in processes:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log = (Path(directory) / "service.log").read_text(errors="replace").splitlines()
            first = next((i for i, line in enumerate(log) if " ERROR " in line), None)
            if first is not None:
                print("errors in the service's log:", *log[first : first + 40], sep="\n  ")


if __name__ == "__main__":
    sys.exit(main())
