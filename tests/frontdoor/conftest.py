"""Fixtures of the front-door tests: a cluster of real nodes behind a real HAProxy."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdoor_helpers import Cluster

from ntxcp.localservers.nats import NatsServer
from ntxcp.localservers.postgres import PostgresServer

_databases = itertools.count(1)


@pytest.fixture
def make_cluster(
    postgres: PostgresServer, nats_server: NatsServer, tmp_path: Path
) -> Iterator[Callable[[int], Cluster]]:
    """``make_cluster(n)``: n nodes on a fresh database and HAProxy in front of them."""
    made: list[Cluster] = []

    def make(count: int) -> Cluster:
        database = postgres.create_database(f"frontdoor{next(_databases)}")
        cluster = Cluster(database, nats_server, tmp_path)
        made.append(cluster)
        for n in range(count):
            cluster.start_node(f"node{n}")
        cluster.open_front_door()
        return cluster

    yield make
    for cluster in made:
        cluster.close()
