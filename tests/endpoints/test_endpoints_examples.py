"""The examples run against each other as real programs, and docs/api.md is up to date."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_example_gateway_talks_to_example_control_center():
    control_center = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "control_center.py"), "--port", "0", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell running us in the background ignores SIGINT; the child must not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert control_center.stdout is not None
        first = control_center.stdout.readline()
        assert first.startswith("listening on ws://127.0.0.1:"), first
        url = first.split()[-1]
        once = subprocess.run(
            [sys.executable, str(EXAMPLES / "gateway.py"), "--url", url, "--id", "GW-7", "--once"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert once.returncode == 0, once.stderr
        assert "boot Accepted, heartbeat interval 60 s" in once.stdout.splitlines()
        assert "Soft reset requested: accepted" in once.stdout
        assert "status and meter values delivered" in once.stdout
        staying = subprocess.run(
            [sys.executable, str(EXAMPLES / "gateway.py"), "--url", url, "--duration", "0.3"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert staying.returncode == 0, staying.stderr
        assert "Soft reset requested: accepted" in staying.stdout
    finally:
        control_center.send_signal(signal.SIGINT)  # stops gracefully (Ctrl-C)
        out, err = control_center.communicate(timeout=20)
    assert control_center.returncode == 0, err
    for gateway_id in ("GW-7", "GW-1"):
        lines = [line for line in out.splitlines() if line.startswith(f"{gateway_id}: ")]
        assert lines[0] == f"{gateway_id}: boot, model DX-100"
        assert f"{gateway_id}: heartbeat" in lines
        assert f"{gateway_id}: service 0 is Available" in lines
        assert f"{gateway_id}: meter 1234.5 kWh" in lines
        assert f"{gateway_id}: soft reset Accepted" in lines


def test_example_gateway_fails_without_control_center():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "gateway.py"), "--url", "ws://127.0.0.1:9/ntxcp", "--once"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Error" in result.stderr


def test_api_docs_are_up_to_date():
    spec = importlib.util.spec_from_file_location(
        "gen_api_docs", ROOT / "scripts" / "gen_api_docs.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    expected = generator.render()
    actual = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is out of date: run python scripts/gen_api_docs.py"
    for name in ("ControlCenter", "Gateway", "GatewayConnection", "HandshakeInfo", "CallError"):
        assert f"### class `{name}`" in actual
    for method in ("ControlCenter.send_request_async", "GatewayRequests.boot_notification"):
        assert f"#### `{method}`" in actual
