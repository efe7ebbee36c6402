"""Waiting for a condition with a deadline: how every test synchronises.

A test never sleeps for a fixed time and then checks a result: it polls the condition
until it holds, and fails with a message naming the condition when the deadline passes
(a loaded machine only makes the wait longer, never the test red). To check that
something did *not* happen, a test waits for a later event that proves the moment has
passed (a later frame on the same connection, a later retry), then checks.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

WAIT = 5.0  # s: the longest any test waits for something that should happen at once


def describe(predicate: Callable[[], object]) -> str:
    """The source line of a predicate (a lambda reads well in a failure), else its name."""
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))


def _timed_out(predicate: Callable[[], object], timeout: float, what: str | None) -> AssertionError:
    return AssertionError(f"not reached within {timeout} s: {what or describe(predicate)}")


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = WAIT,
    *,
    what: str | None = None,
    interval: float = 0.01,
) -> None:
    """Poll ``predicate`` (plain or ``async``) until it is true; fail after ``timeout`` s.

    Args:
        predicate: the condition; may return a bool or an awaitable of one.
        timeout: seconds before the wait fails.
        what: the condition in words, for the failure message (default: its source).
        interval: seconds between two polls.

    Raises:
        AssertionError: the condition was still false at the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise _timed_out(predicate, timeout, what)
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = WAIT,
    interval: float = 0.02,
    what: str | None = None,
) -> None:
    """Blocking :func:`eventually`, for tests without an event loop (threads, processes).

    Raises:
        AssertionError: the condition was still false at the deadline.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise _timed_out(predicate, timeout, what)
        time.sleep(interval)
