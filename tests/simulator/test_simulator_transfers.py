"""UpdateFirmware and GetDiagnostics end to end, against a real HTTP server (spec §4.2)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from simulator_helpers import Recorder

from ntxcp import ControlCenter
from ntxcp.simulator import SimulatedGateway
from ntxcp.simulator.transfers import (
    Journal,
    TransferError,
    download,
    firmware_version_from,
    is_loopback_host,
    upload,
)

GW = "GW-1"
IMAGE = b"\x7fELF simulated firmware image " * 100


@dataclass
class FileServer:
    """A small HTTP server: serves firmware images, receives diagnostics files."""

    base: str = ""
    hits: list[tuple[str, str]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    put_status: int = 201


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    state = FileServer()

    async def firmware(request: web.Request) -> web.StreamResponse:
        state.hits.append((request.method, request.path))
        if request.match_info["name"].startswith("missing"):
            raise web.HTTPNotFound()
        return web.Response(body=IMAGE, content_type="application/octet-stream")

    async def put(request: web.Request) -> web.StreamResponse:
        state.hits.append((request.method, request.path))
        if state.put_status >= 300:
            return web.Response(status=state.put_status)
        state.uploads[request.path] = await request.read()
        return web.Response(status=state.put_status)

    async def post(request: web.Request) -> web.StreamResponse:
        state.hits.append((request.method, request.path))
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        state.uploads[request.path + "#" + upload.filename] = upload.file.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/fw/{name}", firmware)
    app.router.add_put("/diag/{name:.*}", put)
    app.router.add_post("/form/{name:.*}", post)

    async def method_not_allowed(request: web.Request) -> web.StreamResponse:
        state.hits.append((request.method, request.path))
        return web.Response(status=405)

    app.router.add_put("/form/{name:.*}", method_not_allowed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _statuses(recorder: Recorder, action: str) -> list[str]:
    return [r.status.value for r in recorder.of(action)]


# --- UpdateFirmware ------------------------------------------------------------------------


async def test_firmware_update_installs_and_reboots_into_the_new_version(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    location = f"{files.base}/fw/dx-fw-2.1.0.bin"
    await cc.update_firmware(GW, location, datetime.now(UTC))
    await recorder.wait_for("FirmwareStatusNotification", 4)
    assert _statuses(recorder, "FirmwareStatusNotification") == [
        "Downloading",
        "Downloaded",
        "Installing",
        "Installed",
    ]
    boots = await recorder.wait_for("BootNotification", 2)
    assert boots[1].firmware_version == "2.1.0"
    assert sim.firmware_version == "2.1.0"
    assert files.hits == [("GET", "/fw/dx-fw-2.1.0.bin")]
    conf = await cc.get_configuration(GW, ["FirmwareVersion"])
    assert (conf.configuration_key or [])[0].value == "2.1.0"
    assert any(IMAGE_SHA[:16] in line for line in sim.journal.lines())


IMAGE_SHA = hashlib.sha256(IMAGE).hexdigest()


async def test_firmware_without_version_in_name_gets_a_hash_version(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    await cc.update_firmware(GW, f"{files.base}/fw/image.bin", datetime.now(UTC))
    boots = await recorder.wait_for("BootNotification", 2)
    assert boots[1].firmware_version == f"build-{IMAGE_SHA[:10]}"


async def test_firmware_waits_for_the_retrieve_date(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    asked = datetime.now(UTC)
    await cc.update_firmware(GW, f"{files.base}/fw/dx-3.0.bin", asked + timedelta(seconds=0.6))
    await recorder.wait_for("FirmwareStatusNotification")
    assert datetime.now(UTC) - asked >= timedelta(seconds=0.5)


async def test_firmware_http_error_fails_after_the_retries(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    location = f"{files.base}/fw/missing-2.0.bin"
    await cc.update_firmware(GW, location, datetime.now(UTC), retries=2, retry_interval=0)
    await recorder.wait_for("FirmwareStatusNotification", 2)
    assert _statuses(recorder, "FirmwareStatusNotification") == ["Downloading", "DownloadFailed"]
    assert files.hits == [("GET", "/fw/missing-2.0.bin")] * 3  # 1 + retries
    assert sim.firmware_version == "1.0.0"
    assert len(recorder.of("BootNotification")) == 1  # no reboot


async def test_firmware_unreachable_and_unsupported_locations_fail(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/fw/dx-2.0.bin"
    await cc.update_firmware(GW, url, datetime.now(UTC), retries=1, retry_interval=0)
    await recorder.wait_for("FirmwareStatusNotification", 2)
    await cc.update_firmware(GW, "ftp://example.invalid/fw.bin", datetime.now(UTC))
    await recorder.wait_for("FirmwareStatusNotification", 4)
    assert _statuses(recorder, "FirmwareStatusNotification") == [
        "Downloading",
        "DownloadFailed",
        "Downloading",
        "DownloadFailed",
    ]
    assert sim.firmware_status.value == "Idle"


# --- GetDiagnostics ------------------------------------------------------------------------


async def test_diagnostics_are_uploaded_with_put(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    await cc.change_configuration(GW, "Vendor.Note", "cabinet 7")
    conf = await cc.get_diagnostics(GW, f"{files.base}/diag/")
    assert conf.file_name is not None
    assert conf.file_name.startswith("GW-1-diagnostics-") and conf.file_name.endswith(".txt")
    await recorder.wait_for("DiagnosticsStatusNotification", 2)
    assert _statuses(recorder, "DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]
    text = files.uploads[f"/diag/{conf.file_name}"].decode()
    assert "GW-1" in text
    assert "[configuration]" in text and "Vendor.Note = cabinet 7" in text
    assert "sent BootNotification 1" in text
    assert "[log]" in text and "boot Accepted" in text


async def test_diagnostics_fall_back_to_a_form_post_on_405(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    conf = await cc.get_diagnostics(GW, f"{files.base}/form/upload")
    await recorder.wait_for("DiagnosticsStatusNotification", 2)
    assert _statuses(recorder, "DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]
    assert files.hits == [("PUT", "/form/upload"), ("POST", "/form/upload")]
    assert b"[counters]" in files.uploads[f"/form/upload#{conf.file_name}"]


async def test_diagnostics_upload_fails_on_500_after_the_retries(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    files.put_status = 500
    await cc.get_diagnostics(GW, f"{files.base}/diag/x.txt", retries=1, retry_interval=0)
    await recorder.wait_for("DiagnosticsStatusNotification", 2)
    assert _statuses(recorder, "DiagnosticsStatusNotification") == ["Uploading", "UploadFailed"]
    assert files.hits == [("PUT", "/diag/x.txt")] * 2
    assert sim.diagnostics_status.value == "Idle"


async def test_diagnostics_log_is_limited_to_the_time_window(
    cc: ControlCenter, sim: SimulatedGateway, recorder: Recorder, files: FileServer
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    await cc.get_diagnostics(GW, f"{files.base}/diag/window.txt", start_time=later)
    await recorder.wait_for("DiagnosticsStatusNotification", 2)
    text = files.uploads["/diag/window.txt"].decode()
    assert text.rstrip().endswith("[log]")  # nothing logged after startTime


def test_journal_time_window() -> None:
    journal = Journal(capacity=2)
    journal.add("one")
    journal.add("two")
    journal.add("three")
    assert [line.split(" ", 1)[1] for line in journal.lines()] == ["two", "three"]
    future = datetime.now(UTC) + timedelta(seconds=60)
    assert journal.lines(start=future) == []
    assert len(journal.lines(stop=future)) == 2
    journal.clear()
    assert len(journal) == 0


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("dx-fw-2.1.0.bin", "2.1.0"),
        ("firmware_v3.2.img", "3.2"),
        ("dx-4.0.1-rc.2.bin", "4.0.1-rc.2"),
        ("image.bin", "build-0123456789"),
    ],
)
def test_firmware_version_from_file_name(name: str, version: str) -> None:
    assert firmware_version_from(name, "0123456789abcdef") == version


# --- loopback-only transfers (for runs driven by a fuzzer) --------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("example.com", False),
        ("127.0.0.1.example.com", False),
        ("::ffff:8.8.8.8", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def test_loopback_only_transfers_refuse_other_hosts_at_once(files: FileServer) -> None:
    for location in ("http://192.0.2.1/fw.bin", "https://example.com/fw.bin", "http://[::2]/x"):
        with pytest.raises(TransferError, match="not a loopback address"):
            await download(location, loopback_only=True, retries=3, retry_interval=60)
        with pytest.raises(TransferError, match="not a loopback address"):
            await upload(location, "d.txt", b"x", loopback_only=True, retries=3, retry_interval=60)
    image = await download(f"{files.base}/fw/dx-2.0.bin", loopback_only=True)
    assert image.size == len(IMAGE)
    assert await upload(f"{files.base}/diag/", "d.txt", b"x", loopback_only=True) == 1
    assert files.uploads["/diag/d.txt"] == b"x"


async def test_loopback_only_gateway_reports_a_refused_location(
    cc: ControlCenter,
    make_sim: Callable[..., SimulatedGateway],
    recorder: Recorder,
    files: FileServer,
) -> None:
    sim = make_sim(loopback_only=True)
    await sim.start()
    await recorder.wait_for("StatusNotification", 3)
    await cc.update_firmware(GW, "http://192.0.2.1/fw/dx-2.0.bin", datetime.now(UTC))
    await recorder.wait_for("FirmwareStatusNotification", 2)
    assert _statuses(recorder, "FirmwareStatusNotification") == ["Downloading", "DownloadFailed"]
    await cc.update_firmware(GW, f"{files.base}/fw/dx-2.0.bin", datetime.now(UTC))
    await recorder.wait_for("FirmwareStatusNotification", 4)
    assert _statuses(recorder, "FirmwareStatusNotification")[2:4] == ["Downloading", "Downloaded"]
    assert files.hits == [("GET", "/fw/dx-2.0.bin")]
