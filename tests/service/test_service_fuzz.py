"""The HTTP API against its own OpenAPI document, driven by schemathesis.

``scripts/fuzz_api.py`` runs a real service (API token set) with two simulated gateways
that refuse any non-loopback transfer location, and schemathesis with every check and
every phase (examples, coverage, fuzzing, stateful). Here it runs with a fixed seed and
a bounded number of examples, so that it is repeatable and takes well under a minute;
run the script by hand for a longer, random run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(600)


def test_schemathesis_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz_api.py"), "--seed", "20261205",
         "--max-examples", "12"],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    assert "Stateful" in output and "Fuzzing" in output and "Coverage" in output
    assert " passed" in output and "failures" not in output.lower().split("summary")[-1]
