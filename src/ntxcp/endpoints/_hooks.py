"""Calling application hooks safely: a failing hook never breaks a connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["call_hook", "on_outcome"]

_background: set[asyncio.Future[Any]] = set()


def call_hook(
    hook: Callable[..., object] | None, *args: object, log: logging.Logger, gateway_id: str
) -> None:
    """Call ``hook(*args)``; a coroutine it returns runs as a task; errors are logged."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            _background.add(task)
            task.add_done_callback(_finished(log, gateway_id))
    except Exception:  # an application hook never kills a connection
        log.exception("[%s] hook %r raised", gateway_id, hook, extra={"gateway_id": gateway_id})


def on_outcome(
    future: asyncio.Future[Any], callback: Callable[[Any, BaseException | None], object]
) -> None:
    """Call ``callback(result, None)`` or ``callback(None, error)`` once ``future`` ends.

    The Go API's ``SendRequestAsync`` callback contract: called exactly once.
    """

    def done(f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            callback(None, asyncio.CancelledError())
        elif f.exception() is not None:
            callback(None, f.exception())
        else:
            callback(f.result(), None)

    future.add_done_callback(done)


def _finished(log: logging.Logger, gateway_id: str) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        _background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "[%s] hook raised: %r",
                gateway_id,
                task.exception(),
                extra={"gateway_id": gateway_id},
            )

    return done
