"""The throw-away PostgreSQL server of the tests: :mod:`ntxcp.localservers.postgres`.

Kept as a module of its own so that the tests and benchmarks import it by a short name.
"""

from __future__ import annotations

from ntxcp.localservers.postgres import DATABASE, USER, PostgresServer, binaries

__all__ = ["DATABASE", "USER", "PostgresServer", "binaries"]
