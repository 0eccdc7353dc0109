"""Short pauses for the daemon: the cyclic garbage collector's policy.

A full collection walks every object the collector tracks, and every request
waits for it. In a daemon holding a fleet, that was 60-100 ms at 300
clusters, every couple of seconds. So:

- the state, the rendered and the observed pods, and the events are msgspec
  structs that never form cycles, and are not tracked (`gc=False`);
- what the start leaves (modules, the rebuilt state) is frozen: no later
  collection walks it again;
- full collections are not left to the allocation counts but come on a
  timer (`Collector`): each walks what survived since the last
  one, then freezes it too, and every tenth walks everything, so that a
  cycle that died frozen is freed within minutes;
- the GIL passes between threads every millisecond instead of every 5: the
  API's thread (apithread.ApiThread) waits at most that for the interpreter
  while the reconciler's loop keeps it busy.

Young garbage is collected as before (the first two thresholds).
"""

from __future__ import annotations

import gc
import sys

import anyio

THRESHOLDS = (700, 10, 1_000_000_000)  # the third: no full collection by counts
SWITCH_INTERVAL = 0.001  # seconds; the default is 0.005
FULL_EVERY = 60.0  # seconds between full collections
THAW_EVERY = 10  # every tenth full collection also walks what is frozen


def after_start() -> None:
    """Called once the daemon has loaded its code and rebuilt its state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)


class Collector:
    """Full collections on a timer, until stopped."""

    def __init__(self, every: float = FULL_EVERY, thaw_every: int = THAW_EVERY) -> None:
        self.every, self.thaw_every = every, thaw_every
        self.rounds = 0
        self._scope = anyio.CancelScope()

    async def run(self) -> None:
        with self._scope:
            while True:
                await anyio.sleep(self.every)
                self.rounds += 1
                full_collection(thaw=self.rounds % self.thaw_every == 0)

    def stop(self) -> None:
        self._scope.cancel()


def full_collection(*, thaw: bool) -> None:
    """Walks what is not frozen (everything, if `thaw`), then freezes it."""
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
