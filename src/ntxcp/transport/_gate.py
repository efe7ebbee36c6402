"""An asynchronous check before the WebSocket upgrade is answered (spec §1 profiles 1/2).

picows decides an upgrade in a synchronous callback, so a slow check there (a password
KDF takes tens of milliseconds) would stop the event loop for every connection. When
the server has an ``authenticate`` hook, each connection starts behind an
:class:`AuthGate` instead: it collects the request head, stops reading, awaits the hook
(which may run the slow part in a thread), records the verdict, then hands the
connection and the bytes it read to picows. picows' synchronous callback only reads
the recorded verdict, so the upgrade answer waits for the check without blocking
anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

from ntxcp.transport._base import HandshakeInfo, Refusal, detached

__all__ = ["MAX_HEAD", "AuthGate", "Authenticate", "Headers", "Verdict", "parse_head"]

_log = logging.getLogger("ntxcp.transport")

MAX_HEAD = 16 * 1024
"""Largest upgrade request head, in bytes (the same bound picows applies)."""

Authenticate = Callable[[HandshakeInfo], Awaitable[None]]
"""Checks an upgrade request before it is answered; raises :class:`Refusal` to refuse."""


class Headers(Mapping[str, str]):
    """Request header fields, looked up without regard to case (RFC 9110 §5.1).

    A repeated field keeps its first value.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def parse_head(head: bytes) -> tuple[str, Headers] | None:
    """Read the target and header fields of an HTTP/1.1 ``GET`` request head.

    Args:
        head: the request head without its final empty line.

    Returns:
        ``(target, headers)``, or ``None`` when the head is not a well-formed ``GET``
        request (picows then refuses it with its own answer).
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[1]:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        fields.setdefault(name.lower(), value.strip())
    return parts[1], Headers(fields)


class Verdict:
    """The outcome of the asynchronous check of one connection.

    Attributes:
        gateway_id: the gateway id the check saw.
        credentials: the Basic-auth credentials the check saw.
        refusal: why the connection is refused, or ``None`` when it passed.
    """

    __slots__ = ("credentials", "gateway_id", "refusal")

    def __init__(
        self, gateway_id: str, credentials: tuple[str, str] | None, refusal: Refusal | None
    ) -> None:
        self.gateway_id = gateway_id
        self.credentials = credentials
        self.refusal = refusal

    def matches(self, info: HandshakeInfo) -> bool:
        """Whether picows' reading of the request is the one that was checked."""
        return info.gateway_id == self.gateway_id and info.credentials == self.credentials


class _Upgrade(Protocol):
    verdict: Verdict | None

    def checked_info(self, target: str, headers: Mapping[str, str]) -> HandshakeInfo:
        """The handshake info of a request, or :class:`Refusal` for a bad one."""
        ...


class AuthGate(asyncio.BufferedProtocol):
    """Holds a new connection until ``authenticate`` has judged its upgrade request.

    Args:
        inner: the picows protocol that takes over once the verdict is known.
        upgrade: where the verdict is recorded for picows' synchronous callback.
        authenticate: the check.
    """

    def __init__(self, inner: Any, upgrade: _Upgrade, authenticate: Authenticate) -> None:
        self._inner = inner
        self._upgrade = upgrade
        self._authenticate = authenticate
        self._chunk = bytearray(4096)
        self._head = bytearray()
        self._transport: Any = None  # asyncio's or uvloop's transport (no common base)
        self._task: asyncio.Task[None] | None = None
        self._lost = False

    @property
    def transport(self) -> Any:
        """The picows transport (present from the start, for aborting the connection)."""
        return self._inner.transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)  # starts picows' handshake timer

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._chunk)

    def buffer_updated(self, nbytes: int) -> None:
        self._head += self._chunk[:nbytes]
        if self._task is not None:  # already judging: keep what arrived for picows
            return
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) >= MAX_HEAD:
                self._hand_over()  # picows refuses an oversized head by itself
            return
        self._transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._judge(bytes(self._head[:end])))

    async def _judge(self, head: bytes) -> None:
        parsed = parse_head(head)
        if parsed is not None:
            try:
                info = self._upgrade.checked_info(*parsed)
            except Refusal:
                pass  # picows' callback refuses it again, with the same answer
            else:
                refusal: Refusal | None = None
                try:
                    await self._authenticate(info)
                except Refusal as exc:
                    refusal = detached(exc)  # kept in the verdict: no traceback
                except Exception as exc:
                    _log.exception(
                        "[%s] authentication hook raised",
                        info.gateway_id,
                        extra={"gateway_id": info.gateway_id},
                    )
                    refusal = Refusal(500, f"authentication failed: {type(exc).__name__}")
                self._upgrade.verdict = Verdict(info.gateway_id, info.credentials, refusal)
        if not self._lost:
            self._hand_over()

    def _hand_over(self) -> None:
        """Let picows read the request (and whatever followed it) and run the connection."""
        transport = self._transport
        inner = self._inner
        transport.set_protocol(inner)
        data = memoryview(bytes(self._head))
        self._head = bytearray()
        while data and not self._lost and not transport.is_closing():
            buffer = inner.get_buffer(len(data))
            size = min(len(buffer), len(data))
            buffer[:size] = data[:size]
            inner.buffer_updated(size)
            data = data[size:]
        if not transport.is_closing():
            transport.resume_reading()
