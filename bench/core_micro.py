"""Micro-benchmark of the protocol core (no sockets): cost per message in µs.

Measures, in one run:
  * an inbound MeterValues CALL with 4 sampled values: text in -> validated typed
    request out (``RpcConnection.receive``), then its confirmation encoded
    (``send_result`` + ``data_to_send``);
  * the same for BootNotification;
  * the validation step alone (payload bytes -> typed request, ``decode_payload``);
  * the baseline: ``jsonschema`` validating the already-parsed payload against the
    exported JSON Schema (Draft 2020-12 validator, compiled once).

Prints µs per message and the ratios. Usage: ``python bench/core_micro.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import jsonschema

from ntxcp.rpc import CallReceived, Role, RpcConnection
from ntxcp.v10 import Profile, core
from ntxcp.v10.codec import decode_payload
from ntxcp.v10.schema import request_schema

METER_VALUES = {
    "serviceId": 1,
    "meterValue": [
        {
            "timestamp": "2026-11-23T18:36:34.123Z",
            "sampledValue": [
                {"value": "12345.6", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "31.3", "measurand": "Current.Import", "unit": "A"},
                {"value": "230.1", "measurand": "Voltage", "unit": "V"},
            ],
        }
    ],
}
BOOT = {
    "dingxGatewayModel": "DX-100",
    "dingxGatewayVendor": "Ding.X",
    "dingxGatewaySerialNumber": "DX-000123",
    "firmwareVersion": "1.4.0",
}


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Median µs per call over ``repeat`` runs of ``number`` calls."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke mode)")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (50_000, 7)

    def fresh() -> RpcConnection:
        # One connection per measurement: a receive-only loop leaves every CALL
        # unanswered, and answers queued behind them would measure that backlog.
        return RpcConnection(Role.CONTROL_CENTER, profiles={Profile.CORE}, bad_message_limit=None)

    cases = {
        "MeterValues(4)": (METER_VALUES, core.MeterValuesRequest, core.MeterValuesConfirmation()),
        "BootNotification": (
            BOOT,
            core.BootNotificationRequest,
            core.BootNotificationConfirmation(
                status=core.RegistrationStatus.ACCEPTED,
                current_time=datetime(2026, 11, 23, tzinfo=UTC),
                interval=300,
            ),
        ),
    }
    print(
        f"{'message':18} {'receive':>9} {'+answer':>9} {'validate':>9} "
        f"{'jsonschema':>11} {'ratio':>7}"
    )
    for name, (payload, cls, confirmation) in cases.items():
        action = cls.ACTION
        frame = json.dumps([2, "b6b2e5c8-8c4f-4a43-9f43-b4b7f5b6c001", action, payload]).encode()
        payload_bytes = json.dumps(payload).encode()

        receiving, answering = fresh(), fresh()

        def receive(frame: bytes = frame, rpc: RpcConnection = receiving) -> None:
            events = rpc.receive(frame, 0.0)
            assert type(events[0]) is CallReceived

        def receive_and_answer(
            frame: bytes = frame,
            confirmation: object = confirmation,
            rpc: RpcConnection = answering,
        ) -> None:
            event = rpc.receive(frame, 0.0)[0]
            assert isinstance(event, CallReceived)
            rpc.send_result(event, confirmation)  # type: ignore[arg-type]
            rpc.data_to_send()

        def validate(payload_bytes: bytes = payload_bytes, cls: type = cls) -> None:
            decode_payload(cls, payload_bytes)

        validator = jsonschema.Draft202012Validator(request_schema(action))
        parsed = json.loads(payload_bytes)

        def baseline(parsed: object = parsed, validator: jsonschema.Validator = validator) -> None:
            validator.validate(parsed)

        t_receive = per_call_us(receive, number, repeat)
        t_answer = per_call_us(receive_and_answer, number, repeat)
        t_validate = per_call_us(validate, number, repeat)
        t_schema = per_call_us(baseline, max(number // 20, 200), repeat)
        print(
            f"{name:18} {t_receive:8.2f}µ {t_answer:8.2f}µ {t_validate:8.2f}µ "
            f"{t_schema:10.2f}µ {t_schema / t_validate:6.0f}x"
        )
    print("targets: receive MeterValues(4) <= 10 µs; validation >= 30x faster than jsonschema")


if __name__ == "__main__":
    main()
