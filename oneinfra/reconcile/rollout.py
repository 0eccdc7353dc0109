"""Rolling changes: one rule for whatever makes a running control-plane
replica restart (new certificates, a scale's new serving certificate and
etcd members, a new version): of a cluster's replicas, one at a time, the
next only once the previous runs its new containers, its API server
answers `/readyz` and the ingress has had time to send it traffic again.
etcd keeps its quorum, and the API stays up, throughout.

A replica that crashed is restarted at once (nothing of it runs: that
disrupts nobody), and a cluster with one replica is not held back.

Each hypervisor's pass asks before it acts (`admit`); the slot is given up
once the holder is ready again (`release`), or when it has been held
for longer than a rollout may take (its hypervisor down, say), so that no
cluster is stuck behind one replica. In memory only: a daemon started
again makes the next change wait for nobody, and a replica found
restarting simply takes the slot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import plan as pl
from .plan import Key

HOLD_AT_MOST = 300.0  # seconds a replica may keep its cluster's slot
SETTLE = 2.0  # seconds after /readyz: the ingress checks every second, rises at once


def disruptive(actions: Sequence[pl.Action], observed: Sequence[pl.ObservedPod]) -> set[Key]:
    """The pods these actions would stop while something of them runs: a
    spec changed, or a running container replaced for new files."""
    pods = {pod.sandbox_id: pod for pod in observed}
    found = set()
    for action in actions:
        if isinstance(action, pl.RemovePod | pl.RestartContainer):
            pod = pods.get(action.sandbox_id)
            if pod is None:
                continue
            running = {c.id for c in pod.containers if c.running}
            if isinstance(action, pl.RemovePod):
                stops = action.reason == "its spec changed" and bool(running)
            else:
                stops = bool(running & set(action.old_container_ids))
            if stops:
                found.add(pod.key)
    return found


@dataclass
class Slot:
    component: str
    since: float
    ready_at: float | None = None  # when its API server first answered again


@dataclass
class Rollouts:
    slots: dict[str, Slot] = field(default_factory=dict)  # by cluster id

    def admit(self, key: Key, replicas: int, now: float | None = None) -> bool:
        """Whether this replica may be disrupted now; if so, it holds its
        cluster's slot."""
        cluster_id, component = key
        now = time.monotonic() if now is None else now
        if replicas <= 1:
            return True
        slot = self.slots.get(cluster_id)
        if slot is not None and slot.component != component and now - slot.since < HOLD_AT_MOST:
            return False
        if slot is None or slot.component != component:
            self.slots[cluster_id] = Slot(component, now)
        else:
            slot.ready_at = None  # disrupted again: ready again from now on
        return True

    def holder(self, cluster_id: str) -> str | None:
        slot = self.slots.get(cluster_id)
        return slot.component if slot else None

    def ready(self, key: Key, answers: bool, now: float | None = None) -> bool:
        """The holder seen settled, its API server answering or not; whether
        the slot is free now."""
        cluster_id, component = key
        now = time.monotonic() if now is None else now
        slot = self.slots.get(cluster_id)
        if slot is None or slot.component != component:
            return True
        if not answers:
            slot.ready_at = None
            return False
        if slot.ready_at is None:
            slot.ready_at = now
        if now - slot.ready_at >= SETTLE:
            del self.slots[cluster_id]
            return True
        return False

    def forget(self, cluster_id: str, component: str | None = None) -> None:
        """The cluster (or the holder) is gone."""
        slot = self.slots.get(cluster_id)
        if slot is not None and (component is None or slot.component == component):
            del self.slots[cluster_id]
