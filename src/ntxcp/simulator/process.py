"""The simulated service processes of a gateway and their meters (spec §4.1).

A Ding.X Gateway runs services ``1``..``N``; each has a meter and a few process
datapoints. The model here is small but physically consistent:

* a service is ``Charging`` (drawing power near its rated power, with a slow random
  walk) or ``Available`` (drawing nothing); it switches at random, on average after
  30 min of charging and 15 min idle, which yields a StatusNotification (spec §4.1);
  ``Faulted``/``Unavailable`` and the others are only entered when the application
  sets them (:meth:`Service.set_status`) and freeze the process;
* the energy register ``Energy.Active.Import.Register`` integrates the power over the
  time that really passed, so it never decreases, whatever the sample interval;
* ``Current.Import`` is the current per phase, power / (phases * voltage) (services
  up to 7.4 kW are single-phase, larger ones three-phase); the voltage wanders around
  230 V; temperature, pressure and flow follow the load with a lag.

Every random choice comes from a :class:`random.Random` seeded with the gateway id,
so that two runs of one gateway id behave alike.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ntxcp.v10.core import DingxGatewayErrorCode, DingxGatewayStatus
from ntxcp.v10.types import (
    Measurand,
    MeterValue,
    ReadingContext,
    SampledValue,
    UnitOfMeasure,
)

__all__ = ["DATAPOINTS", "Datapoint", "Plant", "Service"]

_CHARGING_MEAN_S = 1800.0
_IDLE_MEAN_S = 900.0
_NOMINAL_VOLTAGE = 230.0
# The energy register at power-on: a seeded base plus the wall-clock time since this
# reference at the rated power. Running, the register grows at the actual power, never
# above the rated one, so a restarted simulator starts at least where the last run of
# the same gateway ended: a real meter's register never goes backwards (spec §4.1).
_REGISTER_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_AMBIENT_C = 20.0

_UNITS: dict[Measurand, UnitOfMeasure] = {
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER: UnitOfMeasure.WH,
    Measurand.ENERGY_ACTIVE_IMPORT_INTERVAL: UnitOfMeasure.WH,
    Measurand.POWER_ACTIVE_IMPORT: UnitOfMeasure.W,
    Measurand.POWER_OFFERED: UnitOfMeasure.W,
    Measurand.CURRENT_IMPORT: UnitOfMeasure.A,
    Measurand.CURRENT_OFFERED: UnitOfMeasure.A,
    Measurand.VOLTAGE: UnitOfMeasure.V,
    Measurand.TEMPERATURE: UnitOfMeasure.CELSIUS,
}

DATAPOINTS: dict[str, str | None] = {
    "temperature": "Celsius",
    "pressure": "bar",
    "flow": "l/min",
    "state": None,
    "energy": "Wh",
    "power": "W",
    "current": "A",
    "voltage": "V",
}
"""The datapoints of every service for CaptureProcess (spec §4.1), with their units."""


@dataclass(frozen=True, slots=True)
class Datapoint:
    """One captured datapoint value.

    Attributes:
        value: the value as text.
        unit: its unit, ``None`` for a state text.
    """

    value: str
    unit: str | None


class Service:
    """One service process with its meter.

    Args:
        service_id: the service number (1..N).
        rng: the gateway's random generator.
        now: the wall-clock time of power-on (seconds since the Unix epoch).
    """

    def __init__(self, service_id: int, rng: random.Random, now: float) -> None:
        self.service_id = service_id
        self._rng = rng
        self.rated_power_w = rng.choice((3700.0, 7400.0, 11000.0, 22000.0))
        self.phases = 1 if self.rated_power_w <= 7400.0 else 3  # 16/32 A single, 16/32 A three
        self.status = DingxGatewayStatus.CHARGING
        self.error_code = DingxGatewayErrorCode.NO_ERROR
        self.info: str | None = None
        since_epoch = max(0.0, now - _REGISTER_EPOCH)
        self.energy_wh = round(
            rng.uniform(100_000.0, 5_000_000.0) + since_epoch * self.rated_power_w / 3600.0, 1
        )
        self.power_w = self.rated_power_w * rng.uniform(0.6, 1.0)
        self.voltage_v = _NOMINAL_VOLTAGE + rng.uniform(-2.0, 2.0)
        self.temperature_c = _AMBIENT_C + 10.0
        self.pressure_bar = 1.5
        self.flow_l_min = 0.0
        self.sessions_started = 0
        self._interval_start_wh = self.energy_wh

    @property
    def running(self) -> bool:
        """Whether the process follows its own dynamics (not frozen by the application)."""
        return self.status in (DingxGatewayStatus.CHARGING, DingxGatewayStatus.AVAILABLE)

    @property
    def current_a(self) -> float:
        """The current drawn per phase: power / (phases * voltage)."""
        return self.power_w / (self.phases * self.voltage_v) if self.voltage_v > 0 else 0.0

    def set_status(
        self,
        status: DingxGatewayStatus,
        error_code: DingxGatewayErrorCode = DingxGatewayErrorCode.NO_ERROR,
        info: str | None = None,
    ) -> bool:
        """Set the status from outside (a fault, maintenance, ...).

        Returns:
            Whether status, error code or info changed (a StatusNotification is due).
        """
        changed = (status, error_code, info) != (self.status, self.error_code, self.info)
        self.status, self.error_code, self.info = status, error_code, info
        if status is not DingxGatewayStatus.CHARGING:
            self.power_w = 0.0
        elif self.power_w == 0.0:
            self.power_w = self.rated_power_w * self._rng.uniform(0.6, 1.0)
        return changed

    def advance(self, seconds: float) -> bool:
        """Let ``seconds`` of process time pass.

        Returns:
            Whether the status changed (a StatusNotification is due, spec §4.1).
        """
        if seconds <= 0:
            return False
        rng = self._rng
        # The energy register integrates the power of the elapsed time (never decreases).
        self.energy_wh += self.power_w * seconds / 3600.0
        self.voltage_v = min(235.0, max(225.0, self.voltage_v + rng.gauss(0.0, 0.3)))
        changed = False
        if self.running:
            mean = _CHARGING_MEAN_S if self.status is DingxGatewayStatus.CHARGING else _IDLE_MEAN_S
            if rng.random() < 1.0 - math.exp(-seconds / mean):
                charging = self.status is not DingxGatewayStatus.CHARGING
                self.set_status(
                    DingxGatewayStatus.CHARGING if charging else DingxGatewayStatus.AVAILABLE
                )
                if charging:
                    self.sessions_started += 1
                changed = True
            elif self.status is DingxGatewayStatus.CHARGING:
                step = rng.gauss(0.0, 0.03) * self.rated_power_w
                self.power_w = min(
                    self.rated_power_w, max(0.2 * self.rated_power_w, self.power_w + step)
                )
        load = self.power_w / self.rated_power_w
        lag = 1.0 - math.exp(-seconds / 120.0)  # first-order lag, 2 min time constant
        self.temperature_c += (_AMBIENT_C + 25.0 * load - self.temperature_c) * lag
        self.temperature_c += rng.gauss(0.0, 0.05)
        self.pressure_bar += (1.5 + 0.5 * load - self.pressure_bar) * lag
        self.flow_l_min += (14.0 * load - self.flow_l_min) * lag
        return changed

    def value(self, measurand: Measurand) -> float:
        """The present value of a supported measurand (see ``SUPPORTED_MEASURANDS``)."""
        match measurand:
            case Measurand.ENERGY_ACTIVE_IMPORT_REGISTER:
                return self.energy_wh
            case Measurand.ENERGY_ACTIVE_IMPORT_INTERVAL:
                return self.energy_wh - self._interval_start_wh
            case Measurand.POWER_ACTIVE_IMPORT:
                return self.power_w
            case Measurand.POWER_OFFERED:
                return self.rated_power_w
            case Measurand.CURRENT_IMPORT:
                return self.current_a
            case Measurand.CURRENT_OFFERED:
                return self.rated_power_w / (self.phases * _NOMINAL_VOLTAGE)
            case Measurand.VOLTAGE:
                return self.voltage_v
            case Measurand.TEMPERATURE:
                return self.temperature_c
        raise ValueError(f"measurand {measurand.value} is not simulated")

    def sample(
        self,
        measurands: Sequence[Measurand],
        timestamp: datetime,
        context: ReadingContext = ReadingContext.SAMPLE_PERIODIC,
    ) -> MeterValue:
        """Read the meter: one MeterValue with a SampledValue per measurand (spec §4.1).

        A periodic sample starts a new ``Energy.Active.Import.Interval``.
        """
        meter_value = _meter_value([(m, self.value(m)) for m in measurands], timestamp, context)
        if context is ReadingContext.SAMPLE_PERIODIC:
            self._interval_start_wh = self.energy_wh
        return meter_value

    def datapoints(self) -> dict[str, Datapoint]:
        """The current value of every datapoint of :data:`DATAPOINTS` (CaptureProcess)."""
        values = {
            "temperature": f"{self.temperature_c:.1f}",
            "pressure": f"{self.pressure_bar:.2f}",
            "flow": f"{self.flow_l_min:.1f}",
            "state": self.status.value,
            "energy": f"{self.energy_wh:.1f}",
            "power": f"{self.power_w:.1f}",
            "current": f"{self.current_a:.2f}",
            "voltage": f"{self.voltage_v:.1f}",
        }
        return {name: Datapoint(values[name], unit) for name, unit in DATAPOINTS.items()}


def _format(measurand: Measurand, value: float) -> str:
    if measurand is Measurand.CURRENT_IMPORT or measurand is Measurand.CURRENT_OFFERED:
        return f"{value:.2f}"
    return f"{value:.1f}"


def _meter_value(
    values: Iterable[tuple[Measurand, float]], timestamp: datetime, context: ReadingContext
) -> MeterValue:
    return MeterValue(
        timestamp=timestamp,
        sampled_value=[
            SampledValue(
                value=_format(measurand, value),
                context=context,
                measurand=measurand,
                unit=_UNITS[measurand],
            )
            for measurand, value in values
        ],
    )


class Plant:
    """All services of one gateway, plus the gateway-wide view (service ``0``).

    Args:
        gateway_id: seeds the random generator.
        services: the number of services.
        now: the wall-clock time of power-on (default: now); it sets where the energy
            registers start, so they never go backwards across restarts.
    """

    def __init__(self, gateway_id: str, services: int, now: float | None = None) -> None:
        if services < 1:
            raise ValueError("a gateway has at least one service")
        self.rng = random.Random(gateway_id)
        started = time.time() if now is None else now
        self.services = [Service(number, self.rng, started) for number in range(1, services + 1)]

    def service(self, service_id: str | int) -> Service | None:
        """The service with this id (``"1"`` or ``1``); ``None`` for ``0`` or unknown."""
        text = str(service_id).strip()
        if not (text.isascii() and text.isdigit()) or text != str(int(text)):
            return None  # only the canonical spelling: "1", not "01" or "+1"
        number = int(text)
        return self.services[number - 1] if 1 <= number <= len(self.services) else None

    def advance(self, seconds: float) -> list[Service]:
        """Let time pass for every service; returns those whose status changed."""
        return [service for service in self.services if service.advance(seconds)]

    @property
    def sessions_started(self) -> int:
        """Charging sessions started by all services since power-on."""
        return sum(service.sessions_started for service in self.services)

    def total_sample(
        self,
        measurands: Sequence[Measurand],
        timestamp: datetime,
        context: ReadingContext = ReadingContext.TRIGGER,
    ) -> MeterValue:
        """The gateway's main meter (service ``0``): sums of energy, power and current."""
        values: list[tuple[Measurand, float]] = []
        for measurand in measurands:
            readings = [service.value(measurand) for service in self.services]
            if measurand in (Measurand.VOLTAGE, Measurand.TEMPERATURE):
                values.append((measurand, sum(readings) / len(readings)))
            else:
                values.append((measurand, sum(readings)))
        return _meter_value(values, timestamp, context)

    def total_datapoints(self) -> dict[str, Datapoint]:
        """The gateway-wide datapoints of service ``0`` (uptime etc. added by the caller)."""
        energy = sum(service.energy_wh for service in self.services)
        power = sum(service.power_w for service in self.services)
        temperature = max(service.temperature_c for service in self.services)
        return {
            "temperature": Datapoint(f"{temperature:.1f}", "Celsius"),
            "energy": Datapoint(f"{energy:.1f}", "Wh"),
            "power": Datapoint(f"{power:.1f}", "W"),
        }
