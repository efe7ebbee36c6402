"""The ``ntxcp`` command: every sub-command in one package.

* :mod:`ntxcp.cli.main`: the parser, ``ntxcp control-center`` (the service) and logging;
* :mod:`ntxcp.cli.gateways`: ``ntxcp gateway`` (many simulated gateways in one process);
* :mod:`ntxcp.cli.api_client`: the commands that drive a control center through its HTTP
  API (``gateways``, ``call``, ``meter-values``, ``status``, ``messages``, ...);
* :mod:`ntxcp.cli.runner`: the one event-loop runner; :mod:`ntxcp.cli.errors`: the one
  definition of each error class of the commands.
"""

from ntxcp.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
