"""The cyclic garbage collector's settings for the hot-path services (gateway, engine).

Per trade these services allocate ticks, tuples and lists that die young and form no reference
cycles, yet the collector walks its young generation every 700 allocations and, now and then,
every tracked object of the process. In the gateway's core one such full collection was
measured at 51 ms (``bench gateway_core``, GC rows): a flush held up for all that time, which is
what a flush-delay p99 sees. So, once a service is built, :func:`settle`:

- freezes what exists (modules, settings, warm windows): it lives as long as the process, and
  a full collection no longer walks it;
- collects the young generation every :data:`YOUNG_THRESHOLD` allocations instead of 700.
  The rare cycle (an exception and its traceback, a closed connection) is still freed. The
  threshold trades how often against how long: a young collection walks every object
  allocated since the last one. With the gateway's core at a paced feed's small flushes
  (``BENCH_GATEWAY_CORE_FLUSH=20``, 3 x 20,000 ticks each) the longest pause was 3.5-5.2 ms
  at CPython's 700 (the middle generation comes round often), 1.8-1.9 ms at 2,000 and
  6.0-6.7 ms at 20,000 (one long young collection).
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 2_000  # allocations between young collections (CPython's: 700)
OLDER_THRESHOLDS: Final = (20, 100)  # young collections per middle one, middle per full


def settle() -> None:
    """Call once the service's long-lived state is built (again after a rebuild)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
