"""The configuration store of a simulated gateway (spec §4.1 Change/GetConfiguration).

A real gateway keeps a small table of named settings that the control center reads
with GetConfiguration and writes with ChangeConfiguration. The simulator's table:

========================  =====  ======================================================
key                       kind   meaning
========================  =====  ======================================================
HeartbeatInterval         rw     seconds between Heartbeats, integer ≥ 0 (0: none).
                                 Set from the BootNotification answer (spec §4.1);
                                 a change takes effect at once.
MeterValueSampleInterval  rw     seconds between periodic MeterValues, integer ≥ 0
                                 (0: none); a change takes effect at once.
MeterValuesSampledData    rw     comma-separated measurands sent in MeterValues
                                 (spec §4.1 Measurand), at least one, among
                                 :data:`SUPPORTED_MEASURANDS`.
WebSocketPingInterval     rw     seconds between WebSocket pings, integer ≥ 0 (0: off);
                                 answered ``RebootRequired``, applied at the next boot.
Vendor.Note               rw     free text, at most 500 characters.
ServiceCount              ro     number of services (ids ``1``..``N``).
GatewayModel              ro     the model sent in BootNotification.
GatewayVendor             ro     the vendor sent in BootNotification.
SerialNumber              ro     the serial number sent in BootNotification.
FirmwareVersion           ro     the running firmware version.
========================  =====  ======================================================

Keys are case-insensitive (CiString50, spec §3) and answered with their canonical
spelling. ChangeConfiguration answers ``NotSupported`` for an unknown key,
``Rejected`` for a read-only key or an invalid value, ``Accepted`` (or
``RebootRequired``) otherwise.

The constructor takes intervals as floats so that tests can run with sub-second
intervals; they are written back as integers when they are whole numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ntxcp.v10.core import ConfigurationStatus
from ntxcp.v10.types import KeyValue, Measurand

__all__ = [
    "DEFAULT_SAMPLED_DATA",
    "SUPPORTED_MEASURANDS",
    "ConfigKey",
    "ConfigStore",
    "format_seconds",
]

DEFAULT_SAMPLED_DATA: tuple[Measurand, ...] = (
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,
    Measurand.POWER_ACTIVE_IMPORT,
    Measurand.CURRENT_IMPORT,
    Measurand.VOLTAGE,
)
"""Measurands of a MeterValue unless ``MeterValuesSampledData`` says otherwise."""

SUPPORTED_MEASURANDS: tuple[Measurand, ...] = (
    *DEFAULT_SAMPLED_DATA,
    Measurand.ENERGY_ACTIVE_IMPORT_INTERVAL,
    Measurand.POWER_OFFERED,
    Measurand.CURRENT_OFFERED,
    Measurand.TEMPERATURE,
)
"""The measurands the simulated meters produce; ``MeterValuesSampledData`` may name these.

Measurands without a unit in spec §4.1 UnitOfMeasure (``Frequency``, ``Power.Factor``)
are left out: an absent unit means ``Wh``, which would be wrong for them.
"""

HEARTBEAT_INTERVAL = "HeartbeatInterval"
METER_VALUE_SAMPLE_INTERVAL = "MeterValueSampleInterval"
METER_VALUES_SAMPLED_DATA = "MeterValuesSampledData"
WEBSOCKET_PING_INTERVAL = "WebSocketPingInterval"
VENDOR_NOTE = "Vendor.Note"
SERVICE_COUNT = "ServiceCount"
GATEWAY_MODEL = "GatewayModel"
GATEWAY_VENDOR = "GatewayVendor"
SERIAL_NUMBER = "SerialNumber"
FIRMWARE_VERSION = "FirmwareVersion"

Validator = Callable[[str], str | None]
"""Checks a new value: returns it normalised, or ``None`` when it is invalid."""


def format_seconds(seconds: float) -> str:
    """Write a number of seconds as a configuration value (``60``, ``0.5``).

    Args:
        seconds: a non-negative number.

    Returns:
        An integer text when the number is whole, else the shortest decimal text.
    """
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _non_negative_int(value: str) -> str | None:
    text = value.strip()
    if not (text.isascii() and text.isdigit()):  # spec §3 integer: no sign, no fraction
        return None
    return str(int(text))


def _measurand_list(value: str) -> str | None:
    by_name = {m.value.casefold(): m.value for m in SUPPORTED_MEASURANDS}
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        return None
    normalised: list[str] = []
    for item in items:
        name = by_name.get(item.casefold())
        if name is None:
            return None
        if name not in normalised:
            normalised.append(name)
    return ",".join(normalised)


def _any_text(value: str) -> str | None:
    return value  # CiString500 is already enforced by the message model (spec §4.1)


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of the table.

    Attributes:
        name: the canonical spelling.
        readonly: whether ChangeConfiguration is refused.
        validator: checks and normalises a new value (read-write keys only).
        reboot_required: a change takes effect only after the next boot.
    """

    name: str
    readonly: bool
    validator: Validator | None = None
    reboot_required: bool = False


_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(HEARTBEAT_INTERVAL, False, _non_negative_int),
    ConfigKey(METER_VALUE_SAMPLE_INTERVAL, False, _non_negative_int),
    ConfigKey(METER_VALUES_SAMPLED_DATA, False, _measurand_list),
    ConfigKey(WEBSOCKET_PING_INTERVAL, False, _non_negative_int, reboot_required=True),
    ConfigKey(VENDOR_NOTE, False, _any_text),
    ConfigKey(SERVICE_COUNT, True),
    ConfigKey(GATEWAY_MODEL, True),
    ConfigKey(GATEWAY_VENDOR, True),
    ConfigKey(SERIAL_NUMBER, True),
    ConfigKey(FIRMWARE_VERSION, True),
)

ChangeListener = Callable[[str, str], object]
"""``listener(key, value)``, called after a key changed."""


class ConfigStore:
    """The key/value table of one simulated gateway.

    Args:
        values: the initial value of every key (canonical names); keys without a value
            are reported without ``value`` by GetConfiguration.
    """

    def __init__(self, values: dict[str, str]) -> None:
        self._keys = {key.name.casefold(): key for key in _KEYS}
        self._values: dict[str, str] = {}
        for name, value in values.items():
            self._values[self._require(name).name] = value
        self._listeners: list[ChangeListener] = []

    def _require(self, name: str) -> ConfigKey:
        key = self._keys.get(name.casefold())
        if key is None:
            raise KeyError(name)
        return key

    @property
    def keys(self) -> list[str]:
        """Every key's canonical name, in table order."""
        return [key.name for key in _KEYS]

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(key, value)`` after every change (by either side)."""
        self._listeners.append(listener)

    def get(self, name: str) -> str | None:
        """The value of a key (case-insensitive), ``None`` when unset.

        Raises:
            KeyError: the key is unknown.
        """
        return self._values.get(self._require(name).name)

    def get_int(self, name: str, default: int = 0) -> int:
        """The value of an integer key, ``default`` when unset."""
        value = self.get(name)
        return default if value is None else int(value)

    def get_seconds(self, name: str) -> float:
        """The value of an interval key as seconds (accepts the float form of the constructor)."""
        value = self.get(name)
        return 0.0 if value is None else float(value)

    def set(self, name: str, value: str) -> None:
        """Set a key from the gateway itself (read-only keys too), telling the listeners.

        Raises:
            KeyError: the key is unknown.
        """
        key = self._require(name)
        if self._values.get(key.name) == value:
            return
        self._values[key.name] = value
        for listener in self._listeners:
            listener(key.name, value)

    def change(self, name: str, value: str) -> ConfigurationStatus:
        """Apply a ChangeConfiguration from the control center (spec §4.1).

        Args:
            name: the key, any case.
            value: the new value as text.

        Returns:
            ``NotSupported`` for an unknown key, ``Rejected`` for a read-only key or an
            invalid value, ``RebootRequired`` for a key applied at the next boot,
            ``Accepted`` otherwise.
        """
        key = self._keys.get(name.casefold())
        if key is None:
            return ConfigurationStatus.NOT_SUPPORTED
        if key.readonly or key.validator is None:
            return ConfigurationStatus.REJECTED
        normalised = key.validator(value)
        if normalised is None:
            return ConfigurationStatus.REJECTED
        self.set(key.name, normalised)
        if key.reboot_required:
            return ConfigurationStatus.REBOOT_REQUIRED
        return ConfigurationStatus.ACCEPTED

    def read(self, names: Iterable[str] | None) -> tuple[list[KeyValue], list[str]]:
        """Answer a GetConfiguration (spec §4.1).

        Args:
            names: the keys asked for; ``None`` or empty means every key.

        Returns:
            The known keys with their values, and the unknown keys as asked.
        """
        wanted = list(names or [])
        if not wanted:
            wanted = self.keys
        known: list[KeyValue] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for name in wanted:
            key = self._keys.get(name.casefold())
            if key is None:
                unknown.append(name)
            elif key.name not in seen:
                seen.add(key.name)
                known.append(
                    KeyValue(key=key.name, readonly=key.readonly, value=self._values.get(key.name))
                )
        return known, unknown

    def as_dict(self) -> dict[str, str]:
        """Every set key and its value, in table order."""
        return {name: self._values[name] for name in self.keys if name in self._values}

    def measurands(self) -> list[Measurand]:
        """The measurands of ``MeterValuesSampledData`` (the defaults when unset)."""
        value = self.get(METER_VALUES_SAMPLED_DATA)
        if not value:
            return list(DEFAULT_SAMPLED_DATA)
        return [Measurand(item) for item in value.split(",")]
