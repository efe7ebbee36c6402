"""Reconnect delays: exponential backoff with jitter (spec §6.2).

Spec §6.2 defaults: the first retry waits 1 s, each further failure doubles the wait
up to 60 s, and every delay is spread at random by ±25 % so that many gateways that
lost the same control center do not all come back in the same instant.

The delay before retry ``n`` (``n = 0`` for the first retry) is::

    base(n)  = min(maximum, initial * factor ** n)
    delay(n) = base(n) * (1 + u),  u uniform in [-jitter, +jitter]

so ``maximum`` caps the *base* delay and one delay lies within
``maximum * (1 ± jitter)`` at worst.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """When to retry a connection (spec §6.2 defaults).

    Attributes:
        initial: base delay of the first retry, in seconds (1 s).
        factor: growth of the base delay per failed attempt (2).
        maximum: cap of the base delay, in seconds (60 s); jitter applies on top.
        jitter: relative random spread of every delay, ±25 % by default.
        max_attempts: give up after this many failed attempts in a row (``None``:
            retry forever, until ``stop()``). A connection that opens ends the run
            of failures.
        reset_after: seconds a connection must stay up before the delays start
            again from ``initial``. A connection that the control center drops at
            once (a flapping link, a server that closes every newcomer) keeps
            growing the delay instead of retrying every ``initial`` seconds.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.25
    max_attempts: int | None = None
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 <= initial <= maximum and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")
        if self.reset_after < 0:
            raise ValueError("reset_after must be >= 0")

    def base(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` without jitter (0: first retry)."""
        return min(self.maximum, self.initial * self.factor ** min(max(attempt, 0), 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (0 for the first retry), jittered.

        Args:
            attempt: how many retries came before this one.
            rng: the random source (default: the :mod:`random` module).

        Returns:
            ``base(attempt) * (1 + u)`` with ``u`` uniform in ``[-jitter, jitter]``.
        """
        return self._spread(self.base(attempt), rng)

    def at_maximum(self, rng: random.Random | None = None) -> float:
        """The longest delay, jittered: used for refusals that retrying cannot fix.

        Args:
            rng: the random source (default: the :mod:`random` module).
        """
        return self._spread(self.maximum, rng)

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest value :meth:`delay` can return for ``attempt``."""
        base = self.base(attempt)
        return base * (1 - self.jitter), base * (1 + self.jitter)

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` failures in a row use up :attr:`max_attempts`."""
        return self.max_attempts is not None and attempts >= self.max_attempts

    def _spread(self, base: float, rng: random.Random | None) -> float:
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))
