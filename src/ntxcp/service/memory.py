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

Python's cyclic garbage collector, not the allocator, was what stopped the event loop
longest while thousands of gateways connected at once: each full collection walks
every tracked object (about 50 per connected gateway), and a heap that grows by a
quarter triggers one, so a storm of 5,000 admissions ran seven, each stopping the loop
for 65 to 280 ms (a third of the service's CPU in the storm; bench/README.md).
:func:`tune_garbage_collector` (``ntxcp control-center`` calls it once started) moves
what exists after the start out of the collector's sight (``gc.freeze``) and lets a
full collection run only after :data:`FULL_COLLECTION_THRESHOLD` collections of the
middle generation instead of CPython's 10. The young generations are collected as
before (they stay short), and the service's garbage is almost all freed by reference
counting (2,000 gateways that disconnected left no cycle for a full collection to
find), so collecting the old generation rarely costs no memory. Where garbage did form
cycles — every refused handshake once did, through a refusal kept with its traceback —
the cycle is broken at its source (tests/endpoints: refused handshakes leave no
reference cycles) rather than left for a full collection.

Two other holders of memory after a burst are emptied with the same timer: SQLite's page
caches (``StorageBackend.release_memory``), and the allocator's free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache

__all__ = [
    "FULL_COLLECTION_THRESHOLD",
    "TRIM_INTERVAL",
    "map_large_blocks",
    "release_free_memory",
    "tune_garbage_collector",
]

TRIM_INTERVAL = 10.0
"""Seconds between two calls of :func:`release_free_memory` in the service."""


FULL_COLLECTION_THRESHOLD = 1000
"""Collections of the middle generation between two full collections (CPython: 10)."""

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


def tune_garbage_collector() -> None:
    """Keep full garbage collections out of connection storms (see the module's text).

    Collects once, freezes every object that survives (the modules, the service's own
    structures: never scanned again), and raises the threshold of full collections to
    :data:`FULL_COLLECTION_THRESHOLD`. Process-wide: for the service's process, not a
    library caller's.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
