"""Memory given back after password checks (issue: hostile peers, finding 11).

Each case runs in a fresh interpreter, so the allocator settings of one cannot leak
into another or into the test process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Twenty scrypt checks on a worker thread, as the service's admission pool runs them;
# prints the growth of the resident set in KiB after the allocator was asked to trim.
SCRIPT = """
import sys
from concurrent.futures import ThreadPoolExecutor
from ntxcp.service.memory import map_large_blocks, release_free_memory
from ntxcp.service.passwords import hash_password, verify_password

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 1024

if sys.argv[1] == "mapped":
    assert map_large_blocks()
before = rss_kib()
with ThreadPoolExecutor(1) as pool:
    stored = pool.submit(hash_password, "s3cret").result()
    assert not any(pool.map(lambda i: verify_password(f"guess {i}", stored), range(20)))
    release_free_memory()
    print(rss_kib() - before)
"""


def _growth_kib(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_scrypt_buffers_are_returned_once_large_blocks_are_mapped() -> None:
    # Without the setting the 16 MiB working buffer stays in the thread's heap, even
    # after a trim: this is what the service's setting is for.
    assert _growth_kib("default") > 12 * 1024
    assert _growth_kib("mapped") < 4 * 1024


# What the service's process does once started, then a cycle made afterwards.
GC_SCRIPT = """
import gc
from ntxcp.service.memory import FULL_COLLECTION_THRESHOLD, tune_garbage_collector

before = gc.get_threshold()
started = [[n] for n in range(1000)]  # the service's structures at its start
tune_garbage_collector()
assert gc.get_freeze_count() >= len(started), gc.get_freeze_count()
assert gc.get_threshold() == (*before[:2], FULL_COLLECTION_THRESHOLD), gc.get_threshold()
cycle = []
cycle.append(cycle)
del cycle
print(gc.collect())  # cycles made later are still found
"""


def test_the_service_process_keeps_full_collections_rare() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GC_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 1
