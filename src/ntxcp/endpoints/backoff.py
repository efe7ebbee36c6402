"""Reconnect delays: exponential backoff with jitter (spec §6.2)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """When to retry a connection (spec §6.2 defaults).

    Attributes:
        initial: first delay in seconds (1 s).
        factor: growth per failed attempt (2).
        maximum: longest delay (60 s).
        jitter: relative random spread, ±25 % by default.
        max_attempts: give up after this many failed attempts in a row (``None``:
            retry forever, until ``stop()``).
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.25
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 <= initial <= maximum and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (0 for the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` failures in a row use up :attr:`max_attempts`."""
        return self.max_attempts is not None and attempts >= self.max_attempts
