"""A simulator of Ding.X Gateways (spec §4, §6.2, §6.3).

* :class:`SimulatedGateway` behaves like a real gateway: it boots, heartbeats, reports
  the status and meter values of its services, keeps a configuration, and answers
  every C→G action realistically, including real firmware downloads and diagnostics
  uploads over HTTP;
* its commands are in :mod:`ntxcp.cli`: ``ntxcp gateway`` (many simulated gateways in
  one process, :mod:`ntxcp.cli.gateways`) and the commands that drive a control center
  service over its HTTP API (:mod:`ntxcp.cli.api_client`).
"""

from ntxcp.simulator.config import ConfigStore
from ntxcp.simulator.gateway import SimulatedGateway
from ntxcp.simulator.process import Plant, Service

__all__ = ["ConfigStore", "Plant", "Service", "SimulatedGateway"]
