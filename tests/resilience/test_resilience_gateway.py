"""Gateway resilience against an in-process control center (spec §4.1, §6.2)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from resilience_helpers import CuttingProxy, boot_request, free_port, meter_values, now, seq_of

import ntxcp.sync
from ntxcp import (
    Backoff,
    CallError,
    CallTimeoutError,
    ControlCenter,
    ErrorCode,
    Gateway,
    HandshakeRefusedError,
    NotConnectedError,
    current_call,
)
from ntxcp.endpoints.state import GatewayState, StateMachine
from ntxcp.endpoints.store import MemoryStore, StoreFullError
from ntxcp.transport import ServerOptions, listen
from ntxcp.v10 import core
from waiting import WAIT, eventually, wait_until

FAST = Backoff(initial=0.02, maximum=0.1, reset_after=0.5)


class Center(core.ControlCenterHandler):
    """Records every G→C call; its behaviour per call can be changed by a test."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str, Any]] = []  # (time, action, uniqueId, request)
        self.boot_answers: list[tuple[core.RegistrationStatus, int]] = []
        self.meter_hook: Callable[[int, str], Any] | None = None

    def _record(self, request: Any) -> str:
        call = current_call()
        assert call is not None
        self.calls.append((time.monotonic(), call.action, call.unique_id, request))
        return call.unique_id

    def actions(self) -> list[str]:
        return [c[1] for c in self.calls]

    def meter_seqs(self) -> list[tuple[str, int]]:
        return [(c[2], seq_of(c[3])) for c in self.calls if c[1] == "MeterValues"]

    def on_boot_notification(
        self, gateway_id: str, request: core.BootNotificationRequest
    ) -> core.BootNotificationConfirmation:
        self._record(request)
        status, interval = (
            self.boot_answers.pop(0) if self.boot_answers else (core.RegistrationStatus.ACCEPTED, 0)
        )
        return core.BootNotificationConfirmation(
            status=status, current_time=now(), interval=interval
        )

    def on_heartbeat(
        self, gateway_id: str, request: core.HeartbeatRequest
    ) -> core.HeartbeatConfirmation:
        self._record(request)
        return core.HeartbeatConfirmation(current_time=now())

    def on_data_transfer(
        self, gateway_id: str, request: core.DataTransferRequest
    ) -> core.DataTransferConfirmation:
        self._record(request)
        return core.DataTransferConfirmation(status=core.DataTransferStatus.ACCEPTED)

    async def on_meter_values(
        self, gateway_id: str, request: core.MeterValuesRequest
    ) -> core.MeterValuesConfirmation:
        unique_id = self._record(request)
        if self.meter_hook is not None:
            result = self.meter_hook(seq_of(request), unique_id)
            if asyncio.iscoroutine(result):
                await result
        return core.MeterValuesConfirmation()


@pytest.fixture
async def cc() -> AsyncIterator[tuple[ControlCenter, Center]]:
    center = Center()
    control = ControlCenter()
    control.set_core_handler(center)
    await control.start()
    yield control, center
    await control.stop(grace=1.0)


def kinds(gw: Gateway) -> list[str]:
    return [e.kind for e in gw.error_stream.pending()]


def reported(endpoint: Gateway | ControlCenter, kind: str, count: int = 1) -> Callable[[], bool]:
    """A condition: ``count`` reports of ``kind`` taken from the endpoint's error stream."""
    seen: list[str] = []

    def check() -> bool:
        seen.extend(e.kind for e in endpoint.error_stream.pending())
        return seen.count(kind) >= count

    return check


# --- reconnect (spec §6.2) ----------------------------------------------------------


async def test_reconnects_after_server_close_with_hooks(cc: tuple[ControlCenter, Center]) -> None:
    control, _ = cc
    port = control.port
    gw = Gateway("GW-RC", backoff=FAST)
    events: list[str] = []
    gw.set_connected_handler(lambda: events.append("connected"))
    gw.set_reconnected_handler(lambda: events.append("reconnected"))
    gw.set_disconnected_handler(lambda: events.append("disconnected"))
    await gw.start(control.url)
    assert gw.is_connected and events == ["connected"]
    await control.stop(grace=0.5)  # close frame 1001 from the server
    await eventually(lambda: events == ["connected", "disconnected"])
    assert not gw.is_connected and gw.last_close is not None
    assert gw.last_close[0] == 1001
    await eventually(reported(gw, "connection-error", 2))  # refused TCP connections
    await control.start(port)  # same port
    await gw.wait_connected(WAIT)
    assert events == ["connected", "disconnected", "connected", "reconnected"]
    await gw.stop()


async def test_reconnect_delays_grow_with_jitter_on_failed_handshakes() -> None:
    attempts: list[float] = []
    refuse = False

    def validate(gateway_id: str, info: object) -> bool:
        if refuse:
            attempts.append(time.monotonic())
            raise RuntimeError("database down")  # → HTTP 500: worth retrying
        return True

    control = ControlCenter()
    control.set_new_gateway_validation_handler(validate)  # type: ignore[arg-type]
    await control.start()
    proxy = CuttingProxy(control.port)
    await proxy.start()
    backoff = Backoff(initial=0.05, factor=2, maximum=0.4, jitter=0.25)
    gw = Gateway("GW-GROW", backoff=backoff)
    await gw.start(f"ws://127.0.0.1:{proxy.port}/ntxcp")
    refuse = True
    cut_at = time.monotonic()
    proxy.cut("rst")  # a network error: no close frame
    await eventually(lambda: len(attempts) >= 6)
    refuse = False
    await gw.wait_connected(WAIT)
    gaps = [attempts[0] - cut_at] + [b - a for a, b in itertools.pairwise(attempts)]
    # retry n waits backoff.delay(n): 0.05, 0.1, 0.2, 0.4, 0.4, 0.4 s, each ±25 %
    for n, gap in enumerate(gaps):
        low, high = backoff.bounds(n)
        assert low - 0.01 <= gap <= high + 0.1, (n, gap, gaps)
    reports = gw.error_stream.pending()
    assert any(e.kind == "connection-error" and "HTTP 500" in str(e) for e in reports)
    assert not any(e.kind == "handshake-refused" for e in reports)
    await gw.stop()
    await proxy.stop()
    await control.stop()


@pytest.mark.parametrize("refusal", ["401", "404"])
async def test_permanent_refusal_is_reported_and_retried_at_maximum_backoff(refusal: str) -> None:
    attempts: list[float] = []
    allow = False

    def check(gateway_id: str, password: str) -> bool:
        attempts.append(time.monotonic())
        return allow

    control = ControlCenter()
    control.set_basic_auth_handler(check)
    await control.start()
    url = control.url if refusal == "401" else control.url + "/wrong/base"
    backoff = Backoff(initial=0.01, maximum=0.3, jitter=0.25)
    gw = Gateway("GW-REF", password="secret", backoff=backoff)
    if refusal == "404":
        refused: list[float] = []
        control.error_stream.report = lambda e: refused.append(time.monotonic())  # type: ignore[method-assign]
        attempts = refused
    start = asyncio.ensure_future(gw.start(url, retry=True))
    await eventually(lambda: len(attempts) >= 3)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(0.3 * 0.75 - 0.01 <= gap <= 0.3 * 1.25 + 0.1 for gap in gaps), gaps
    reports = gw.error_stream.pending()
    refused_reports = [e for e in reports if e.kind == "handshake-refused"]
    assert refused_reports, reports
    assert f"HTTP {refusal}" in str(refused_reports[0])
    assert "longest backoff" in str(refused_reports[0])
    assert isinstance(gw.last_error, HandshakeRefusedError) and gw.last_error.permanent
    assert not gw.is_connected
    if refusal == "401":
        allow = True  # someone fixed the secret: the next attempt connects
        await asyncio.wait_for(start, 2)
        assert gw.is_connected and gw.last_error is None
    else:
        await gw.stop()  # stop() ends start(retry=True) at once
        with pytest.raises(NotConnectedError):
            await asyncio.wait_for(start, 1)
    await gw.stop()
    await control.stop()


async def test_start_retry_gives_up_after_max_attempts_and_can_start_again() -> None:
    port = free_port()  # nothing listens there yet
    gw = Gateway("GW-MAX", backoff=Backoff(initial=0.01, maximum=0.05, max_attempts=3))
    with pytest.raises(OSError):
        await asyncio.wait_for(gw.start(f"ws://127.0.0.1:{port}/ntxcp", retry=True), WAIT)
    reports = [e for e in gw.error_stream.pending() if e.kind == "connection-error"]
    assert len(reports) == 3 and "giving up after 3 attempts" in str(reports[-1])
    assert not gw.is_connected

    control = ControlCenter()
    await control.start(port)
    await gw.start(f"ws://127.0.0.1:{port}/ntxcp", retry=True)  # a failed start can be redone
    assert gw.is_connected
    with pytest.raises(RuntimeError):
        await gw.start(control.url)
    await gw.stop()
    await control.stop()


async def test_start_without_retry_raises_at_once() -> None:
    gw = Gateway("GW-ONCE")
    with pytest.raises(OSError):
        await gw.start(f"ws://127.0.0.1:{free_port()}/ntxcp")
    assert gw.last_error is not None and not gw.is_connected


async def test_duplicate_refused_with_409_is_retried_quickly(tmp_path: Path) -> None:
    control = ControlCenter(reject_duplicate=True)
    await control.start()
    first = Gateway("GW-DUP")
    await first.start(control.url)
    second = Gateway("GW-DUP", backoff=Backoff(initial=0.02, maximum=0.05))
    with pytest.raises(HandshakeRefusedError) as info:
        await second.start(control.url)
    assert info.value.status == 409 and not info.value.permanent
    refused = reported(control, "handshake-refused")
    assert refused()  # the refusal above
    retrying = asyncio.ensure_future(second.start(control.url, retry=True))
    await eventually(reported(control, "handshake-refused", 2))  # two retries refused
    assert not retrying.done()
    await first.stop()  # the id is free again: the newcomer gets in within a short delay
    await asyncio.wait_for(retrying, WAIT)
    assert second.is_connected
    assert "handshake-refused" not in kinds(second)
    await second.stop()
    await control.stop()


class ThreadedCenter:
    """A control center on its own event loop thread (for the blocking gateway)."""

    def __init__(self, center: Center, port: int) -> None:
        self.center = center
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.control: ControlCenter | None = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        async def start() -> None:
            self.control = ControlCenter()
            self.control.set_core_handler(self.center)
            await self.control.start(self.port)

        self.run(start())

    def stop(self) -> None:
        assert self.control is not None
        self.run(self.control.stop(grace=0.2))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_blocking_gateway_reconnects_and_forwards(tmp_path: Path) -> None:
    center = Center()
    server = ThreadedCenter(center, free_port())
    server.start()
    gw = ntxcp.sync.Gateway("GW-SYNC", backoff=FAST, store=str(tmp_path / "q.db"))
    try:
        events: list[str] = []
        gw.set_reconnected_handler(lambda: events.append("reconnected"))
        gw.set_disconnected_handler(lambda: events.append("disconnected"))
        gw.start(f"ws://127.0.0.1:{server.port}/ntxcp", retry=True)
        assert gw.is_connected
        server.stop()
        wait_until(lambda: not gw.is_connected)
        gw.queue_request(meter_values(0))  # stored while down
        assert gw.queued == 1
        server.start()
        gw.wait_connected(WAIT)
        gw.flush(WAIT)
        assert gw.queued == 0 and [s for _, s in center.meter_seqs()] == [0]
        wait_until(lambda: len(events) == 2)
        assert events == ["disconnected", "reconnected"]
        assert gw.last_error is None
    finally:
        gw.stop()
        server.stop()
        server.close()


# --- lifecycle (spec §4.1) ------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [core.RegistrationStatus.PENDING, core.RegistrationStatus.REJECTED]
)
async def test_boot_retried_after_interval_and_messages_held_back(
    cc: tuple[ControlCenter, Center], status: core.RegistrationStatus
) -> None:
    control, center = cc
    center.boot_answers = [(status, 1), (core.RegistrationStatus.ACCEPTED, 0)]
    gw = Gateway("GW-BOOT", boot=boot_request(), backoff=FAST)
    gw.queue_request(meter_values(0))
    await gw.start(control.url)
    direct = asyncio.ensure_future(gw.data_transfer("ding", timeout=WAIT))
    await eventually(lambda: gw.registration_status is status)
    assert center.actions() == ["BootNotification"]
    assert not gw.is_ready and not direct.done()
    await eventually(lambda: gw.is_ready)  # well before the 60 s used when the interval is 0
    await direct
    await gw.flush(WAIT)
    boots = [c[0] for c in center.calls if c[1] == "BootNotification"]
    assert len(boots) == 2 and boots[1] - boots[0] >= 0.9  # after `interval`
    # Nothing else before Accepted: the later retry came before any held message.
    assert center.actions()[:2] == ["BootNotification", "BootNotification"]
    assert sorted(center.actions()[2:]) == ["DataTransfer", "MeterValues"]
    await gw.stop()


async def test_held_back_call_keeps_its_timeout(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    center.boot_answers = [(core.RegistrationStatus.PENDING, 60)]
    gw = Gateway("GW-HELD", boot=boot_request())
    await gw.start(control.url)
    with pytest.raises(CallTimeoutError):  # its own 0.3 s, not the boot's 60 s
        await asyncio.wait_for(gw.data_transfer("ding", timeout=0.3), WAIT)
    with pytest.raises(CallTimeoutError) as info:
        await gw.meter_values(1, meter_values(0).meter_value, timeout=0.2)
    assert info.value.queued and gw.queued == 1
    await gw.stop()


async def test_boot_sent_by_the_application_releases_held_messages(
    cc: tuple[ControlCenter, Center],
) -> None:
    control, center = cc
    # The lifecycle's boot gets Pending for 30 s; the application's own boot is Accepted.
    center.boot_answers = [
        (core.RegistrationStatus.PENDING, 30),
        (core.RegistrationStatus.ACCEPTED, 7),
    ]
    gw = Gateway("GW-APPBOOT", boot=boot_request())
    await gw.start(control.url)
    await eventually(lambda: gw.registration_status is core.RegistrationStatus.PENDING)
    assert not gw.is_ready
    confirmation = await gw.boot_notification("DX-APP", timeout=2)
    assert confirmation.status is core.RegistrationStatus.ACCEPTED
    assert gw.is_ready and gw.registration_status is core.RegistrationStatus.ACCEPTED
    assert gw.heartbeat_interval == 7
    await gw.meter_values(1, meter_values(1).meter_value, timeout=2)  # no longer held back
    assert center.actions() == ["BootNotification", "BootNotification", "MeterValues"]
    await gw.stop()


async def test_heartbeat_at_the_accepted_interval(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    center.boot_answers = [(core.RegistrationStatus.ACCEPTED, 1)]
    gw = Gateway("GW-HB", boot=boot_request())
    started = time.monotonic()  # the clock of `center.calls`
    await gw.start(control.url)
    await gw.wait_ready(WAIT)
    assert gw.heartbeat_interval == 1

    def beats() -> list[float]:
        return [c[0] for c in center.calls if c[1] == "Heartbeat"]

    await eventually(lambda: len(beats()) >= 2)
    elapsed = time.monotonic() - started
    first, second = beats()[:2]
    assert second - first >= 0.9  # spec §4.1: one every `interval`, never sooner
    # and never more than fit into the time measured here (the first after one interval)
    assert len(beats()) <= elapsed // 1, (beats(), elapsed)
    await gw.stop()


async def test_heartbeat_interval_changed_at_run_time(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    center.boot_answers = [(core.RegistrationStatus.ACCEPTED, 300)]
    gw = Gateway("GW-HBSET", boot=boot_request())
    await gw.start(control.url)
    await gw.wait_ready(WAIT)
    assert gw.heartbeat_interval == 300

    def beats() -> int:
        return center.actions().count("Heartbeat")

    gw.set_heartbeat_interval(0.1)  # the next one 0.1 s from now, not after 300 s
    assert gw.heartbeat_interval == 0.1
    await eventually(lambda: beats() >= 2)
    gw.set_heartbeat_interval(None)  # paused
    paused_at = beats()
    await gw.data_transfer("ding", timeout=WAIT)  # a round trip: no Heartbeat meanwhile
    assert beats() <= paused_at + 1  # at most one that was already on its way
    with pytest.raises(ValueError):
        gw.set_heartbeat_interval(-1)
    await gw.stop()


async def test_the_state_follows_the_connection(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    center.boot_answers = [(core.RegistrationStatus.PENDING, 30)]
    gw = Gateway("GW-STATE", boot=boot_request(), reconnect=False)
    assert gw.state is GatewayState.IDLE
    await gw.start(control.url)
    await eventually(lambda: gw.registration_status is core.RegistrationStatus.PENDING)
    assert gw.state is GatewayState.CONNECTED  # held back until Accepted (spec §4.1)
    center.boot_answers = [(core.RegistrationStatus.ACCEPTED, 300)]
    await gw.boot_notification("DX-APP", timeout=WAIT)
    assert gw.state is GatewayState.READY
    await control.stop(grace=1.0)
    await eventually(lambda: gw.state is GatewayState.DISCONNECTED)  # reconnect off
    await gw.stop()
    assert gw.state is GatewayState.STOPPED


def test_the_state_machine_refuses_a_transition_it_does_not_know() -> None:
    machine = StateMachine()
    with pytest.raises(RuntimeError, match="idle to ready"):
        machine.enter(GatewayState.READY)
    machine.enter(GatewayState.CONNECTING)
    machine.enter(GatewayState.READY)
    assert machine.ready.is_set() and machine.connected.is_set()
    machine.enter(GatewayState.STOPPING)
    assert not machine.ready.is_set() and machine.stopping.is_set() and machine.is_stopping


async def test_reboot_after_accepted_reset(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc

    class Handler(core.GatewayHandler):
        def on_reset(self, request: core.ResetRequest) -> core.ResetConfirmation:
            return core.ResetConfirmation(status=core.ResetStatus.ACCEPTED)

    gw = Gateway("GW-RESET", boot=boot_request(), backoff=Backoff(initial=60))  # no slow path
    gw.set_core_handler(Handler())
    await gw.start(control.url)
    await gw.wait_ready(1)
    conf = await control.reset("GW-RESET", core.ResetType.SOFT)
    assert conf.status is core.ResetStatus.ACCEPTED  # the answer left before the reboot
    # at once: within WAIT, not after the 60 s backoff
    await eventually(lambda: gw.connect_count >= 2)
    await gw.wait_ready(WAIT)
    assert gw.last_close == (1000, "reset")
    assert center.actions().count("BootNotification") == 2
    await gw.stop()


# --- store and forward edge cases (spec §6.2) -------------------------------------------


async def test_caller_timeout_leaves_the_message_queued(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    center.meter_hook = lambda seq, uid: asyncio.sleep(0.4)
    gw = Gateway("GW-TO")
    await gw.start(control.url)
    with pytest.raises(CallTimeoutError) as info:
        await gw.meter_values(1, meter_values(0).meter_value, timeout=0.1)
    assert info.value.queued and "stays queued" in str(info.value)
    assert gw.queued == 1
    await gw.flush(2)
    assert gw.queued == 0 and len(center.meter_seqs()) == 1  # delivered once, not twice
    assert info.value.unique_id == center.meter_seqs()[0][0]
    await gw.stop()


async def test_stop_while_delivering_keeps_the_message(
    cc: tuple[ControlCenter, Center], tmp_path: Path
) -> None:
    control, center = cc
    center.meter_hook = lambda seq, uid: asyncio.sleep(10)
    gw = Gateway("GW-STOP", store=tmp_path / "q.db")
    await gw.start(control.url)
    waiting = asyncio.ensure_future(gw.meter_values(1, meter_values(7).meter_value, timeout=20))
    await eventually(lambda: bool(center.meter_seqs()))
    await asyncio.wait_for(gw.stop(), WAIT)  # not after the handler's 10 s
    with pytest.raises(NotConnectedError, match="stays queued"):
        await waiting
    center.meter_hook = None
    again = Gateway("GW-STOP", store=tmp_path / "q.db")  # e.g. the next process
    assert again.queued == 1
    await again.start(control.url)
    await again.flush(2)
    first, second = center.meter_seqs()
    assert first == second == (first[0], 7)  # same message, same uniqueId
    await again.stop()


async def test_lost_callresult_is_resent_with_the_same_id(cc: tuple[ControlCenter, Center]) -> None:
    control, center = cc
    proxy = CuttingProxy(control.port)
    await proxy.start()

    def cut_before_answering(seq: int, unique_id: str) -> Any:
        if len(center.meter_seqs()) == 1:  # the control center handled it; the answer is lost
            proxy.cut("rst")
        return None

    center.meter_hook = cut_before_answering
    gw = Gateway("GW-LOST", backoff=FAST)
    await gw.start(f"ws://127.0.0.1:{proxy.port}/ntxcp")
    conf = await gw.meter_values(1, meter_values(3).meter_value, timeout=5)
    assert isinstance(conf, core.MeterValuesConfirmation)
    (id1, s1), (id2, s2) = center.meter_seqs()
    assert id1 == id2 and s1 == s2 == 3
    assert gw.connect_count == 2 and gw.queued == 0
    await gw.stop()
    await proxy.stop()


async def test_callerror_moves_the_message_to_the_dead_letters(
    cc: tuple[ControlCenter, Center],
) -> None:
    control, center = cc

    def refuse_one(seq: int, unique_id: str) -> None:
        if seq == 1:
            raise CallError(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "meter 1 is unknown")

    center.meter_hook = refuse_one
    gw = Gateway("GW-DEAD")
    await gw.start(control.url)
    results = await asyncio.gather(
        *(gw.meter_values(1, meter_values(i).meter_value, timeout=2) for i in range(3)),
        return_exceptions=True,
    )
    assert isinstance(results[1], CallError)
    assert results[1].code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    (dead,) = gw.store.dead_letters()
    assert dead.code == "PropertyConstraintViolation" and "unknown" in dead.description
    assert json.loads(dead.message.payload)["meterValue"][0]["sampledValue"][0]["value"] == "1"
    assert [s for _, s in center.meter_seqs()] == [0, 1, 2]  # not retried
    assert "dead-letter" in kinds(gw)
    await gw.stop()


async def test_invalid_callresult_moves_the_message_to_the_dead_letters() -> None:
    class Liar:
        """A server that answers every CALL with a result MeterValues does not allow."""

        def __init__(self) -> None:
            self.link: Any = None

        def on_open(self, link: Any) -> None:
            self.link = link

        def on_message(self, data: bytes) -> None:
            unique_id = json.loads(data)[1]
            self.link.send(json.dumps([3, unique_id, {"bogus": True}]).encode())

        def on_close(self, code: int, reason: str) -> None:
            pass

    server = await listen(ServerOptions(), lambda info: Liar(), lambda info, refusal: None)
    gw = Gateway("GW-LIAR")
    await gw.start(f"ws://127.0.0.1:{server.port}/ntxcp")
    with pytest.raises(CallError) as info:
        await gw.meter_values(1, meter_values(0).meter_value, timeout=2)
    assert info.value.code is ErrorCode.FORMATION_VIOLATION
    assert [d.code for d in gw.store.dead_letters()] == ["FormationViolation"]
    assert gw.queued == 0
    await gw.stop()
    server.close()
    await server.wait_closed()


async def test_full_outbox_policies() -> None:
    gw = Gateway("GW-FULL", store=MemoryStore(max_count=2))
    gw.queue_request(meter_values(0))
    gw.queue_request(meter_values(1))
    with pytest.raises(StoreFullError):
        gw.queue_request(meter_values(2))
    with pytest.raises(ValueError):
        gw.queue_request(core.HeartbeatRequest())  # not a store-and-forward action

    dropping = Gateway("GW-DROP", store=MemoryStore(max_count=2, policy="drop-oldest"))
    outcomes: list[Any] = []
    for i in range(3):
        dropping.send_request_async(meter_values(i), lambda conf, err: outcomes.append(err))
    await eventually(lambda: bool(outcomes))
    assert len(outcomes) == 1 and isinstance(outcomes[0], StoreFullError)  # the oldest's waiter
    assert [d.code for d in dropping.store.dead_letters()] == ["dropped"]
    assert "dead-letter" in kinds(dropping) and dropping.queued == 2
    await dropping.stop()
    await gw.stop()


async def test_restarted_gateway_object_resumes_its_file_queue(
    cc: tuple[ControlCenter, Center], tmp_path: Path
) -> None:
    control, center = cc
    gw = Gateway("GW-AGAIN", store=tmp_path / "q.db", backoff=FAST)
    gw.queue_request(meter_values(0))
    await gw.stop()  # never started; the file keeps the message
    gw.queue_request(meter_values(1))  # still accepted after stop(), kept for later
    await gw.start(control.url)
    await gw.flush(2)
    await gw.stop()
    await gw.start(control.url)  # and once more: stop/start cycles are fine
    await gw.meter_values(1, meter_values(2).meter_value, timeout=2)
    await gw.stop()
    assert [s for _, s in center.meter_seqs()] == [0, 1, 2]
