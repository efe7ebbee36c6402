"""Payloads shared by the tests that count what arrived: numbered MeterValues."""

from __future__ import annotations

import datetime as dt

from ntxcp.v10 import core, types

__all__ = ["meter_values", "seq_of"]


def meter_values(seq: int) -> core.MeterValuesRequest:
    """A MeterValues whose (only) sampled value is the sequence number."""
    return core.MeterValuesRequest(
        service_id=1,
        meter_value=[
            types.MeterValue(
                timestamp=dt.datetime.now(dt.UTC),
                sampled_value=[types.SampledValue(value=str(seq))],
            )
        ],
    )


def seq_of(request: core.MeterValuesRequest) -> int:
    return int(request.meter_value[0].sampled_value[0].value)
