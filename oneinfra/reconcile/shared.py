"""What the reconciler's loops share: the fleet, the options, the status
board, the doorbells, the CRI connections, what the cluster loops learned
of etcd, and the events already read."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.state import Cluster, Component
from ..runtime.cri import HypervisorClient
from ..storage.logreader import EventCache
from .board import StatusBoard
from .connections import Connections
from .fleet import Fleet, Options
from .membership import Memberships
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
