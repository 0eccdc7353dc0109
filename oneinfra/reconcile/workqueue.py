"""How the reconciler's workers wait and retry (controller-runtime's work
queue, reduced to what one worker per key needs): a doorbell per worker,
what a pass asks for next (a Result), and exponential backoff."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import anyio


class Wakeup:
    """A worker's doorbell: rung by triggers, or it times out."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True if rung, False if the time ran out."""
        rung = False
        with anyio.move_on_after(seconds):
            await self._event.wait()
            rung = True
        self._event = anyio.Event()
        return rung


@dataclass(frozen=True)
class Requeue:
    """The pass is done: pass again after `after` seconds, or when rung."""

    after: float


@dataclass(frozen=True)
class BackOff:
    """The pass failed: pass again after the backoff, or when rung."""


Result = Requeue | BackOff


class Backoff:
    """Exponential: `first`, doubling up to `maximum`; reset by a success."""

    def __init__(self, first: float, maximum: float) -> None:
        self.first, self.maximum = first, maximum
        self.current = 0.0

    def next(self) -> float:
        self.current = min(max(self.first, self.current * 2), self.maximum)
        return self.current

    def delay(self, result: Result) -> float:
        """Seconds until the next pass after this result."""
        if isinstance(result, BackOff):
            return self.next()
        self.current = 0.0
        return result.after


class Doorbells:
    """Every worker's doorbell: the hypervisors' by name, the clusters' by id."""

    def __init__(self) -> None:
        self.hypervisors: dict[str, Wakeup] = {}
        self.clusters: dict[str, Wakeup] = {}

    def ring_hypervisors(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.hypervisors:
                self.hypervisors[name].ring()

    def ring_clusters(self, ids: Iterable[str]) -> None:
        for cluster_id in ids:
            if cluster_id in self.clusters:
                self.clusters[cluster_id].ring()
