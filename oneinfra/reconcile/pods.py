"""The pods a hypervisor should run, from the fleet's state and its log.

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

from .. import render as bp
from ..errors import OneinfraError
from ..model import events as ev
from ..model.certificates import current_member, current_serving, trusted_pki
from ..model.kinds import INGRESS, VPN
from ..model.state import Cluster, Component, FleetState
from ..pki import certlist
from ..pki.sealing import unseal
from ..storage.logreader import EventCache
from .certificates import cluster_pki, cluster_trust, current_pairs

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


def ingress_key(state: FleetState, cluster: Cluster, component: Component) -> tuple[object, ...]:
    """What an ingress pod depends on: where every API server is."""
    servers = tuple(
        (c.name, state.hypervisors[c.hypervisor].ip_address, c.ports["apiserver"])
        for c in cluster.control_planes()
    )
    return (INGRESS, cluster.cluster_id, component.placed_at, servers)


def control_plane_key(
    state: FleetState, cluster: Cluster, component: Component, joining: bp.EtcdMembership | None
) -> tuple[object, ...]:
    """What a control-plane pod depends on: its placement (its event), the
    cluster's certificates (their events) and the CAs it trusts (a rotation's
    phase), how its etcd member joins."""
    members = None if joining is None else (tuple(sorted(joining.members.items())), joining.state)
    restoring = cluster.etcd_restore.backup.backup_id if cluster.etcd_restore else None
    return (cluster.cluster_id, component.name, component.placed_at, component.etcd_generation,
            cluster.created_at, cluster.apiserver_at, cluster.certificates_at, cluster.rotation,
            members, restoring)  # fmt: skip


class PodCache:
    """Rendered pods by what they depend on. A blueprint is pure and
    rendering one costs (keys unsealed, kubeconfigs written as YAML), while
    a pass over a converged fleet asks for the same pods again and again."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._pods: dict[tuple[object, ...], bp.PodSpec] = {}

    def get(self, key: tuple[object, ...]) -> bp.PodSpec | None:
        return self._pods.get(key)

    def put(self, key: tuple[object, ...], pod: bp.PodSpec) -> None:
        if len(self._pods) >= self._size:
            self._pods.pop(next(iter(self._pods)))
        self._pods[key] = pod


async def desired_pods(
    state: FleetState,
    hypervisor: str,
    events: EventCache,
    data_key: DataKey,
    admissions: Admissions | None = None,
    fleet: str = "",
    cache: PodCache | None = None,
) -> list[bp.PodSpec]:
    """Every pod the hypervisor should run, in a stable order, labelled as
    the fleet's."""
    host = state.hypervisors[hypervisor]
    data_dir = host.data_dir
    admissions = admissions or {}
    pods: list[bp.PodSpec] = []
    # The components placed here, from the hypervisor's own index: a pass
    # costs what the hypervisor holds, not what the fleet holds.
    for placed_here in sorted(host.placements):
        cluster_name, component_name = placed_here.split("/", 1)
        cluster = state.clusters[cluster_name]
        component = cluster.components[component_name]
        joining = None
        if component.role == INGRESS:
            key = (*ingress_key(state, cluster, component), data_dir, fleet)
        elif component.role == VPN:
            enabled = cluster.vpn.enabled_at if cluster.vpn else 0
            key = (VPN, cluster.cluster_id, component.placed_at, enabled, data_dir, fleet)
        else:
            joining = membership(state, cluster, component, admissions)
            key = (*control_plane_key(state, cluster, component, joining), data_dir, fleet)
        pod = cache.get(key) if cache else None
        if pod is None:
            pod = bp.in_fleet(
                await render(state, cluster, component, events, data_key, joining, data_dir),
                fleet,
            )
            if cache is not None:
                cache.put(key, pod)
        pods.append(pod)
    return pods


async def render(
    state: FleetState,
    cluster: Cluster,
    component: Component,
    events: EventCache,
    data_key: DataKey,
    joining: bp.EtcdMembership | None,
    data_dir: str,
) -> bp.PodSpec:
    if component.role == INGRESS:
        return bp.ingress(cluster, component, state.hypervisors, data_dir=data_dir)
    if component.role == VPN:
        assert cluster.vpn is not None, "a VPN server is placed with its VPN"
        enabled = await events.get(cluster.vpn.enabled_at, ev.VpnEnabled)
        private_key = unseal(enabled.server_private_key, data_key(cluster.key_id))
        return bp.vpn_server(cluster, component, private_key, data_dir=data_dir)
    placed = await events.get(component.placed_at, ev.ComponentPlaced)
    issued = await events.get(cluster.apiserver_at, ev.ApiServerCertificateIssued)
    trust = await cluster_trust(events, cluster)
    pairs = await current_pairs(
        events, cluster, [certlist.SERVING_ID, *certlist.member_ids(component.name)]
    )
    return bp.control_plane(
        cluster,
        component,
        state.hypervisors,
        trusted_pki(await cluster_pki(events, cluster), trust),
        current_member(placed, pairs, trust),
        current_serving(issued, pairs, trust),
        joining,
        data_key(cluster.key_id),
        data_dir=data_dir,
        restore_from=restore_source(cluster, data_key),
    )


def restore_source(cluster: Cluster, data_key: DataKey) -> bp.RestoreSource | None:
    """The backup a restore under way rebuilds the cluster's etcd from; its
    key empty when its cluster (a clone's source) was deleted since."""
    restore = cluster.etcd_restore
    if restore is None:
        return None
    try:
        key = data_key(restore.source_key_id)
    except (OneinfraError, KeyError):
        key = b""
    backup = restore.backup
    return bp.RestoreSource(
        location=backup.location, cluster=restore.source_cluster,
        cluster_id=restore.source_cluster_id, backup_id=backup.backup_id,
        sha256=backup.sha256, size=backup.size, data_key=key,
    )  # fmt: skip
