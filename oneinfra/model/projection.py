"""The projection: folds the fleet's events into its desired state."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..pki import certlist
from ..pki.certlist import KeyPair, Validity
from ..pki.x509 import validity_of
from . import events as ev
from .state import (
    BackupFailure,
    BackupSchedule,
    CARotation,
    Certificate,
    Cluster,
    Component,
    EtcdRestore,
    FleetState,
    Hypervisor,
    JoinToken,
    Vpn,
    VpnPeer,
    placement_key,
)


def certified(
    cluster: Cluster, position: int, pairs: dict[str, KeyPair], validity: Validity | None
) -> None:
    """Certificates now carried by the event at `position`. Events from
    before validities were recorded have them read from the certificates."""
    for certificate_id, pair in pairs.items():
        known = validity or Validity(*validity_of(pair.certificate))
        cluster.certificates[certificate_id] = Certificate(position, known)
    cluster.certificates_at = position


def apply(state: FleetState, event: ev.Event, position: int) -> None:
    """Fold one event, stored at `position` of the log, into the state, in place."""
    match event:
        case ev.HypervisorRegistered():
            state.hypervisors[event.name] = Hypervisor(
                name=event.name,
                endpoint=event.endpoint,
                role=event.role,
                ip_address=event.ip_address,
                port_range=event.port_range,
                labels=dict(event.labels),
                tls=event.tls,
                data_dir=event.data_dir,
            )
        case ev.HypervisorLabelsChanged():
            state.hypervisors[event.name].labels = dict(event.labels)
        case ev.HypervisorRemoved():
            del state.hypervisors[event.name]
        case ev.ClusterCreated():
            state.clusters[event.name] = Cluster(
                cluster_id=event.cluster_id,
                name=event.name,
                kubernetes_version=event.kubernetes_version,
                control_plane_replicas=event.control_plane_replicas,
                service_cidr=event.service_cidr,
                pod_cidr=event.pod_cidr,
                dns_domain=event.dns_domain,
                apiserver_extra_sans=list(event.apiserver_extra_sans),
                vpn_enabled=event.vpn_enabled,
                vpn_cidr=event.vpn_cidr,
                key_id=event.key_id,
                created_at=position,
                leaf_lifetime=event.leaf_lifetime or certlist.DEFAULT_LEAF_LIFETIME,
                ca_lifetime=event.ca_lifetime or certlist.DEFAULT_CA_LIFETIME,
            )
            pairs = {i: getattr(event.pki, i) for i in certlist.CLUSTER_LEAF_IDS}
            certified(state.clusters[event.name], position, pairs, event.leaf_validity)
            pairs = {i: getattr(event.pki, i) for i in certlist.CA_IDS}
            certified(state.clusters[event.name], position, pairs, event.ca_validity)
        case ev.ComponentPlaced():
            cluster = state.clusters[event.cluster]
            cluster.components[event.component] = Component(
                name=event.component,
                role=event.role,
                hypervisor=event.hypervisor,
                ports=dict(event.ports),
                placed_at=position,
                founding=not cluster.scaled,
            )
            state.hypervisors[event.hypervisor].placements[
                placement_key(event.cluster, event.component)
            ] = sorted(event.ports.values())
            if event.etcd_server is not None and event.etcd_peer is not None:
                server, peer = certlist.member_ids(event.component)
                pairs = {server: event.etcd_server, peer: event.etcd_peer}
                certified(cluster, position, pairs, event.validity)
        case ev.ComponentRemoved():
            cluster = state.clusters[event.cluster]
            component = cluster.components.pop(event.component)
            for certificate_id in certlist.member_ids(event.component):
                cluster.certificates.pop(certificate_id, None)
            del state.hypervisors[component.hypervisor].placements[
                placement_key(event.cluster, event.component)
            ]
        case ev.ApiServerCertificateIssued():
            cluster = state.clusters[event.cluster]
            cluster.apiserver_sans = list(event.sans)
            cluster.apiserver_at = position
            certified(cluster, position, {certlist.SERVING_ID: event.serving}, event.validity)
        case ev.CertificatesRenewed():
            certified(state.clusters[event.cluster], position, event.certificates, event.validity)
        case ev.CARotationPrepared():
            cluster = state.clusters[event.cluster]
            certified(cluster, position, event.cas, event.ca_validity)
            certified(cluster, position, event.certificates, event.validity)
            cluster.service_account_at = position
            cluster.rotation = CARotation(position, event.ca_validity.issued)
        case ev.CARotationCompleted():
            cluster = state.clusters[event.cluster]
            assert cluster.rotation is not None, "the decider completes only a prepared rotation"
            retired = event.completed if event.key_retired else 0
            cluster.rotation = msgspec.structs.replace(
                cluster.rotation, completed=event.completed, key_retired=retired
            )
        case ev.EtcdMemberReplaced():
            component = state.clusters[event.cluster].components[event.component]
            component.founding = False  # it joins the running members, as a learner
            component.etcd_generation += 1
            component.replaced_member = event.member_id
        case ev.BackupTaken():
            cluster = state.clusters[event.cluster]
            cluster.backups.append(event.backup)
            cluster.backup_failure = None
        case ev.BackupFailed():
            cluster = state.clusters[event.cluster]
            attempts = cluster.backup_failure.attempts if cluster.backup_failure else 0
            cluster.backup_failure = BackupFailure(event.at, event.reason, attempts + 1)
        case ev.BackupsPruned():
            cluster = state.clusters[event.cluster]
            pruned = set(event.backup_ids)
            cluster.backups = [b for b in cluster.backups if b.backup_id not in pruned]
        case ev.EtcdRestoreStarted():
            cluster = state.clusters[event.cluster]
            cluster.etcd_restore = EtcdRestore(
                event.backup, event.source_cluster, event.source_cluster_id, event.source_key_id
            )
            cluster.etcd_token = event.token
            for component in cluster.control_planes():
                # Every member anew, on a data directory of its own, restored.
                component.etcd_generation += 1
                component.founding = True
                component.replaced_member = 0
        case ev.EtcdRestoreCompleted():
            state.clusters[event.cluster].etcd_restore = None
        case ev.BackupScheduleSet():
            state.clusters[event.cluster].backup_schedule = (
                BackupSchedule(event.every, event.keep) if event.every else None
            )
        case ev.ServiceAccountKeyRetired():
            cluster = state.clusters[event.cluster]
            assert cluster.rotation is not None, "the decider retires only a rotation's old key"
            cluster.rotation = msgspec.structs.replace(cluster.rotation, key_retired=event.retired)
        case ev.CertificateLifetimesChanged():
            cluster = state.clusters[event.cluster]
            cluster.leaf_lifetime, cluster.ca_lifetime = event.leaf_lifetime, event.ca_lifetime
        case ev.ClusterScaled():
            state.clusters[event.name].control_plane_replicas = event.control_plane_replicas
            state.clusters[event.name].scaled = True
        case ev.ClusterDeleted():
            cluster = state.clusters.pop(event.name)
            for component in cluster.components.values():
                del state.hypervisors[component.hypervisor].placements[
                    placement_key(event.name, component.name)
                ]
        case ev.KubeconfigIssued():
            pass  # history only: no desired state changes
        case ev.JoinTokenCreated():
            state.clusters[event.cluster].join_tokens[event.token_id] = JoinToken(
                token_id=event.token_id,
                created_at=position,
                expires_at=event.expires_at,
                description=event.description,
                groups=list(event.groups),
            )
        case ev.JoinTokenRevoked():
            del state.clusters[event.cluster].join_tokens[event.token_id]
        case ev.NodeRemoved():
            state.clusters[event.cluster].removed_nodes[event.node] = event.requested_at
        case ev.VpnEnabled():
            cluster = state.clusters[event.cluster]
            cluster.vpn_enabled, cluster.vpn_cidr = True, event.cidr
            cluster.vpn = Vpn(
                cidr=event.cidr,
                server_address=event.server_address,
                server_public_key=event.server_public_key,
                enabled_at=position,
            )
        case ev.VpnPeerAdded():
            vpn = state.clusters[event.cluster].vpn
            assert vpn is not None, "decided only for a cluster with its VPN enabled"
            vpn.peers[event.node] = VpnPeer(address=event.address, public_key=event.public_key)
        case ev.VpnPeerRemoved():
            vpn = state.clusters[event.cluster].vpn
            assert vpn is not None, "decided only for a cluster with its VPN enabled"
            del vpn.peers[event.node]
        case _:
            raise TypeError(f"the projection does not know {type(event).__name__}")


def fold(events: Iterable[ev.Event], state: FleetState | None = None) -> FleetState:
    """A fresh (or given) state with the events applied, as if they were
    stored one after another from the state's position on."""
    state = state if state is not None else FleetState()
    for event in events:
        state.position += 1
        apply(state, event, state.position)
    return state


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(FleetState)


def encode_snapshot(state: FleetState) -> bytes:
    return _snapshot_encoder.encode(state)


def decode_snapshot(data: bytes) -> FleetState:
    return _snapshot_decoder.decode(data)
