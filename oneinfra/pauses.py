"""Short pauses for the daemon: the cyclic garbage collector's policy.

A full collection walks every object the collector tracks, and every request
waits for it. In a daemon holding a fleet, that was 60-100 ms at 300
clusters, every couple of seconds. So:

- the state, the rendered and the observed pods, and the events are msgspec
  structs that never form cycles, and are not tracked (`gc=False`);
- what the start leaves (modules, the rebuilt state) is frozen: no later
  collection walks it again;
- full collections come less often (the third threshold);
- the GIL passes between threads every millisecond instead of every 5: the
  API's thread (server.ApiThread) waits at most that for the interpreter
  while the reconciler's loop keeps it busy.
"""

from __future__ import annotations

import gc
import sys

THRESHOLDS = (700, 10, 100)  # the default third is 10
SWITCH_INTERVAL = 0.001  # seconds; the default is 0.005


def after_start() -> None:
    """Called once the daemon has loaded its code and rebuilt its state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
