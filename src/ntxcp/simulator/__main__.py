"""``python -m ntxcp.simulator``: the simulator's commands without the root ``ntxcp`` CLI."""

import sys

from ntxcp.cli.gateways import main

sys.exit(main())
