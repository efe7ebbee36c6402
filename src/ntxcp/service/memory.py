"""Giving freed memory back to the system after a burst (issue: hostile peers).

After a burst of connections and large messages, the C allocator keeps the memory it
freed for reuse instead of returning it: the process stayed at 190 MB, four times its
baseline, long after an attack ended. :func:`release_free_memory` asks glibc to hand
back the free pages (``malloc_trim``); the service calls it every
``TRIM_INTERVAL`` seconds. On other C libraries it does nothing.

Trimming does not reach one kind of block: scrypt's 16 MiB working buffer, allocated
in a password-check thread, stays in that thread's heap (measured: +16 MiB of RSS
after the first check, still there after ``malloc_trim``). glibc raises its mmap
threshold after such a block is freed, so the next ones come from the heap too.
:func:`map_large_blocks` fixes the threshold at 128 KiB: every larger block is mapped
on its own and unmapped as soon as it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["TRIM_INTERVAL", "map_large_blocks", "release_free_memory"]

TRIM_INTERVAL = 10.0
"""Seconds between two calls of :func:`release_free_memory` in the service."""


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
_LARGE_BLOCK = 128 * 1024  # glibc's initial threshold, kept from now on


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _glibc()
    if libc is None:
        return None
    trim: Callable[[int], int] = libc.malloc_trim
    return trim


def map_large_blocks() -> bool:
    """Have every block over 128 KiB mapped on its own, returned when freed (glibc only).

    Returns:
        Whether the C library took the setting.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK))


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
