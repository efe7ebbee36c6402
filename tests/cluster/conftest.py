"""Fixtures of the cluster tests: one NATS server per module, one PostgreSQL per session.

The cluster tests reuse the service tests' helpers (API client, answering gateways).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
