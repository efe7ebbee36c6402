"""Cluster mode: several control-center nodes share one PostgreSQL database and a NATS bus.

``ntxcp control-center --db postgresql://... --cluster nats://HOST:PORT`` runs the
service as one node of a cluster (see ``docs/service.md``, *Cluster mode*):

* :mod:`.subjects`: the NATS subjects, and gateway ids as subject tokens;
* :mod:`.wire`: the messages on them;
* :mod:`.bus`: the NATS connection (background connect, reconnects, never blocking);
* :mod:`.ownership`: the gateways a node holds, session epochs, takeovers, and the
  commands it serves for other nodes;
* :mod:`.routing`: commands to gateways held by other nodes (request-reply);
* :mod:`.relay`: live events of every node on every node;
* :mod:`.presence`: which nodes are alive (heartbeats; for display only);
* :mod:`.fleetview`: every node's gateways in each node's fleet overview;
* :mod:`.node`: the node that puts these together.

Nothing here sits on the ingest path: a gateway's data is committed to the database
by the node that holds its socket before it is acknowledged, whether the bus is up or
not. The NATS client (``nats-py``, extra ``cluster``) is imported only when a node
connects.
"""
