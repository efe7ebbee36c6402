"""Settings of the control center service: defaults, TOML file, command line.

Three sources, later ones win: the defaults of :class:`ServiceConfig`, a TOML file
(``--config``; the same keys as the command-line flags, with dashes or underscores,
either at the top level or in a ``[control-center]`` table), and the flags given on
the command line. :func:`build_config` merges them and checks the result, raising
:class:`ConfigError` with a message meant for the person who started the service.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ntxcp.transport.options import DEFAULT_MAX_HANDSHAKES

__all__ = [
    "SERVICE_ACCEPT_RATE",
    "AuthMode",
    "ConfigError",
    "Durability",
    "FrameLogMode",
    "LogFormat",
    "ServiceConfig",
    "UnknownGatewayPolicy",
    "build_config",
    "is_loopback",
    "load_toml",
]


class UnknownGatewayPolicy(StrEnum):
    """How a BootNotification of a gateway that was never registered is answered."""

    ACCEPT = "accept"
    PENDING = "pending"
    REJECT = "reject"


class AuthMode(StrEnum):
    """How gateways authenticate on the upgrade request (spec §1 security profiles)."""

    NONE = "none"
    BASIC = "basic"


class Durability(StrEnum):
    """When the service considers data from a gateway stored (and sends the CALLRESULT).

    ``disk``: the commit is fsync'ed (SQLite ``synchronous=FULL``); it survives a
    power cut. ``process``: the commit reaches the operating system only
    (``synchronous=NORMAL``); it survives the process being killed, not a power cut
    or kernel panic. See ``docs/service.md`` for the guarantee table.
    """

    DISK = "disk"
    PROCESS = "process"


class FrameLogMode(StrEnum):
    """Which frames go to the frame log (see :mod:`ntxcp.service.framelog`)."""

    ALL = "all"
    ERRORS = "errors"
    """Only CALLERRORs, unreadable frames and frames of gateways not accepted."""
    OFF = "off"


class LogFormat(StrEnum):
    """How log records are written to standard error."""

    TEXT = "text"
    JSON = "json"


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


_DB_FILE_PARAMETERS = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
"""Parameters of a ``postgresql://`` URL that name files (TLS, see docs/deployment.md)."""


class ConfigError(Exception):
    """The settings are unusable; the message says why.

    Attributes:
        exit_code: the process exit code to use (2: a usage error).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


SERVICE_ACCEPT_RATE = 1000.0
"""The service's default for gateway connections accepted per second.

The library's listener accepts without limit by default; the service faces whole
fleets reconnecting after its restart. Measured on the 2-core development machine
(bench/fleet_admission.py, quiet): 10,000 gateways reconnecting at once were all back
in 6.4 s without a limit, but a connected gateway's Heartbeat p99 was 63-96 ms (ticks
of the event loop full of handshakes); at 1,000 a second all were back in 12 s (15 s
with TLS) and the p99 was 28 ms (43 ms with TLS). 2,000 a second were as good without
TLS (9.4 s, 25 ms) but not with it (55 ms): a TLS handshake costs the loop more.
"""


@dataclass(slots=True)
class ServiceConfig:
    """Everything the control center service can be told.

    Attributes:
        host: address the gateway WebSocket server binds.
        port: its TCP port (0: any free port).
        path: base path; gateways connect to ``<path>/<gatewayId>`` (spec §1).
        db: the SQLite database file, or a ``postgresql://`` URL (PostgreSQL backend).
        api_host: address the HTTP API binds.
        api_port: its TCP port (0: any free port).
        api_token: bearer token required on ``/api/*`` (``None``: no token).
        api_certfile: PEM certificate: serve the HTTP API over HTTPS.
        api_keyfile: PEM private key of ``api_certfile`` (when not inside it).
        unknown_gateways: the boot policy for gateways never registered.
        auth: gateway authentication (``basic``: security profile 1/2, spec §1).
        certfile: PEM server certificate: serve ``wss://`` (profile 2, spec §1).
        keyfile: PEM private key of ``certfile`` (when not inside it).
        client_ca: PEM CA bundle: require client certificates (profile 3, spec §1).
        heartbeat_interval: seconds sent as ``interval`` with ``Accepted`` (spec §4.1).
        call_timeout: seconds a C→G call may take (spec §2.3.2).
        ping_interval: seconds of silence on a gateway connection before a WebSocket
            ping (0: no pings).
        ping_timeout: seconds to wait for its pong before the connection is closed.
        max_handshakes: gateway connections whose upgrade is not decided yet, at
            most; more wait in the listen backlog (0: no limit).
        accept_rate: gateway connections accepted per second at most; more wait in
            the listen backlog (0: no limit; default :data:`SERVICE_ACCEPT_RATE`).
        log_level: ``debug`` .. ``critical``.
        log_format: ``text`` or ``json`` (one object per line).
        demo: simulated gateways to run in the same process (``demo-1`` ..).
        frame_log_retention: days frames are kept in the frame log (0: forever).
        durability: ``disk`` (fsync before acknowledging) or ``process``.
        frame_log: ``all``, ``errors`` or ``off``.
        frame_log_gateway_budget: bytes one gateway may add to the frame log per hour
            (0: no limit).
        frame_log_budget: bytes all gateways may add to the frame log per hour
            (0: no limit).
        max_db_size: database size (with its WAL) in bytes at which the frame log
            stops and the storage alarm is raised (0: no cap).
        min_free_disk: free bytes on the database's file system below which the
            frame log stops and the storage alarm is raised (0: no check).
        server_key_file: the key file of generated gateway secrets (see
            :mod:`ntxcp.service.machine_secrets`); default: :meth:`server_key_path`.
        cluster: ``nats://`` URL of the NATS server: run as one node of a cluster
            sharing a PostgreSQL database (see :mod:`ntxcp.service.cluster`).
        node_id: this node's name in the cluster (default: host name and process id).
    """

    host: str = "127.0.0.1"
    port: int = 8887
    path: str = "/ntxcp"
    db: str = "./ntxcp.sqlite"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: str | None = None
    api_certfile: str | None = None
    api_keyfile: str | None = None
    unknown_gateways: UnknownGatewayPolicy = UnknownGatewayPolicy.ACCEPT
    auth: AuthMode = AuthMode.NONE
    certfile: str | None = None
    keyfile: str | None = None
    client_ca: str | None = None
    heartbeat_interval: int = 300
    call_timeout: float = 30.0
    ping_interval: float = 30.0
    ping_timeout: float = 30.0
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    accept_rate: float = SERVICE_ACCEPT_RATE
    log_level: str = "info"
    log_format: LogFormat = LogFormat.TEXT
    demo: int = 0
    frame_log_retention: float = 30.0
    durability: Durability = Durability.DISK
    frame_log: FrameLogMode = FrameLogMode.ALL
    frame_log_gateway_budget: int = 4 * 2**20
    frame_log_budget: int = 2**30
    max_db_size: int = 0
    min_free_disk: int = 2**30
    server_key_file: str | None = None
    cluster: str | None = None
    node_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """Settings for add-ons (e.g. a dashboard); not validated here."""

    def server_key_path(self) -> Path:
        """The file of the key that hashes generated gateway secrets.

        ``--server-key-file`` when given; else beside a SQLite database
        (``<db>.key``); with PostgreSQL, whose files are out of reach, in the state
        directory of the user running the service
        (``$XDG_STATE_HOME/ntxcp/server.key``, by default
        ``~/.local/state/ntxcp/server.key``). Every node sharing one PostgreSQL database
        needs the same key file.
        """
        if self.server_key_file is not None:
            return Path(self.server_key_file)
        if self.postgresql:
            state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            return Path(state) / "ntxcp" / "server.key"
        return Path(self.db + ".key")

    @property
    def tls(self) -> bool:
        """Whether gateways connect with TLS (``wss://``)."""
        return self.certfile is not None

    @property
    def admits_any_gateway(self) -> bool:
        """Whether any gateway id is admitted and recorded on first contact.

        True with ``--auth none`` unless ``--unknown-gateways reject``: nothing then
        keeps a removed gateway out, so one still running connects again and is
        recorded anew. With Basic auth an unregistered id fails its password check; with
        ``reject`` its BootNotification is refused and it is not recorded.
        """
        return (
            self.auth is AuthMode.NONE and self.unknown_gateways is not UnknownGatewayPolicy.REJECT
        )

    def validate(self) -> None:
        """Check every setting and how they combine.

        Raises:
            ConfigError: a setting is unusable; the message names it.
        """
        for name in ("port", "api_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"--{_flag(name)} must be 0..65535, not {value}")
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        if self.heartbeat_interval < 0:
            raise ConfigError("--heartbeat-interval must be >= 0")
        if not 0 < self.call_timeout <= 3600:
            raise ConfigError("--call-timeout must be > 0 and <= 3600 seconds")
        if not 0 <= self.ping_interval <= 3600:
            raise ConfigError("--ping-interval must be 0 (off) .. 3600 seconds")
        if not 0 < self.ping_timeout <= 3600:
            raise ConfigError("--ping-timeout must be > 0 and <= 3600 seconds")
        if not 0 <= self.max_handshakes <= 1_000_000:
            raise ConfigError("--max-handshakes must be 0 (no limit) .. 1000000")
        if not 0 <= self.accept_rate <= 1_000_000:
            raise ConfigError("--accept-rate must be 0 (no limit) .. 1000000 per second")
        if self.demo < 0 or self.demo > 10_000:
            raise ConfigError("--demo must be 0..10000")
        if self.frame_log_retention < 0:
            raise ConfigError("--frame-log-retention must be >= 0 (0 keeps frames forever)")
        for name in _SIZES:
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0 (0: no limit)")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self.api_token is not None and not self.api_token.strip():
            raise ConfigError("--api-token must not be empty")
        if (self.keyfile is not None or self.client_ca is not None) and self.certfile is None:
            raise ConfigError("--keyfile and --client-ca need --certfile")
        if self.api_keyfile is not None and self.api_certfile is None:
            raise ConfigError("--api-keyfile needs --api-certfile")
        for name in ("certfile", "keyfile", "client_ca", "api_certfile", "api_keyfile"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"--{_flag(name)}: no such file: {value}")
        if not self.db:
            raise ConfigError("--db must name a SQLite file or a postgresql:// URL")
        self._validate_db_files()
        self._validate_cluster()
        # The API can change gateways and send them commands: never expose it
        # beyond this machine without a token.
        if not is_loopback(self.api_host) and self.api_token is None:
            raise ConfigError(
                f"refusing to serve the API on non-loopback address {self.api_host!r} "
                "without --api-token",
                exit_code=2,
            )

    @property
    def postgresql(self) -> bool:
        """Whether the database is a PostgreSQL server (a ``postgresql://`` URL)."""
        return self.db.startswith(("postgresql://", "postgres://"))

    def _validate_db_files(self) -> None:
        """The TLS files a ``postgresql://`` URL names must exist.

        The driver would only say "No such file or directory" without the name.
        """
        if not self.postgresql:
            return
        query = parse_qs(urlsplit(self.db).query)
        for name in _DB_FILE_PARAMETERS:
            for value in query.get(name, []):
                if not Path(value).expanduser().is_file():
                    raise ConfigError(f"--db: {name}: no such file: {value}")

    def _validate_cluster(self) -> None:
        """Cluster mode needs a shared PostgreSQL database and a ``nats://`` URL."""
        if self.cluster is None:
            if self.node_id is not None:
                raise ConfigError("--node-id needs --cluster", exit_code=2)
            return
        if not self.cluster.startswith(("nats://", "tls://")):
            raise ConfigError(
                f"--cluster must be a nats:// URL (e.g. nats://127.0.0.1:4222), "
                f"not {self.cluster!r}",
                exit_code=2,
            )
        if not self.postgresql:
            raise ConfigError(
                "--cluster needs --db postgresql://...: the nodes of a cluster share one "
                "PostgreSQL database (a SQLite file belongs to one process)",
                exit_code=2,
            )
        if self.node_id is not None and not _NODE_ID.fullmatch(self.node_id):
            raise ConfigError("--node-id must be 1..64 letters, digits, '-' or '_'", exit_code=2)


_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``).

    Args:
        host: an address or host name.

    Returns:
        ``True`` for loopback addresses and ``localhost``; ``False`` for anything else,
        including wildcard addresses and other host names.
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_FIELDS = {f.name: f for f in dataclasses.fields(ServiceConfig) if f.name != "extra"}
_ENUMS: dict[str, type[StrEnum]] = {
    "unknown_gateways": UnknownGatewayPolicy,
    "auth": AuthMode,
    "log_format": LogFormat,
    "durability": Durability,
    "frame_log": FrameLogMode,
}
_INTS = {"port", "api_port", "heartbeat_interval", "demo", "max_handshakes"}
_FLOATS = {"call_timeout", "ping_interval", "ping_timeout", "frame_log_retention", "accept_rate"}
_SIZES = ("frame_log_gateway_budget", "frame_log_budget", "max_db_size", "min_free_disk")
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SECTION_NAMES = ("control-center", "control_center")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML settings file; keys may use dashes or underscores.

    Args:
        path: the file.

    Returns:
        The settings with underscore keys, not yet type-checked.

    Raises:
        ConfigError: the file cannot be read or is not valid TOML.
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section in _SECTION_NAMES:
        table = data.pop(section, None)
        if isinstance(table, dict):
            data.update(table)
    settings: dict[str, Any] = {}
    for key, value in data.items():
        settings[key.replace("-", "_")] = value
    return settings


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check and convert one setting's value (TOML gives typed values, flags strings)."""
    where = f"--{_flag(name)}" if source == "flag" else f"{source} {name!r}"
    if value is None:
        return None
    if name in _ENUMS:
        enum = _ENUMS[name]
        try:
            return enum(str(value).lower())
        except ValueError:
            choices = ", ".join(m.value for m in enum)
            raise ConfigError(f"{where} must be one of {choices}, not {value!r}") from None
    if name in _SIZES:
        return _size(value, where)
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, not {value!r}") from None
    if name in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, not {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}")
    if name == "log_level":
        return value.lower()
    return value


def _size(value: Any, where: str) -> int:
    """A byte count: an integer, or text such as ``4096``, ``64M``, ``1G`` (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("ib").removesuffix("b")
        unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
        number = text[: len(text) - len(unit)].strip()
        try:
            return int(float(number) * _SIZE_UNITS[unit])
        except (ValueError, OverflowError):
            pass
    raise ConfigError(
        f"{where} must be a byte count such as 1048576, 512K, 64M or 1G, not {value!r}"
    )


def build_config(
    cli: dict[str, Any] | None = None, config_file: str | Path | None = None
) -> ServiceConfig:
    """Merge defaults, a TOML file and command-line flags; check the result.

    Args:
        cli: the flags given on the command line (underscore names); ``None`` values
            mean "not given".
        config_file: a TOML file to read first.

    Returns:
        The checked settings.

    Raises:
        ConfigError: a file, key or value is unusable.
    """
    config = ServiceConfig()
    if config_file is not None:
        for key, value in load_toml(config_file).items():
            if key == "config":
                raise ConfigError(f"config file {config_file}: 'config' cannot be nested")
            if key not in _FIELDS:
                raise ConfigError(f"config file {config_file}: unknown key {key!r}")
            setattr(config, key, _coerce(key, value, "config key"))
    for key, value in (cli or {}).items():
        if value is None or key not in _FIELDS:
            continue
        setattr(config, key, _coerce(key, value, "flag"))
    config.validate()
    return config
