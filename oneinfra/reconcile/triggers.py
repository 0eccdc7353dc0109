"""Whom an event of the fleet concerns (controller-runtime's mapped
enqueuing): a change calls for passes where it lands, not over the whole
fleet. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import events as ev
from ..model.state import FleetState


@dataclass
class Concerned:
    """Whom an event concerns: the passes it calls for."""

    hypervisors: set[str] = field(default_factory=set)
    clusters: set[str] = field(default_factory=set)
    everywhere: bool = False  # every hypervisor (where a deleted cluster ran is not known)


def concerned_by(event: ev.Event, state: FleetState) -> Concerned:
    def whole(name: str) -> Concerned:
        cluster = state.clusters.get(name)
        hosts = {c.hypervisor for c in cluster.components.values()} if cluster else set()
        return Concerned(hosts, {name})

    match event:
        case ev.HypervisorRegistered() | ev.HypervisorLabelsChanged() | ev.HypervisorRemoved():
            return Concerned({event.name})
        case ev.ComponentPlaced():
            return Concerned({event.hypervisor}, {event.cluster})
        case (
            ev.ComponentRemoved()
            | ev.ApiServerCertificateIssued()
            | ev.CertificatesRenewed()
            | ev.CertificateLifetimesChanged()  # what the controller manager signs for
            | ev.CARotationPrepared()
            | ev.CARotationCompleted()  # and cluster-info's CAs
            | ev.ServiceAccountKeyRetired()
            | ev.EtcdMemberReplaced()  # its pod, and the others' etcd servers
        ):
            # The cluster's pods change (certificates, the ingress's backends).
            return whole(event.cluster)
        case ev.ClusterCreated() | ev.ClusterScaled():
            return whole(event.name)
        case ev.JoinTokenCreated() | ev.JoinTokenRevoked() | ev.NodeRemoved():
            return Concerned(set(), {event.cluster})  # what it applies inside the cluster
        case ev.ClusterDeleted():
            return Concerned(set(), {event.name}, everywhere=True)
        case _:
            return Concerned()
