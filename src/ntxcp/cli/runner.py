"""The one event-loop runner of the ``ntxcp`` commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run"]


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine function to completion on uvloop when available (as the endpoints).

    Args:
        main: makes the coroutine to run; its result is the exit status.

    Returns:
        The coroutine's result.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
