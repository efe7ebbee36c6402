"""A simulator of Ding.X Gateways, and command-line clients (spec §4, §6.2, §6.3).

* :class:`SimulatedGateway` behaves like a real gateway: it boots, heartbeats, reports
  the status and meter values of its services, keeps a configuration, and answers
  every C→G action realistically, including real firmware downloads and diagnostics
  uploads over HTTP;
* :mod:`ntxcp.simulator.cli` adds ``ntxcp gateway`` (many simulated gateways in one
  process) to the ``ntxcp`` command;
* :mod:`ntxcp.simulator.cli_client` adds the commands that drive a control center
  service over its HTTP API (``ntxcp gateways list``, ``ntxcp call`` …).
"""

from ntxcp.simulator.config import ConfigStore
from ntxcp.simulator.gateway import SimulatedGateway
from ntxcp.simulator.process import Plant, Service

__all__ = ["ConfigStore", "Plant", "Service", "SimulatedGateway"]
