"""What cluster mode keeps in the shared PostgreSQL database, beside the data layout.

Several nodes share one database (``--cluster``, :mod:`ntxcp.service.cluster`). The
data tables are the same as for one node; cluster mode adds two objects, created at
a node's start if missing (``IF NOT EXISTS``: any node may be first):

* ``cluster_sessions``: one row per gateway, the node that holds its newest session
  and the session's epoch. It is for display (the ``connected`` flag and ``node`` of
  the gateway list, and of the fleet overview when a node fills it), never for
  routing (routing follows NATS subscriptions). A node marks a gateway disconnected
  only while the row still names that node, so a node whose old socket closes after
  a takeover does not hide the new session; a row is only replaced by a newer epoch.
* ``cluster_command_ids``: a sequence for the ids of the command log, so that the
  nodes' commands never share an id. At start it is moved past the largest id
  already used (never back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "NEXT_COMMAND_ID",
    "SESSION_NODES",
    "SESSION_NODES_ALL",
    "SESSION_OWNER_LOCKED",
    "SESSION_UPSERT",
    "prepare_cluster",
    "reset_own_sessions",
]

_DDL = (
    """
    CREATE TABLE IF NOT EXISTS cluster_sessions (
        gateway_id text COLLATE "C" PRIMARY KEY,
        node text NOT NULL,
        epoch bigint NOT NULL,
        since text NOT NULL
    )
    """,
    "CREATE SEQUENCE IF NOT EXISTS cluster_command_ids",
)

_ADVANCE_COMMAND_IDS = (
    "SELECT setval('cluster_command_ids', greatest("
    "(SELECT coalesce(max(id), 0) FROM commands) + 1, "
    "(SELECT last_value FROM cluster_command_ids)), false)"
)

NEXT_COMMAND_ID = "SELECT nextval('cluster_command_ids')"
"""The id of a new command (unique across the nodes)."""

SESSION_UPSERT = (
    "INSERT INTO cluster_sessions (gateway_id, node, epoch, since) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (gateway_id) DO UPDATE SET node = excluded.node, epoch = excluded.epoch, "
    "since = excluded.since "
    "WHERE (cluster_sessions.epoch, cluster_sessions.node) < (excluded.epoch, excluded.node)"
)
"""Record a node's new session of a gateway, unless a newer one is recorded already."""

SESSION_NODES = "SELECT gateway_id, node FROM cluster_sessions WHERE gateway_id = any($1::text[])"
"""The node recorded for each of some gateways (the gateway list's ``node``)."""

SESSION_NODES_ALL = "SELECT gateway_id, node FROM cluster_sessions"
"""The node recorded for every gateway (a node's fleet overview, see ``cluster.fleetview``)."""

SESSION_OWNER_LOCKED = "SELECT node FROM cluster_sessions WHERE gateway_id = $1 FOR UPDATE"
"""The node recorded for a gateway, its row locked until the transaction ends.

A node marks a gateway disconnected only when this names the node itself. Locking the
row orders the check against another node's :data:`SESSION_UPSERT`: a plain
``NOT EXISTS`` test in the ``UPDATE`` would see the snapshot taken before the other
node's commit even after waiting for its lock on the gateway's row (read committed),
and could overwrite the other node's "connected".
"""


async def prepare_cluster(conn: asyncpg.Connection) -> None:
    """Create the cluster's table and sequence if missing; move the ids past the used ones."""
    async with conn.transaction():
        # Two nodes starting together: one creates, the other waits (any constant key).
        await conn.execute("SELECT pg_advisory_xact_lock(1853125731)")
        for statement in _DDL:
            await conn.execute(statement)
        await conn.execute(_ADVANCE_COMMAND_IDS)


async def reset_own_sessions(conn: asyncpg.Connection, node: str) -> None:
    """At a node's start: its gateways of an earlier run are not connected any more."""
    await conn.execute(
        "UPDATE gateways SET connected = false WHERE connected AND id IN "
        "(SELECT gateway_id FROM cluster_sessions WHERE node = $1)",
        node,
    )
