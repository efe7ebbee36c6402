"""Prometheus metrics of the control center service (text exposition format 0.0.4).

A deliberately small implementation: counters, gauges and histograms with labels,
kept in dicts and rendered on each scrape of ``GET /metrics``. Updating a counter is
a dict lookup and an addition, cheap enough for the per-frame hot path.

Metrics (all prefixed ``ntxcp_``):

==========================================  =========  ================================
name                                        type       labels
==========================================  =========  ================================
``connected_gateways``                      gauge
``messages_total``                          counter    action, direction, type
``callerrors_total``                        counter    code, direction
``api_call_duration_seconds``               histogram  action
``duplicates_dropped_total``                counter    action
``meter_samples_stored_total``              counter
``boot_notifications_total``                counter    status
``endpoint_errors_total``                   counter    kind
``api_requests_total``                      counter    method, status
``gateway_auth_total``                      counter    outcome
``refused_gateways_total``                  counter
``gateway_connections_total``               counter
``api_bad_requests_total``                  counter
``accepted_connections_total``              counter
``handshakes_total``                        counter
``handshakes_in_progress``                  gauge
``handshakes_waiting``                      gauge
``accept_pauses_total``                     counter
``start_time_seconds``                      gauge
==========================================  =========  ================================

Label values that come from peers are taken only from known sets, so a peer cannot
create series at will: an ``action`` that is not an action of the spec (§4), an error
``code`` that is not one of §2.1, or an HTTP ``method`` outside the usual ones is
counted as ``other`` (see :func:`known_label`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence

from ntxcp.errors import ErrorCode
from ntxcp.transport import AdmissionCounts
from ntxcp.v10.registry import ACTIONS

__all__ = [
    "CONTENT_TYPE",
    "OTHER",
    "Counter",
    "Gauge",
    "Histogram",
    "Info",
    "ReadCounter",
    "Registry",
    "ServiceMetrics",
    "known_label",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the exposition format."""

Labels = tuple[str, ...]

OTHER = "other"
"""The label value of everything outside a label's known set."""

KNOWN_ACTIONS = frozenset(ACTIONS)
"""Action names of the spec (§4): the values of the ``action`` labels."""

KNOWN_ERROR_CODES = frozenset(code.value for code in ErrorCode)
"""CALLERROR codes of the spec (§2.1): the values of the ``code`` label."""

KNOWN_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""HTTP methods counted by name in ``api_requests_total``."""


def known_label(value: str, known: Collection[str]) -> str:
    """``value`` when it is in the ``known`` set, else :data:`OTHER`."""
    return value if value in known else OTHER


_LE_INF = 'le="+Inf"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Labels, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        """The metric's lines of the exposition text."""
        raise NotImplementedError


class Counter(_Metric):
    """A value that only goes up, per label combination."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        """Add ``amount`` to the counter of ``labels`` (values in label-name order)."""
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def value(self, labels: Labels = ()) -> float:
        """The current value of one label combination (0 when never counted)."""
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        """The metric's lines of the exposition text."""
        lines = self._header()
        if not self.values and not self.label_names:
            lines.append(f"{self.name} 0")
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


class Gauge(_Metric):
    """A value read from a function at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def render(self) -> list[str]:
        """The metric's lines of the exposition text."""
        return [*self._header(), f"{self.name} {_number(float(self.read()))}"]


class Info(_Metric):
    """Constant facts of the process as labels of one gauge of value 1 (``*_info``)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: dict[str, str]) -> None:
        super().__init__(name, help_text, tuple(labels))
        self.values = tuple(labels.values())

    def render(self) -> list[str]:
        """The metric's lines of the exposition text."""
        return [*self._header(), f"{self.name}{_labels(self.label_names, self.values)} 1"]


class ReadCounter(Gauge):
    """A counter kept elsewhere, read from a function at scrape time."""

    kind = "counter"


class Histogram(_Metric):
    """Observations counted in cumulative buckets, per label combination."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., count, sum
        if not self.label_names:  # its one series exists from the start, at zero
            self.series[()] = [0.0] * (len(self.buckets) + 2)

    def observe(self, value: float, labels: Labels = ()) -> None:
        """Count one observation (e.g. a duration in seconds)."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series[index] += 1
        series[-2] += 1
        series[-1] += value

    def count(self, labels: Labels = ()) -> int:
        """How many observations were made for ``labels``."""
        series = self.series.get(labels)
        return 0 if series is None else int(series[-2])

    def render(self) -> list[str]:
        """The metric's lines of the exposition text."""
        lines = self._header()
        names = self.label_names
        for labels, series in sorted(self.series.items()):
            for bound, count in zip(self.buckets, series, strict=False):
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(names, labels, le)} {_number(count)}")
            inf = _labels(names, labels, _LE_INF)
            lines.append(f"{self.name}_bucket{inf} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(names, labels)} {_number(series[-2])}")
            lines.append(f"{self.name}_sum{_labels(names, labels)} {_number(series[-1])}")
        return lines


class Registry:
    """The metrics rendered together on one scrape."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> None:
        """Include a metric in the exposition."""
        self.metrics.append(metric)

    def render(self) -> str:
        """The whole exposition text."""
        lines: list[str] = []
        for metric in self.metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class ServiceMetrics:
    """Every metric of the service, ready to update and render.

    Args:
        connected: returns how many gateways are connected now.
        database_bytes: returns the database's size.
        storage_alarm: returns 1 while a storage alarm is raised, else 0.
        admission: returns the gateway listener's admission counts.
        unresponsive: returns how many connected gateways are unresponsive now.
    """

    def __init__(
        self,
        connected: Callable[[], float],
        database_bytes: Callable[[], float] = lambda: 0,
        storage_alarm: Callable[[], float] = lambda: 0,
        admission: Callable[[], AdmissionCounts] = AdmissionCounts,
        unresponsive: Callable[[], float] = lambda: 0,
    ) -> None:
        self.registry = Registry()
        started = time.time()
        self.connected_gateways = Gauge(
            "ntxcp_connected_gateways", "Gateways connected now.", connected
        )
        self.unresponsive_gateways = Gauge(
            "ntxcp_unresponsive_gateways",
            "Connected gateways that missed their last pong (unresponsive) now.",
            unresponsive,
        )
        self.missed_pongs = Counter(
            "ntxcp_gateway_unresponsive_total",
            "Times a connected gateway missed a pong and became unresponsive.",
        )
        self.messages = Counter(
            "ntxcp_messages_total",
            "Frames received (in) and sent (out), by action and message type.",
            ("action", "direction", "type"),
        )
        self.call_errors = Counter(
            "ntxcp_callerrors_total",
            "CALLERROR frames received (in) and sent (out), by error code.",
            ("code", "direction"),
        )
        self.api_call_seconds = Histogram(
            "ntxcp_api_call_duration_seconds",
            "Duration of C->G calls sent through the HTTP API, by action.",
            ("action",),
        )
        self.duplicates = Counter(
            "ntxcp_duplicates_dropped_total",
            "Re-sent G->C messages (same unique id) acknowledged but not stored again.",
            ("action",),
        )
        self.loop_lag = Histogram(
            "ntxcp_event_loop_lag_seconds",
            "How late a timer of the event loop ran (every 50 ms): the longest a frame "
            "that arrived then waited before the service looked at it.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.meter_samples = Counter(
            "ntxcp_meter_samples_stored_total", "Sampled values stored from MeterValues."
        )
        self.boots = Counter(
            "ntxcp_boot_notifications_total",
            "BootNotifications answered, by registration status.",
            ("status",),
        )
        self.endpoint_errors = Counter(
            "ntxcp_endpoint_errors_total",
            "Problems on the control center's error stream, by kind.",
            ("kind",),
        )
        self.api_requests = Counter(
            "ntxcp_api_requests_total",
            "HTTP API requests, by method and status.",
            ("method", "status"),
        )
        self.frame_log_dropped = Counter(
            "ntxcp_frame_log_dropped_total",
            "Frames not written to the frame log, by reason (gateway-budget, "
            "total-budget, storage-alarm).",
            ("reason",),
        )
        self.frame_log_dropped_bytes = Counter(
            "ntxcp_frame_log_dropped_bytes_total",
            "Bytes of frames not written to the frame log, by reason.",
            ("reason",),
        )
        self.frame_log_truncated = Counter(
            "ntxcp_frame_log_truncated_total",
            "Refused or malformed frames logged as an excerpt.",
        )
        self.database_bytes = Gauge(
            "ntxcp_database_bytes", "Size of the database and its WAL.", database_bytes
        )
        self.storage_alarm = Gauge(
            "ntxcp_storage_alarm",
            "1 while the database is at --max-db-size or the disk below --min-free-disk "
            "(the frame log is stopped).",
            storage_alarm,
        )
        self.gateway_auth = Counter(
            "ntxcp_gateway_auth_total",
            "Basic-auth checks of gateways (accepted, rejected, rate-limited, busy).",
            ("outcome",),
        )
        self.refused_gateways = Counter(
            "ntxcp_refused_gateways_total",
            "Connections of unregistered gateways refused by --unknown-gateways reject.",
        )
        self.gateway_connections = Counter(
            "ntxcp_gateway_connections_total",
            "Gateway connections admitted (WebSocket upgrades completed; its rate is the "
            "admission rate, e.g. after a restart).",
        )
        self.api_bad_requests = Counter(
            "ntxcp_api_bad_requests_total",
            "Malformed HTTP requests on the API port (answered 400 by the HTTP parser).",
        )
        self.accepted_connections = ReadCounter(
            "ntxcp_accepted_connections_total",
            "TCP connections accepted by the gateway listener (paced: --accept-rate).",
            lambda: admission().accepted,
        )
        self.handshakes = ReadCounter(
            "ntxcp_handshakes_total",
            "Upgrade requests of gateways decided (admitted or refused).",
            lambda: admission().handshakes,
        )
        self.handshakes_in_progress = Gauge(
            "ntxcp_handshakes_in_progress",
            "Accepted connections whose upgrade is not decided yet (at most --max-handshakes).",
            lambda: admission().in_progress,
        )
        self.handshakes_waiting = Gauge(
            "ntxcp_handshakes_waiting",
            "Connections waiting in the listen backlog to be accepted (Linux).",
            lambda: admission().waiting,
        )
        self.accept_pauses = ReadCounter(
            "ntxcp_accept_pauses_total",
            "Times accepting paused because of --max-handshakes or --accept-rate.",
            lambda: admission().pauses,
        )
        self.start_time = Gauge(
            "ntxcp_start_time_seconds", "Start time of the service (Unix time).", lambda: started
        )
        for metric in (
            self.connected_gateways,
            self.messages,
            self.call_errors,
            self.api_call_seconds,
            self.duplicates,
            self.meter_samples,
            self.boots,
            self.endpoint_errors,
            self.api_requests,
            self.frame_log_dropped,
            self.frame_log_dropped_bytes,
            self.frame_log_truncated,
            self.database_bytes,
            self.storage_alarm,
            self.gateway_auth,
            self.refused_gateways,
            self.gateway_connections,
            self.unresponsive_gateways,
            self.missed_pongs,
            self.api_bad_requests,
            self.accepted_connections,
            self.handshakes,
            self.handshakes_in_progress,
            self.handshakes_waiting,
            self.accept_pauses,
            self.loop_lag,
            self.start_time,
        ):
            self.registry.add(metric)

    def render(self) -> str:
        """The exposition text for ``GET /metrics``."""
        return self.registry.render()
