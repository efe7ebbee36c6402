"""The control-center URLs of a gateway, tried in turn (failover without a load balancer).

A gateway may be given several control-center base URLs, e.g. the nodes of a
clustered control center when no load balancer stands in front of them. The policy
(documented in ``docs/resilience.md``) is round-robin:

* :meth:`UrlRing.take` hands out the URLs in the order given, wrapping around; the
  first connection of a :meth:`~ntxcp.Gateway.start` begins with the first URL.
* After a connection, the next attempt (the reconnect after that connection is lost)
  begins with the URL *after* the one that was connected: a node that dropped its
  gateways is tried last, so the gateways move to the others. :meth:`UrlRing.take`
  moves past the URL it hands out, so this needs no bookkeeping.
* One reconnect attempt of the backoff (spec §6.2) is one *round*: each URL tried
  once, the next one at once after a failure; the backoff delay is waited between
  rounds only. With one URL a round is one attempt, as before.

The ring only says which URL comes next; the gateway endpoint owns the backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

__all__ = ["UrlRing", "gateway_urls"]


def gateway_urls(base_urls: str | Sequence[str], gateway_id: str) -> tuple[str, ...]:
    """The full connection URLs: each base URL with ``/<gatewayId>`` appended (spec §6.2).

    Args:
        base_urls: one control-center base URL, or several (a failover list).
        gateway_id: the gateway's id, percent-encoded into the path.

    Returns:
        The full URLs, in the order given.

    Raises:
        ValueError: no URL, or an empty one.
    """
    bases = (base_urls,) if isinstance(base_urls, str) else tuple(base_urls)
    if not bases:
        raise ValueError("give at least one control center URL")
    if not all(isinstance(base, str) and base.strip() for base in bases):
        raise ValueError(f"every control center URL must be a non-empty string: {bases!r}")
    suffix = "/" + quote(gateway_id, safe="")
    return tuple(base.rstrip("/") + suffix for base in bases)


class UrlRing:
    """Hands out a gateway's URLs round-robin (see the module docs for the policy).

    Args:
        urls: the full connection URLs (at least one), in order of preference.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("a URL ring needs at least one URL")
        self.urls = tuple(urls)
        self._next = 0
        self.current = self.urls[0]
        """The URL of the latest attempt (the connected one while connected)."""

    def __len__(self) -> int:
        return len(self.urls)

    def take(self) -> str:
        """The URL to try now; the following call returns the one after it."""
        self.current = self.urls[self._next]
        self._next = (self._next + 1) % len(self.urls)
        return self.current
