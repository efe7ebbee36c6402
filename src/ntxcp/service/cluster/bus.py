"""The node's connection to NATS: connecting in the background, reconnecting by itself.

:class:`Bus` wraps one ``nats-py`` client. The service never waits for it on the
ingest path (spec of cluster mode: "bus down is not service down"):

* :meth:`Bus.start` returns at once; the first connection is made by a background
  task that keeps trying (every ``reconnect_wait`` seconds) while the server is away,
  and ``nats-py`` reconnects by itself afterwards, re-subscribing every subscription;
* :meth:`Bus.publish` never blocks: messages go to a bounded queue that one task
  sends; while the bus is down they are dropped (events are at-most-once anyway);
* :meth:`Bus.request` fails at once with :class:`BusUnavailableError` while the bus is
  down, rather than waiting for a reconnection.

The URL may carry the NATS user's password (``tls://user:password@host:4222``): the
messages, the log and ``/healthz`` show it without the password (:func:`redacted`).
The user and password are percent-decoded and given to ``nats-py`` apart from the URL
(it would send them as written, ``%40`` for ``@``): :func:`credentials`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = ["Bus", "BusUnavailableError", "NoOwnerError", "credentials", "redacted"]

_log = logging.getLogger("ntxcp.service.cluster")

RECONNECT_WAIT = 0.5  # s between two connection attempts
CONNECT_TIMEOUT = 2.0  # s for one attempt
PING_INTERVAL = 5  # s: a silent server is noticed after PING_INTERVAL * MAX_PINGS
MAX_PINGS = 2
LOGGED_REASONS = 20  # distinct reasons logged while not connected (no log flood)
OUTBOX = 10_000  # messages waiting to be published; more are dropped

Handler = Callable[["Msg"], Awaitable[None]]


def redacted(url: str) -> str:
    """The URL without its password (``tls://user:***@host:4222``), to show or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _reason(exc: BaseException) -> str:
    """An exception as a reason to show (its class when it has no message)."""
    return str(exc) or type(exc).__name__


def credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its user information, and the ``nats.connect`` options of it.

    ``user:password@`` gives ``user`` and ``password``; a lone ``token@`` gives ``token``
    (NATS's meanings of the URL forms), each percent-decoded.
    """
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    if parts.password is None:
        return bare, {"token": unquote(parts.username)}
    return bare, {"user": unquote(parts.username), "password": unquote(parts.password)}


class BusUnavailableError(Exception):
    """The bus (NATS) cannot be reached now; the message says why."""


class NoOwnerError(Exception):
    """Nobody subscribes to the subject of a request: no node holds the gateway."""


class Bus:
    """One NATS connection of a node.

    Args:
        url: the ``nats://`` URL.
        name: the connection's name (shown by the server's monitoring), the node id.
        on_connected: awaited after every (re)connection, e.g. to re-read state that
            may have changed while the bus was away.
    """

    def __init__(
        self, url: str, name: str, on_connected: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.url = url
        self.shown_url = redacted(url)
        """The URL as messages and the log show it (no password)."""
        self.name = name
        self._on_connected = on_connected
        self._client: Client | None = None
        self._connector: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.error: str | None = "connecting"
        """Why the bus is not connected (``None``: it is)."""
        self._logged: set[str] = set()
        self.dropped = 0
        """Messages dropped because the bus was down or the outbox full."""
        self.reconnects = 0
        """Connections made after the first."""

    @property
    def connected(self) -> bool:
        """Whether the bus is connected now."""
        client = self._client
        return client is not None and client.is_connected

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        loop = asyncio.get_running_loop()
        self._connector = loop.create_task(self._connect(), name="ntxcp-bus-connect")
        self._sender = loop.create_task(self._send(), name="ntxcp-bus-send")

    async def _connect(self) -> None:
        import nats

        server, auth = credentials(self.url)
        while True:
            try:
                self._client = await nats.connect(
                    server,
                    **auth,
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT,
                    connect_timeout=CONNECT_TIMEOUT,
                    ping_interval=PING_INTERVAL,
                    max_outstanding_pings=MAX_PINGS,
                    no_echo=True,  # a node never receives what it publishes itself
                    pending_size=0,  # nothing is buffered while disconnected
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
            except Exception as exc:  # nats-py retries itself; this is a last resort
                self._set_error(f"cannot connect to {self.shown_url}: {_reason(exc)}")
                await asyncio.sleep(RECONNECT_WAIT)
                continue
            break
        self.error = None
        self._logged.clear()
        _log.info("bus connected: %s", self.shown_url)
        await self._run_connected_hook()

    async def _error(self, exc: Exception) -> None:
        if not self.connected:
            self._set_error(f"{self.shown_url}: {_reason(exc)}")
        _log.debug("bus error: %r", exc)

    def _set_error(self, error: str) -> None:
        """Record why the bus is down; log each distinct reason once until connected.

        A refused certificate or password is retried every ``RECONNECT_WAIT``: no flood.
        """
        if error not in self._logged and len(self._logged) < LOGGED_REASONS:
            self._logged.add(error)
            _log.warning("bus not connected: %s", error)
        self.error = error

    async def _disconnected(self) -> None:
        if self.error is None:
            self.error = f"disconnected from {self.shown_url}"
            _log.warning("bus disconnected: %s", self.shown_url)

    async def _reconnected(self) -> None:
        self.error = None
        self._logged.clear()
        self.reconnects += 1
        _log.info("bus reconnected: %s", self.shown_url)
        # Not awaited here: nats-py resends the subscriptions only after this returns.
        task = asyncio.get_running_loop().create_task(self._run_connected_hook())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_connected_hook(self) -> None:
        if self._on_connected is None:
            return
        try:
            await self._on_connected()
        except Exception:  # the next reconnection tries again
            _log.exception("re-reading the cluster state after connecting failed")

    def publish(self, subject: str, data: bytes) -> None:
        """Queue a message to publish; dropped while the bus is down (never blocks)."""
        if not self.connected or len(self._outbox) >= OUTBOX:
            self.dropped += 1
            return
        self._outbox.append((subject, data))
        self._wake.set()

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                subject, data = self._outbox.popleft()
                client = self._client
                if client is None or not client.is_connected:
                    self.dropped += 1 + len(self._outbox)
                    self._outbox.clear()
                    break
                try:
                    await client.publish(subject, data)
                except Exception as exc:  # disconnected meanwhile: at-most-once
                    self.dropped += 1
                    _log.debug("publish on %s failed: %r", subject, exc)

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        """Send a request and wait for the first answer.

        Raises:
            BusUnavailableError: the bus is down.
            NoOwnerError: nobody subscribes to ``subject``.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeoutError

        client = self._client
        if client is None or not client.is_connected:
            raise BusUnavailableError(f"the cluster bus is unavailable ({self.error})")
        try:
            message = await client.request(subject, data, timeout=timeout)
        except NoRespondersError:
            raise NoOwnerError(subject) from None
        except NatsTimeoutError:
            raise TimeoutError(subject) from None
        except Exception as exc:  # lost the connection while waiting
            raise BusUnavailableError(f"the cluster bus is unavailable ({exc!r})") from None
        return bytes(message.data)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription | None:
        """Subscribe ``handler`` to ``subject``; ``None`` when the bus is not up yet."""
        client = self._client
        if client is None or client.is_closed:
            return None
        return await client.subscribe(subject, cb=handler)

    async def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription (nothing to do when the connection is gone)."""
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def close(self) -> None:
        """Stop connecting and sending, and close the connection."""
        tasks = [t for t in (self._connector, self._sender, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2.0)
