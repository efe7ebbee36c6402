"""The ready-to-run Ding.X Control Center service (``ntxcp control-center``).

It runs a :class:`~ntxcp.ControlCenter` (spec §6.1) with a boot policy, stores what the
gateways send in SQLite, and offers an HTTP API to read it and to send C→G requests:

* :mod:`~ntxcp.service.config`: settings (defaults, TOML file, command line);
* :mod:`~ntxcp.service.storage`, :mod:`~ntxcp.service.writer` (group commit),
  :mod:`~ntxcp.service.queries`, :mod:`~ntxcp.service.migrations`: the database;
* :mod:`~ntxcp.service.passwords`: gateway secrets chosen by a person (scrypt; Basic auth,
  spec §1); :mod:`~ntxcp.service.machine_secrets`: generated secrets (keyed fast hash);
* :mod:`~ntxcp.service.handlers`: answers to G→C actions, the frame log;
* :mod:`~ntxcp.service.commands`: C→G requests for the API;
* :mod:`~ntxcp.service.api`, :mod:`~ntxcp.service.openapi`,
  :mod:`~ntxcp.service.docs_page`, :mod:`~ntxcp.service.dashboard`: the HTTP side;
* :mod:`~ntxcp.service.metrics`: Prometheus metrics;
* :mod:`~ntxcp.service.service`: :class:`Service`, which owns all of it.
"""

from ntxcp.service.config import (
    AuthMode,
    ConfigError,
    Durability,
    FrameLogMode,
    LogFormat,
    ServiceConfig,
    UnknownGatewayPolicy,
    build_config,
)
from ntxcp.service.service import Service, ServiceError

__all__ = [
    "AuthMode",
    "ConfigError",
    "Durability",
    "FrameLogMode",
    "LogFormat",
    "Service",
    "ServiceConfig",
    "ServiceError",
    "UnknownGatewayPolicy",
    "build_config",
]
