"""Fixtures shared by every test directory.

``pki``: a throw-away certificate authority, a server certificate for 127.0.0.1 and
localhost, and client certificates whose CN is a gateway id, as PEM files in a temporary
directory (security profiles 2 and 3, spec §1).

Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE``:

- ``ci`` (the default, used by ``./scripts/test`` and CI): derandomized, so every run
  draws the same examples and a red run can be repeated anywhere;
- ``random``: new random examples on each run, with the example database;
- ``long``: random and 20,000 examples per property, for a search by hand, e.g.
  ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/rpc/test_rpc_properties.py``.

A failing example found by a random run is added to the test as an explicit
``@example`` (a regression case), so that it runs in every later run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from databases import BACKENDS, Databases
from ntxcp.localservers.nats import NatsServer
from pg_server import PostgresServer
from pki import Pki, make_pki

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("random", deadline=None, print_blob=True)
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory of the session, for the server key of services on PostgreSQL
    (``$XDG_STATE_HOME/ntxcp/server.key``): tests never write into the user's home."""
    directory = tmp_path_factory.mktemp("state")
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(directory)
    yield directory
    if previous is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- PostgreSQL: one server per test session, one fresh database per user ------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (Debian's binaries, a free port)."""
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    """One NATS server per test module (``nats-server`` on free loopback ports). A test
    that stops it restarts it before it ends (``NatsServer.restart``)."""
    server = NatsServer().start()
    yield server
    server.remove()


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Databases:
    """Fresh databases of each backend in turn (the test runs once per backend)."""
    return Databases(request.param, request, tmp_path)
