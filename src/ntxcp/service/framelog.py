"""Limits of the frame log: excerpts of bad frames, byte budgets, what is logged at all.

The frame log keeps frames as they crossed the wire (spec §2), for people diagnosing
a gateway. Whoever can open a WebSocket can also send frames, so what a peer sends
must not decide how much disk the log takes:

* a frame the service refuses or cannot read (not a JSON-RPC message, invalid UTF-8,
  anything from a gateway that is not accepted, spec §4.1) is logged as an
  **excerpt** of its first :data:`EXCERPT_BYTES` bytes with its full size;
  frames are stored as the bytes that arrived (a BLOB): bytes that are not UTF-8
  are never expanded into replacement characters;
* every gateway has a **byte budget** per hour, and so has the whole log: a frame
  that does not fit is not logged, and counted as dropped in the metrics;
* the **mode** (:class:`~ntxcp.service.config.FrameLogMode`) logs every frame,
  only errors, or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["EXCERPT_BYTES", "ByteBudget", "FrameBudgets", "excerpt"]

EXCERPT_BYTES = 1024
"""Bytes kept of a refused or malformed frame."""

_HOUR = 3600.0


def excerpt(frame: bytes, limit: int = EXCERPT_BYTES) -> bytes:
    """The first ``limit`` bytes of a frame, kept as bytes (stored as a BLOB).

    Bytes that are not UTF-8 stay as they are: they are never expanded into
    replacement characters.

    Args:
        frame: the frame as received.
        limit: most bytes kept.

    Returns:
        The excerpt.
    """
    return frame[:limit]


class ByteBudget:
    """A token bucket of bytes: ``per_hour`` bytes refill per hour, at most one hour's worth.

    Args:
        per_hour: bytes allowed per hour (the bucket also holds at most this many).
        now: the current time (seconds).
    """

    __slots__ = ("_last", "_per_second", "capacity", "tokens")

    def __init__(self, per_hour: int, now: float) -> None:
        self.capacity = float(per_hour)
        self.tokens = float(per_hour)
        self._per_second = per_hour / _HOUR
        self._last = now

    def refill(self, now: float) -> float:
        """Add what accrued since the last call; return the bytes available now."""
        elapsed = now - self._last
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self._per_second)
            self._last = now
        return self.tokens

    def full(self, now: float) -> bool:
        """Whether the bucket is full again (nothing spent in the last hour, in effect)."""
        return self.refill(now) >= self.capacity


class FrameBudgets:
    """The per-gateway and the global byte budget of the frame log.

    Args:
        gateway_per_hour: bytes one gateway may log per hour (0: no limit).
        total_per_hour: bytes all gateways together may log per hour (0: no limit).
        clock: the time source (seconds; monotonic).
    """

    def __init__(
        self,
        gateway_per_hour: int,
        total_per_hour: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway_per_hour = gateway_per_hour
        self._clock = clock
        self._total = ByteBudget(total_per_hour, clock()) if total_per_hour > 0 else None
        self._gateways: dict[str, ByteBudget] = {}
        self._sweep_at = 1024

    def spend(self, gateway_id: str, size: int) -> str | None:
        """Take ``size`` bytes from both budgets, or none when either lacks them.

        Returns:
            ``None`` when the frame may be logged, else the reason it may not:
            ``"gateway-budget"`` or ``"total-budget"``.
        """
        now = self._clock()
        bucket: ByteBudget | None = None
        if self.gateway_per_hour > 0:
            bucket = self._gateways.get(gateway_id)
            if bucket is None:
                bucket = self._gateways[gateway_id] = ByteBudget(self.gateway_per_hour, now)
                if len(self._gateways) >= self._sweep_at:
                    self._sweep(now)
            if bucket.refill(now) < size:
                return "gateway-budget"
        total = self._total
        if total is not None:
            if total.refill(now) < size:
                return "total-budget"
            total.tokens -= size
        if bucket is not None:
            bucket.tokens -= size
        return None

    def _sweep(self, now: float) -> None:
        """Forget gateways whose bucket is full again: they are as good as new."""
        self._gateways = {
            gateway_id: bucket
            for gateway_id, bucket in self._gateways.items()
            if not bucket.full(now)
        }
        self._sweep_at = max(1024, 2 * len(self._gateways))

    @property
    def tracked(self) -> int:
        """Gateways with a budget in memory."""
        return len(self._gateways)
