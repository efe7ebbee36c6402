"""Throw-away servers on free loopback ports, for the local cluster demo and the tests.

Each server runs as a child process bound to 127.0.0.1, with its files in a temporary
directory, and is stopped (and its files removed) by its owner. Nothing here is meant
for a production deployment: ``docs/deployment.md`` describes that.
"""
