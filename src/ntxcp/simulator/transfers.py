"""Out-of-band file transfers of a simulated gateway (spec §4.2).

UpdateFirmware and GetDiagnostics name a URL; the gateway fetches the firmware from it,
or uploads its diagnostics file to it, outside the WebSocket. The simulator really does
both over HTTP(S) with :mod:`aiohttp`:

* :func:`download` GETs the firmware, streaming it through SHA-256 without keeping it;
* :func:`upload` PUTs the diagnostics file; a server answering ``405 Method Not
  Allowed`` gets it again as a ``multipart/form-data`` POST (form field ``file``);
  a location ending in ``/`` names a directory and gets the file name appended.

Both make ``1 + retries`` attempts, ``retry_interval`` seconds apart (spec §4.2
``retries``/``retryInterval``), and raise :class:`TransferError` when every attempt
failed. Only ``http`` and ``https`` locations are supported; any other scheme fails at
once (retrying cannot help). With ``loopback_only``, a location whose host is not a
loopback address (``127.0.0.0/8``, ``::1``, ``localhost``) fails at once too, before
any name is resolved: a simulator driven by a fuzzer reaches nothing beyond the
machine.

The module also keeps the gateway's :class:`Journal`, the recent log lines that a
diagnostics file contains.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import ssl
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import aiohttp

from ntxcp.v10.types import encode_datetime

__all__ = [
    "Download",
    "Journal",
    "TransferError",
    "download",
    "firmware_version_from",
    "is_loopback_host",
    "upload",
]

DEFAULT_MAX_FIRMWARE_SIZE = 256 * 1024 * 1024
"""Largest firmware image the simulator accepts, in bytes."""

_CHUNK = 64 * 1024
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"\d+(?:\.\d+)+(?:-[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?")


class TransferError(Exception):
    """Every attempt of a transfer failed; the message says why the last one did."""


@dataclass(frozen=True, slots=True)
class Download:
    """A downloaded firmware image.

    Attributes:
        file_name: the last path segment of the location.
        size: bytes received.
        sha256: hex digest of the content.
        attempts: attempts used (1 when the first one succeeded).
    """

    file_name: str
    size: int
    sha256: str
    attempts: int


def firmware_version_from(file_name: str, sha256: str) -> str:
    """The version a firmware image installs: from its file name, else from its hash.

    Args:
        file_name: e.g. ``"dx-fw-2.1.0.bin"``.
        sha256: the image's hex digest.

    Returns:
        The first dotted version in the name (``"2.1.0"``), or ``"build-<10 hex>"``;
        at most 50 characters (CiString50, spec §4.1 BootNotification).
    """
    stem = _EXTENSION.sub("", file_name)  # "dx-4.0.1-rc.2.bin": the ".bin" is no part
    match = _VERSION.search(stem)
    if match is not None:
        return match.group(0)[:50]
    return f"build-{sha256[:10]}"


def _check_location(location: str, loopback_only: bool) -> None:
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TransferError(f"unsupported location scheme {scheme or '(none)'!r}")
    if loopback_only and not is_loopback_host(parts.hostname):
        raise TransferError(f"refused: {parts.hostname!r} is not a loopback address")


def is_loopback_host(host: str | None) -> bool:
    """Whether a URL's host names this machine: ``localhost`` or a loopback IP address.

    No name is resolved: ``example.com`` is not loopback even if it resolves there.
    """
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))


async def download(
    location: str,
    *,
    retries: int = 0,
    retry_interval: float = 0.0,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 300.0,
    max_size: int = DEFAULT_MAX_FIRMWARE_SIZE,
    loopback_only: bool = False,
) -> Download:
    """Fetch a firmware image with HTTP GET (spec §4.2 UpdateFirmware).

    Args:
        location: the ``http``/``https`` URL.
        retries: further attempts after a failed one.
        retry_interval: seconds between attempts.
        ssl_context: TLS settings for ``https`` (default: system trust).
        timeout: seconds for one attempt.
        max_size: larger images fail the attempt.
        loopback_only: refuse a location whose host is not a loopback address.

    Returns:
        What was downloaded.

    Raises:
        TransferError: the scheme (or host) is refused, or every attempt failed.
    """
    _check_location(location, loopback_only)
    file_name = unquote(urlsplit(location).path.rsplit("/", 1)[-1]) or "firmware.bin"
    last_error = "no attempt made"
    attempts = retries + 1
    async with aiohttp.ClientSession(timeout=_timeout(timeout)) as session:
        for attempt in range(1, attempts + 1):
            try:
                digest = hashlib.sha256()
                size = 0
                async with session.get(location, ssl=ssl_context or True) as response:
                    if response.status >= 300:
                        raise TransferError(f"HTTP {response.status} {response.reason or ''}")
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > max_size:
                            raise TransferError(f"firmware larger than {max_size} bytes")
                        digest.update(chunk)
                return Download(file_name, size, digest.hexdigest(), attempt)
            except (TransferError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_error = str(exc) or type(exc).__name__
            if attempt < attempts:
                await asyncio.sleep(retry_interval)
    raise TransferError(f"download failed after {attempts} attempt(s): {last_error}")


async def upload(
    location: str,
    file_name: str,
    content: bytes,
    *,
    retries: int = 0,
    retry_interval: float = 0.0,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 120.0,
    loopback_only: bool = False,
) -> int:
    """Upload a diagnostics file (spec §4.2 GetDiagnostics).

    PUT to ``location`` (plus ``file_name`` when it ends in ``/``); on ``405`` the same
    attempt POSTs it as ``multipart/form-data`` instead.

    Args:
        location: the ``http``/``https`` URL.
        file_name: the name announced in the GetDiagnostics confirmation.
        content: the file.
        retries: further attempts after a failed one.
        retry_interval: seconds between attempts.
        ssl_context: TLS settings for ``https`` (default: system trust).
        timeout: seconds for one attempt.
        loopback_only: refuse a location whose host is not a loopback address.

    Returns:
        The number of attempts used.

    Raises:
        TransferError: the scheme (or host) is refused, or every attempt failed.
    """
    _check_location(location, loopback_only)
    url = location + file_name if location.endswith("/") else location
    last_error = "no attempt made"
    attempts = retries + 1
    verify: ssl.SSLContext | bool = ssl_context or True
    async with aiohttp.ClientSession(timeout=_timeout(timeout)) as session:
        for attempt in range(1, attempts + 1):
            try:
                headers = {"Content-Type": "text/plain; charset=utf-8"}
                async with session.put(url, data=content, headers=headers, ssl=verify) as put:
                    status, reason = put.status, put.reason
                if status == 405:  # the server wants a form upload
                    form = aiohttp.FormData()
                    form.add_field("file", content, filename=file_name, content_type="text/plain")
                    async with session.post(url, data=form, ssl=verify) as post:
                        status, reason = post.status, post.reason
                if status < 300:
                    return attempt
                last_error = f"HTTP {status} {reason or ''}".rstrip()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last_error = str(exc) or type(exc).__name__
            if attempt < attempts:
                await asyncio.sleep(retry_interval)
    raise TransferError(f"upload failed after {attempts} attempt(s): {last_error}")


class Journal:
    """The gateway's recent log lines, kept for diagnostics files.

    Args:
        capacity: lines kept; older ones are dropped.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._lines: deque[tuple[datetime, str]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, text: str) -> None:
        """Record one line, stamped now (UTC)."""
        self._lines.append((datetime.now(UTC), text))

    def lines(self, start: datetime | None = None, stop: datetime | None = None) -> list[str]:
        """The lines logged between ``start`` and ``stop`` (inclusive), formatted.

        Args:
            start: oldest time wanted (spec §4.2 GetDiagnostics ``startTime``).
            stop: newest time wanted (``stopTime``).
        """
        return [
            f"{encode_datetime(stamp)} {text}"
            for stamp, text in self._lines
            if (start is None or stamp >= start) and (stop is None or stamp <= stop)
        ]

    def clear(self) -> None:
        """Forget every line (a hard reset)."""
        self._lines.clear()
