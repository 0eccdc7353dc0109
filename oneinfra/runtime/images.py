"""The images a hypervisor was seen to hold, as its client remembers them:
pods started together check (and pull, when missing) each image once, not
once each. At 300 clusters created at once on empty hypervisors, that was
a third of every CRI call (an image status for each image of each pod, and
the same image pulled by four pods at a time).

What is remembered is forgotten after a while, and at once when a container
cannot be created: the image may have been removed since (a kubelet's image
garbage collection, someone's `crictl rmi`)."""

from __future__ import annotations

import time

import anyio

REMEMBERED = 300.0  # seconds an image seen present is taken as present


class KnownImages:
    def __init__(self, remembered: float = REMEMBERED) -> None:
        self.remembered = remembered
        self._seen: dict[str, float] = {}  # image -> when it was last seen present
        self._locks: dict[str, anyio.Lock] = {}

    def present(self, image: str) -> bool:
        seen = self._seen.get(image)
        return seen is not None and time.monotonic() - seen < self.remembered

    def saw(self, image: str) -> None:
        self._seen[image] = time.monotonic()

    def forget(self) -> None:
        self._seen.clear()

    def lock(self, image: str) -> anyio.Lock:
        """Held while the image is checked or pulled: who asks for it
        meanwhile waits, then finds it known."""
        return self._locks.setdefault(image, anyio.Lock())
