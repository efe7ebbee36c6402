"""Giving freed memory back to the system after a burst (issue: hostile peers).

After a burst of connections and large messages, the C allocator keeps the memory it
freed for reuse instead of returning it: the process stayed at 190 MB, four times its
baseline, long after an attack ended. :func:`release_free_memory` asks glibc to hand
back the free pages (``malloc_trim``); the service calls it every
``TRIM_INTERVAL`` seconds. On other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["TRIM_INTERVAL", "release_free_memory"]

TRIM_INTERVAL = 10.0
"""Seconds between two calls of :func:`release_free_memory` in the service."""


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    result: Callable[[int], int] = trim
    return result


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system (glibc only).

    Returns:
        Whether the C library could do it (``False`` where it has no such call).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
