"""What the reconciler's loops share: the fleet, the options, the status
board, the doorbells, the CRI connections, what the cluster loops learned
of etcd, and the events already read."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from ..model.certificates import trusted_pki
from ..model.state import CARotation, Cluster, Component
from ..pki.sealing import unseal
from ..runtime.cri import HypervisorClient
from ..runtime.tls import client_context
from ..storage.logreader import EventCache
from .board import StatusBoard
from .certificates import cluster_pki, cluster_trust
from .connections import Connections
from .fleet import Fleet, Options
from .membership import Memberships
from .rollout import Rollouts
from .workqueue import Doorbells


@dataclass
class Shared:
    fleet: Fleet
    options: Options
    board: StatusBoard
    doorbells: Doorbells
    connections: Connections
    memberships: Memberships
    events: EventCache
    rollouts: Rollouts = field(default_factory=Rollouts)
    # oneinfra's clients of each cluster, by cluster id, with the position of
    # the admin certificate each holds and the CA rotation it trusts for.
    _tls: dict[str, tuple[tuple[int, CARotation | None], ssl.SSLContext]] = field(
        default_factory=dict
    )
    _probes: AsyncLimiter = field(init=False)
    _next_turn: float = 0.0  # when the last cluster skipped is due to probe again

    def __post_init__(self) -> None:
        self._probes = AsyncLimiter(self.options.probe_rate, 1)

    async def probe(self, endpoint: str, cluster: Cluster) -> str | None:
        """Why the cluster's API server at `endpoint` is not ready (None: it is)."""
        return await self.options.probe(endpoint, await self.probe_tls(cluster))

    async def spend_probe(self) -> bool:
        """Whether the fleet's budget of probes (fleet.PROBE_RATE) allows one
        more now; if so, it is spent. A cluster's routine probe is skipped
        when it does not, and made at a later pass: waiting for the budget
        instead held the cluster's pass (its etcd members, a scale's steps)
        behind a thousand silent clusters. A change's own probes (a replica
        rolling) are not counted."""
        if not self._probes.has_capacity():
            return False
        await self._probes.acquire()  # there is capacity: returns at once
        return True

    def probe_turn(self) -> float:
        """How long a cluster whose probe was skipped waits before its next
        try: its place in line behind the others skipped, at the budget's
        rate. Retrying at the quick pace instead made a thousand passes a
        second that each found the budget spent."""
        now = time.monotonic()
        self._next_turn = max(now, self._next_turn) + 1 / self.options.probe_rate
        return self._next_turn - now

    async def probe_tls(self, cluster: Cluster) -> ssl.SSLContext:
        """oneinfra's own client of the cluster, with its admin certificate
        as it is now, trusting the CAs it trusts now: a renewal or a
        rotation's phase makes a new one."""
        version = (cluster.certificates["admin"].at, cluster.rotation)
        cached = self._tls.get(cluster.cluster_id)
        if cached is None or cached[0] != version:
            pki = trusted_pki(
                await cluster_pki(self.events, cluster), await cluster_trust(self.events, cluster)
            )
            key = unseal(pki.admin.key, self.fleet.keys.get(cluster.key_id))
            cached = self._tls[cluster.cluster_id] = (
                version, client_context(pki.ca.certificate, pki.admin.certificate, key)
            )  # fmt: skip
        return cached[1]

    def forget_cluster(self, cluster_id: str) -> None:
        self._tls.pop(cluster_id, None)
        self.rollouts.forget(cluster_id)

    def running_etcds(self, cluster: Cluster) -> list[tuple[Component, HypervisorClient, str]]:
        """The cluster's desired members whose etcd runs, founding members
        first (voters: one added later may be a learner still): where
        etcdctl can run."""
        found = []
        for component in sorted(cluster.control_planes(), key=lambda c: not c.founding):
            running = self.running_container(cluster, component, "etcd")
            if running is not None:
                found.append((component, *running))
        return found

    def running_container(
        self, cluster: Cluster, component: Component, role: str
    ) -> tuple[HypervisorClient, str] | None:
        """The client and id of the component's running container in that
        role, as last observed; None while it is not known to run."""
        health = self.board.hypervisors.get(component.hypervisor)
        client = self.connections.clients.get(component.hypervisor)
        if health is None or client is None or not health.reachable:
            return None
        for pod in health.observed:
            if pod.key == (cluster.cluster_id, component.name):
                for container in pod.containers:
                    if container.role == role and container.running:
                        return client, container.id
        return None
