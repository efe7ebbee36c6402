"""``ntxcp gateway`` as a real process against a control center in the test (spec §6.3)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from simulator_helpers import CloseCodes, Recorder

from ntxcp import ControlCenter
from ntxcp.cli import main
from ntxcp.cli.gateways import SummaryPrinter, run_gateways
from ntxcp.simulator import SimulatedGateway
from waiting import eventually

EXIT_WITHIN = 10.0  # s, spec §6.3


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ntxcp",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), EXIT_WITHIN)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_runs_and_stops_cleanly_on_a_signal(
    cc: ControlCenter, recorder: Recorder, close_codes: CloseCodes, signum: int
) -> None:
    process = await _spawn(
        "--url",
        cc.url,
        "--id",
        "GW-CLI",
        "--meter-interval",
        "0.1",
        "--heartbeat-interval",
        "0.2",
        "--summary-interval",
        "0.1",
    )
    try:
        await recorder.wait_for("MeterValues", 4, timeout=8)
        await recorder.wait_for("Heartbeat")
    finally:
        process.send_signal(signum)
    started = asyncio.get_running_loop().time()
    code, out, err = await _finish(process)
    assert asyncio.get_running_loop().time() - started < EXIT_WITHIN
    assert code == 0, err
    await eventually(lambda: "GW-CLI" in close_codes.codes)
    assert close_codes.codes["GW-CLI"] == [1000]  # spec §6.2/§6.3
    lines = out.splitlines()
    assert len(lines) >= 2
    assert "connected 1/1" in out and "registered 1" in out
    assert lines[-1].split(" ", 1)[1].startswith("connected 0/1")


async def test_many_gateways_for_a_duration(
    cc: ControlCenter, recorder: Recorder, tmp_path: Path
) -> None:
    queue = tmp_path / "queue.sqlite"
    process = await _spawn(
        "--url",
        cc.url + "/",
        "--count",
        "3",
        "--id-prefix",
        "P-",
        "--services",
        "1",
        "--duration",
        "1.5",
        "--queue",
        str(queue),
        "--summary-interval",
        "0",
    )
    code, out, err = await _finish(process)
    assert code == 0, err
    boots = {m.gateway_id for m in recorder.messages if m.action == "BootNotification"}
    assert boots == {"P-1", "P-2", "P-3"}
    statuses = [m for m in recorder.messages if m.action == "StatusNotification"]
    assert len(statuses) == 6  # "0" and "1" of each gateway
    assert sorted(p.name for p in tmp_path.glob("queue.*.sqlite")) == [
        "queue.P-1.sqlite",
        "queue.P-2.sqlite",
        "queue.P-3.sqlite",
    ]
    assert out.strip().splitlines()[-1].split(" ", 1)[1].startswith("connected 0/3")


async def test_a_single_gateway_refused_at_start_exits_1(recorder: Recorder) -> None:
    center = ControlCenter()
    center.set_core_handler(recorder)
    center.set_basic_auth_handler(lambda gateway_id, password: password == "right")
    await center.start(0)
    try:
        process = await _spawn("--url", center.url, "--id", "GW-1", "--password", "wrong")
        code, _, err = await _finish(process)
    finally:
        await center.stop()
    assert code == 1
    assert "401" in err and "GW-1" in err


async def test_a_gateway_that_never_connects_exits_3_with_the_reason(tmp_path: Path) -> None:
    # A port nothing listens on: bind one, note it, close it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    url = f"ws://127.0.0.1:{port}/ntxcp"
    process = await _spawn("--url", url, "--id", "GW-LOST", "--duration", "1.5")
    code, _, err = await _finish(process)
    assert code == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: gateway 'GW-LOST' never connected to {url}: "), err
    assert "refused" in last.lower() or "connect call failed" in last.lower(), last

    process = await _spawn("--url", url, "--count", "2", "--duration", "1.5")
    code, _, err = await _finish(process)
    assert code == 3 and f"none of the 2 gateways connected to {url}" in err, err


async def test_repeated_url_fails_over_to_the_next_control_center(
    cc: ControlCenter, recorder: Recorder
) -> None:
    standby = Recorder()
    second = ControlCenter()
    second.set_core_handler(standby)
    await second.start(0)
    process = await _spawn(
        "--url",
        cc.url,
        "--url",
        second.url,
        "--id",
        "GW-FO",
        "--meter-interval",
        "0.1",
        "--summary-interval",
        "0",
    )
    try:
        await recorder.wait_for("MeterValues", timeout=8)
        assert not standby.messages  # the first URL answered: the list is not spread
        await cc.stop(grace=0.5)
        await standby.wait_for("BootNotification", timeout=8)
        await standby.wait_for("MeterValues", timeout=8)
        assert second.is_connected("GW-FO")
    finally:
        process.send_signal(signal.SIGTERM)
        code, _, err = await _finish(process)
        await second.stop()
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:1/ntxcp", "--id", "A"], "--url must be"),
        (["--url", "ws:///ntxcp", "--id", "A"], "--url must be"),
        (["--url", "ws://h:99999/x", "--id", "A"], "bad port"),
        (["--url", "ws://h/x", "--url", "ftp://h/x", "--id", "A"], "--url must be"),
        (["--url", "ws://h/x", "--url", "ws://h/x", "--id", "A"], "--url given twice"),
        (["--url", "ws://h/x", "--id", "A", "--count", "2"], "not allowed with"),
        (["--url", "ws://h/x"], "one of the arguments --id --count --secrets is required"),
        (["--url", "ws://h/x", "--id", "a/b"], "invalid gateway id"),
        (["--url", "ws://h/x", "--count", "0"], "must be at least 1"),
        (["--url", "ws://h/x", "--id", "A", "--meter-interval", "-1"], "must not be negative"),
        (["--url", "ws://h/x", "--id", "A", "--cafile", "/nonexistent.pem"], "TLS files"),
        (["--url", "ws://h/x", "--id", "A", "--keyfile", "k.pem"], "--keyfile needs --certfile"),
        (["--url", "ws://h/x", "--id", "A", "--model", "M" * 21], "BootNotification"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["gateway", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


async def test_usage_error_of_the_real_command() -> None:
    code, out, err = await _finish(await _spawn("--url", "tcp://x", "--id", "A"))
    assert (code, out) == (2, "")
    assert err.startswith("ntxcp gateway: error: --url must be")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_summary_is_refreshed_in_place_on_a_terminal(
    make_sim: Callable[..., SimulatedGateway],
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    gateways = [make_sim("T-1"), make_sim("T-2")]
    terminal = _Terminal()
    printer = SummaryPrinter(gateways, terminal, None)
    assert printer.interval == 1.0
    code = await run_gateways(gateways, duration=0.5, printer=printer, install_signals=False)
    assert code == 0
    text = terminal.getvalue()
    assert text.startswith("\r") and text.endswith("\x1b[K\n")
    line = text[1:].split("\x1b[K")[0]
    assert len(line) <= 59 and "connected 0/2" in line
    assert {m.gateway_id for m in recorder.messages} == {"T-1", "T-2"}
