"""Fresh databases for the behaviour tests that run against both storage backends."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pg_server import PostgresServer

BACKENDS = ("sqlite", "postgresql")
"""The storage backends a behaviour test runs against."""

_numbers = itertools.count(1)


class Databases:
    """Hands out fresh databases of one backend: SQLite files or PostgreSQL databases.

    PostgreSQL databases live on the session's one server (the ``postgres`` fixture),
    started only when a test first asks for one.
    """

    def __init__(self, backend: str, request: pytest.FixtureRequest, directory: Path) -> None:
        self.backend = backend
        self._request = request
        self._directory = directory

    def new(self) -> str:
        """A fresh, empty database: a file path or a ``postgresql://`` URL."""
        if self.backend == "sqlite":
            return str(self._directory / f"cc-{next(_numbers)}.sqlite")
        server: PostgresServer = self._request.getfixturevalue("postgres")
        return server.create_database(f"ntxcp_{next(_numbers)}")
