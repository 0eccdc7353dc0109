"""The reconciler, in the daemon: keeps every hypervisor running what the
desired state says, and tells how far each cluster is. This module puts the
pieces together (controller-runtime's manager):

- a worker per hypervisor (hypervisors.py) and per cluster (clusters.py),
  each with a doorbell (workqueue.py);
- passes triggered by new events of the fleet (the store's subscription,
  mapped to whom they concern: triggers.py), by a periodic resync, and
  sooner while something is under way;
- status transitions written to the log's status stream by one task
  (statuswriter.py);
- certificates renewed when due, by another (renewals.py).

Level-triggered throughout: every decision is made from what CRI and etcd
report now, so a daemon killed at any moment converges when it restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..model import events as ev
from ..storage.logreader import EventCache
from .board import StatusBoard
from .clusters import ClusterLoop
from .connections import Connections
from .fleet import Fleet, Options
from .hypervisors import HypervisorLoop
from .membership import Memberships
from .renewals import renew_when_due
from .shared import Shared
from .statuswriter import write_status
from .triggers import Concerned, concerned_by
from .workqueue import Doorbells, Wakeup

EVENT_CACHE = 8192  # decoded events holding PKI, by position

__all__ = ["Controller", "Options"]


@dataclass
class Controller:
    service: Fleet
    options: Options = field(default_factory=Options)
    board: StatusBoard = field(default_factory=StatusBoard)

    def __post_init__(self) -> None:
        events = EventCache(self.service.store, size=EVENT_CACHE)
        self.doorbells = Doorbells()
        self.connections = Connections(
            self.service.keys, self.options.cri_timeout, self.options.observe_cri
        )
        self.memberships = Memberships()
        self.shared = Shared(self.service, self.options, self.board, self.doorbells,
                             self.connections, self.memberships, events)  # fmt: skip
        self.hypervisor_loop = HypervisorLoop(self.shared)
        self.cluster_loop = ClusterLoop(self.shared)
        self._tasks: TaskGroup | None = None
        self._cluster_ids: dict[str, str] = {}  # name -> id, of the clusters with a worker

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.board.load(await self.recorded_status())
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._follow_log)
            tasks.start_soon(write_status, self.service.store, self.board, self.options.quick)
            tasks.start_soon(renew_when_due, self.service)
            self.supervise()
            task_status.started()

    def stop(self) -> None:
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    async def recorded_status(self) -> list[ev.Event]:
        return [
            ev.decode(r.type, r.schema_version, r.data)
            async for r in self.service.store.read_stream(ev.STATUS_STREAM)
        ]

    def supervise(self, concerned: Concerned | None = None) -> None:
        """A worker for each hypervisor and cluster concerned by a change
        (None: all of the state's), and a pass for each of them."""
        assert self._tasks is not None
        state = self.service.state
        hypervisors = set(state.hypervisors) if concerned is None else concerned.hypervisors
        clusters = set(state.clusters) if concerned is None else concerned.clusters
        if concerned is not None and concerned.everywhere:
            hypervisors = set(state.hypervisors)
        for name in hypervisors:
            if name not in self.doorbells.hypervisors and name in state.hypervisors:
                self.doorbells.hypervisors[name] = Wakeup()
                self._tasks.start_soon(self._hypervisor_worker, name)
        self.doorbells.ring_hypervisors(hypervisors)
        for name in clusters:
            cluster = state.clusters.get(name)
            if cluster is not None and cluster.cluster_id not in self.doorbells.clusters:
                self.doorbells.clusters[cluster.cluster_id] = Wakeup()
                self._cluster_ids[name] = cluster.cluster_id
                self._tasks.start_soon(self._cluster_worker, cluster.name, cluster.cluster_id)
        self.doorbells.ring_clusters(
            {self._cluster_ids[n] for n in clusters if n in self._cluster_ids}
        )

    async def _hypervisor_worker(self, name: str) -> None:
        try:
            await self.hypervisor_loop.run(name, self.doorbells.hypervisors[name])
        finally:
            self.doorbells.hypervisors.pop(name, None)

    async def _cluster_worker(self, name: str, cluster_id: str) -> None:
        try:
            await self.cluster_loop.run(name, cluster_id, self.doorbells.clusters[cluster_id])
        finally:
            self.doorbells.clusters.pop(cluster_id, None)
            if self._cluster_ids.get(name) == cluster_id:
                del self._cluster_ids[name]

    async def _follow_log(self) -> None:
        async for record in self.service.store.subscribe(self.service.state.position + 1):
            if record.stream_id == ev.FLEET_STREAM:
                await self.service.wait_position(record.position)
                event = ev.decode(record.type, record.schema_version, record.data)
                concerned = concerned_by(event, self.service.state)
                if isinstance(event, ev.ComponentRemoved):  # where its pod still runs
                    concerned.hypervisors |= set(self.board.remaining(event.cluster))
                self.supervise(concerned)
