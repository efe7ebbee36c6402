"""``python -m ntxcp``: the same as the ``ntxcp`` command."""

import sys

from ntxcp.cli import main

sys.exit(main())
