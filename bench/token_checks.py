"""The cost of checking an API token, by what is wrong with it.

Checks the same registry the service uses (:class:`ntxcp.service.api_tokens.TokenRegistry`,
loaded from a real SQLite file) with a valid token, a wrong secret of a known name, an
unknown name, and the ``--api-token``, and prints the median and the 99th percentile
of each in microseconds, in one run, so they can be compared: the refusal of an unknown
name should cost what the refusal of a wrong secret costs (both compute one keyed hash).

Usage::

    python bench/token_checks.py [--rounds N] [--tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from ntxcp.service.api_tokens import Role, TokenRegistry
from ntxcp.service.machine_secrets import generate_secret
from ntxcp.service.storage import Storage, now_text

BOOTSTRAP = "bench-bootstrap-token-0123456789"


async def measure(rounds: int, tokens: int) -> dict[str, list[float]]:
    """Microseconds per check, by kind of token presented."""
    with tempfile.TemporaryDirectory() as directory:
        storage = Storage(Path(directory) / "tokens.sqlite")
        storage.open()
        try:
            registry = TokenRegistry(storage, BOOTSTRAP, now_text)
            await registry.load(generate_secret().encode())
            issued = [await registry.add(f"t{n}", Role.OPERATOR) for n in range(tokens)]
            valid = issued[-1][1]
            name, _, secret = valid.partition(".")
            presented = {
                "valid token": valid,
                "wrong secret": f"{name}.{secret[::-1]}",
                "unknown name": f"nobody.{secret}",
                "--api-token": BOOTSTRAP,
            }
            times: dict[str, list[float]] = {kind: [] for kind in presented}
            for _ in range(rounds):
                for kind, credentials in presented.items():  # interleaved: same load
                    started = time.perf_counter()
                    registry.authenticate(credentials)
                    times[kind].append((time.perf_counter() - started) * 1e6)
            return times
        finally:
            await storage.close()


def main() -> None:
    """Print the cost of each kind of check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000, help="checks of each kind")
    parser.add_argument("--tokens", type=int, default=100, help="stored tokens")
    args = parser.parse_args()
    times = asyncio.run(measure(args.rounds, args.tokens))
    print(f"{args.rounds} checks of each kind, {args.tokens} stored tokens (microseconds)")
    for kind, values in times.items():
        values.sort()
        p99 = values[int(len(values) * 0.99) - 1]
        print(f"  {kind:<14} median {statistics.median(values):6.2f}   p99 {p99:6.2f}")


if __name__ == "__main__":
    main()
