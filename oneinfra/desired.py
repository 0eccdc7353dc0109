"""The desired pods of a hypervisor, from the fleet's state and its log.

The state refers to certificates by the log position of the event holding
them; this loads those events (cached: they never change) and hands them,
with the cluster's data key, to the pure blueprints.

etcd membership: the members a cluster was created with start together
('new'); a member placed by scaling starts only once the reconciler has
added it to the running etcd as a learner, with the membership it got then
(`admissions`); until then its pod is blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import blueprints as bp
from . import events as ev
from .logreader import EventCache
from .state import INGRESS, Cluster, Component, FleetState

DataKey = Callable[[str], bytes]  # data key id -> the key


Admissions = Mapping[tuple[str, str], bp.EtcdMembership]  # (cluster id, component) ->


def initial_membership(state: FleetState, cluster: Cluster) -> bp.EtcdMembership:
    members = {
        bp.member_name(cluster, c): bp.host_url(
            state.hypervisors[c.hypervisor].ip_address, c.ports["etcd-peer"]
        )
        for c in cluster.control_planes()
        if c.founding
    }
    return bp.EtcdMembership(members=members, state="new")


def membership(
    state: FleetState, cluster: Cluster, component: Component, admissions: Admissions
) -> bp.EtcdMembership | None:
    if component.founding:
        return initial_membership(state, cluster)
    return admissions.get((cluster.cluster_id, component.name))


async def desired_pods(
    state: FleetState,
    hypervisor: str,
    events: EventCache,
    data_key: DataKey,
    admissions: Admissions | None = None,
    fleet: str = "",
) -> list[bp.PodSpec]:
    """Every pod the hypervisor should run, in a stable order, labelled as
    the fleet's."""
    data_dir = state.hypervisors[hypervisor].data_dir
    admissions = admissions or {}
    pods: list[bp.PodSpec] = []
    for _, cluster in sorted(state.clusters.items()):
        for _, component in sorted(cluster.components.items()):
            if component.hypervisor != hypervisor:
                continue
            if component.role == INGRESS:
                pods.append(
                    bp.in_fleet(
                        bp.ingress(cluster, component, state.hypervisors, data_dir=data_dir), fleet
                    )
                )
                continue
            created = await events.get(cluster.created_at, ev.ClusterCreated)
            placed = await events.get(component.placed_at, ev.ComponentPlaced)
            issued = await events.get(cluster.apiserver_at, ev.ApiServerCertificateIssued)
            pods.append(
                bp.in_fleet(
                    bp.control_plane(
                        cluster,
                        component,
                        state.hypervisors,
                        created.pki,
                        placed,
                        issued,
                        membership(state, cluster, component, admissions),
                        data_key(cluster.key_id),
                        data_dir=data_dir,
                    ),
                    fleet,
                )
            )
    return pods
