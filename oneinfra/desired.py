"""The desired pods of a hypervisor, from the fleet's state and its log.

The state refers to certificates by the log position of the event holding
them; this loads those events (cached: they never change) and hands them,
with the cluster's data key, to the pure blueprints.

etcd membership here is a cluster's initial one (every member 'new'), which
is right for members that start together. A member added by scaling joins
an existing cluster as a learner first; that step belongs to the
reconciler's loop, which will pass the membership it established.
"""

from __future__ import annotations

from collections.abc import Callable

from . import blueprints as bp
from . import events as ev
from .logreader import EventCache
from .state import INGRESS, Cluster, FleetState

DataKey = Callable[[str], bytes]  # data key id -> the key


def initial_membership(state: FleetState, cluster: Cluster) -> bp.EtcdMembership:
    members = {
        bp.member_name(cluster, c): bp.host_url(
            state.hypervisors[c.hypervisor].ip_address, c.ports["etcd-peer"]
        )
        for c in cluster.control_planes()
    }
    return bp.EtcdMembership(members=members, state="new")


async def desired_pods(
    state: FleetState,
    hypervisor: str,
    events: EventCache,
    data_key: DataKey,
    data_dir: str = bp.DATA_DIR,
) -> list[bp.PodSpec]:
    """Every pod the hypervisor should run, in a stable order."""
    pods: list[bp.PodSpec] = []
    for _, cluster in sorted(state.clusters.items()):
        for _, component in sorted(cluster.components.items()):
            if component.hypervisor != hypervisor:
                continue
            if component.role == INGRESS:
                pods.append(bp.ingress(cluster, component, state.hypervisors, data_dir=data_dir))
                continue
            created = await events.get(cluster.created_at, ev.ClusterCreated)
            placed = await events.get(component.placed_at, ev.ComponentPlaced)
            issued = await events.get(cluster.apiserver_at, ev.ApiServerCertificateIssued)
            pods.append(
                bp.control_plane(
                    cluster,
                    component,
                    state.hypervisors,
                    created.pki,
                    placed,
                    issued,
                    initial_membership(state, cluster),
                    data_key(cluster.key_id),
                    data_dir=data_dir,
                )
            )
    return pods
