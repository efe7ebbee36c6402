"""``/metrics`` label values come only from known sets (issue: hostile peers, finding 4).

Action names and CALLERROR codes are read from frames a peer sends, and HTTP methods
from its requests: any value outside the spec's sets is counted as ``other``, so the
number of series does not grow with what peers invent.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from service_helpers import WAIT

from ntxcp.errors import ErrorCode
from ntxcp.service import Service, ServiceConfig
from ntxcp.v10.registry import ACTIONS
from waiting import eventually

pytestmark = pytest.mark.timeout(60)

# Methods the HTTP parser knows (it refuses invented ones) but the API does not use.
_RARE_METHODS = ("PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH", "UNLINK")
_SERIES = re.compile(r"^(ntxcp_\w+)\{(.*)\} ", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service accepting any gateway, without authentication."""
    async with Service(ServiceConfig(port=0, api_port=0, db=str(tmp_path / "m.sqlite"))) as svc:
        yield svc


async def _attack(http: aiohttp.ClientSession, service: Service, rounds: range) -> None:
    """Invented actions, error codes and HTTP methods, one connection per round."""
    for n in rounds:
        async with http.ws_connect(f"{service.ws_url}/GW-{n}", protocols=("ntxcp1.0",)) as ws:
            await ws.send_str(json.dumps([2, f"c{n}", f"Invented{n}", {}]))
            answer = json.loads(await ws.receive_str(timeout=WAIT))
            assert answer[:3] == [4, f"c{n}", "NotImplemented"]
            await ws.send_str(json.dumps([4, f"e{n}", f"Code{n}", "made up", {}]))
            await ws.send_str(json.dumps([2, f"h{n}", "Heartbeat", {}]))
            await ws.receive_str(timeout=WAIT)  # answered in order: the CALLERROR was read
        method = _RARE_METHODS[n % len(_RARE_METHODS)]
        async with http.request(method, service.api_url + "healthz") as response:
            await response.read()


def _series(text: str) -> list[tuple[str, dict[str, str]]]:
    return [(name, dict(_LABEL.findall(labels))) for name, labels in _SERIES.findall(text)]


async def test_peer_values_do_not_create_series(service: Service) -> None:
    async with aiohttp.ClientSession() as http:
        await _attack(http, service, range(3))
        first = service.metrics.render()
        await _attack(http, service, range(3, 40))
        second = service.metrics.render()
    assert len(_series(second)) == len(_series(first))
    actions = set(ACTIONS) | {"", "other"}
    codes = {code.value for code in ErrorCode} | {"other"}
    seen: dict[str, set[str]] = {"action": set(), "code": set(), "method": set()}
    for name, labels in _series(second):
        for label, value in labels.items():
            if label in seen:
                seen[label].add(value)
        if "action" in labels:
            assert labels["action"] in actions, (name, labels)
        if "code" in labels:
            assert labels["code"] in codes, (name, labels)
    assert "other" in seen["action"] and "other" in seen["code"] and "other" in seen["method"]
    assert 'ntxcp_callerrors_total{code="other",direction="in"} 40' in second
    assert 'ntxcp_callerrors_total{code="NotImplemented",direction="out"} 40' in second
    assert 'ntxcp_messages_total{action="other",direction="in",type="CALL"} 40' in second
    assert 'ntxcp_api_requests_total{method="other",status="405"} 40' in second


async def test_event_loop_lag_is_measured(service: Service) -> None:
    """``ntxcp_event_loop_lag_seconds`` records how late the loop runs a timer.

    A callback that holds the loop for 0.3 s (as a tick full of handshakes would)
    shows up as one observation over 0.25 s, next to the short ones.
    """
    lag = service.metrics.loop_lag
    await eventually(lambda: lag.count() >= 2)  # measured by itself, every 50 ms
    assert lag.series[()][lag.buckets.index(0.25)] == lag.count()  # nothing late yet
    asyncio.get_running_loop().call_soon(time.sleep, 0.3)
    await eventually(lambda: lag.series[()][lag.buckets.index(0.25)] < lag.count())
    text = service.metrics.render()
    assert 'ntxcp_event_loop_lag_seconds_bucket{le="0.25"}' in text
