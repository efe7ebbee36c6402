"""Blocking endpoints for programs that do not use asyncio (the Go gateway API is blocking)."""

from ntxcp.sync.gateway import Gateway

__all__ = ["Gateway"]
