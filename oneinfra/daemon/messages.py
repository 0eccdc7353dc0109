"""Between the API's messages and the domain: requests to commands, state to views."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf.message import Message

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..model import commands as cmd
from ..model import events as ev
from ..model.decider.joins import expired
from ..model.kinds import READY, RUNNING
from ..model.state import Cluster, FleetState, Hypervisor, api_server_endpoint, vpn_endpoint
from ..reconcile.board import ClusterStatus
from ..reconcile.phases import UNOBSERVED
from .certificate_status import certificates_condition, rotation_view

T = TypeVar("T")


def given(message: Message, field: str, default: T) -> Any:
    """An optional field's value, or `default` when the caller left it out."""
    return getattr(message, field) if message.HasField(field) else default


def register_hypervisor(request: api.RegisterHypervisorRequest) -> cmd.RegisterHypervisor:
    low = given(request, "port_range_low", cmd.DEFAULT_PORT_RANGE[0])
    high = given(request, "port_range_high", cmd.DEFAULT_PORT_RANGE[1])
    tls_parts = (request.ca_certificate, request.client_certificate, request.client_key)
    tls = cmd.HypervisorCredentials(*tls_parts) if any(tls_parts) else None
    return cmd.RegisterHypervisor(
        name=request.name,
        endpoint=request.endpoint,
        role=request.role,
        ip_address=request.ip_address,
        port_range=(low, high),
        labels=dict(request.labels),
        tls=tls,
        **({"data_dir": request.data_dir} if request.data_dir else {}),
    )


def create_cluster(request: api.CreateClusterRequest) -> cmd.CreateCluster:
    defaults = cmd.CreateCluster(name=request.name)
    return cmd.CreateCluster(
        name=request.name,
        kubernetes_version=given(request, "kubernetes_version", None),
        control_plane_replicas=given(
            request, "control_plane_replicas", defaults.control_plane_replicas
        ),
        service_cidr=given(request, "service_cidr", defaults.service_cidr),
        pod_cidr=given(request, "pod_cidr", defaults.pod_cidr),
        dns_domain=given(request, "dns_domain", defaults.dns_domain),
        apiserver_extra_sans=list(request.apiserver_extra_sans),
        vpn_enabled=given(request, "vpn_enabled", defaults.vpn_enabled),
        vpn_cidr=given(request, "vpn_cidr", defaults.vpn_cidr),
        certificate_lifetime=given(request, "certificate_lifetime_seconds", 0),
        ca_lifetime=given(request, "ca_lifetime_seconds", 0),
        from_backup=request.from_backup,
    )


def issue_kubeconfig(request: api.IssueKubeconfigRequest) -> cmd.IssueKubeconfig:
    defaults = cmd.IssueKubeconfig(cluster=request.cluster)
    return cmd.IssueKubeconfig(
        cluster=request.cluster,
        user=given(request, "user", defaults.user),
        groups=list(request.groups) or defaults.groups,
        ttl_seconds=given(request, "ttl_seconds", defaults.ttl_seconds),
    )


def create_join_token(request: api.CreateJoinTokenRequest) -> cmd.CreateJoinToken:
    defaults = cmd.CreateJoinToken(cluster=request.cluster)
    return cmd.CreateJoinToken(
        cluster=request.cluster,
        ttl_seconds=given(request, "ttl_seconds", defaults.ttl_seconds),
        description=given(request, "description", defaults.description),
    )


def join_tokens_view(cluster: Cluster, now: dt.datetime) -> api.JoinTokenList:
    return api.JoinTokenList(
        tokens=[
            api.JoinTokenInfo(
                id=t.token_id,
                description=t.description,
                expires_at=t.expires_at,
                expired=expired(t.expires_at, now),
            )
            for t in sorted(cluster.join_tokens.values(), key=lambda t: t.expires_at)
        ]
    )


def nodes_view(
    cluster: Cluster,
    status: ClusterStatus | None,
    joins: Mapping[tuple[str, str], ev.NodeJoined],
) -> api.NodeList:
    if status is None or status.inside is None:
        return api.NodeList(observed=False)
    nodes = []
    for node in sorted(status.nodes, key=lambda n: n.name):
        joined = joins.get((cluster.cluster_id, node.name))
        nodes.append(api.NodeInfo(
            name=node.name, ready=node.ready, version=node.version, address=node.address,
            joined_at=joined.at if joined else "", token_id=joined.token_id if joined else "",
            **peer_view(cluster, status, node.name),
        ))  # fmt: skip
    return api.NodeList(nodes=nodes, observed=True)


def peer_view(cluster: Cluster, status: ClusterStatus, node: str) -> dict[str, Any]:
    peer = cluster.vpn.peers.get(node) if cluster.vpn else None
    if peer is None:
        return {}
    served = (status.vpn_peers or {}).get(peer.public_key)
    if served is None:
        return {"vpn_address": peer.address}
    return {
        "vpn_address": peer.address,
        "vpn_last_handshake": timestamp(served.latest_handshake),
        "vpn_received_bytes": served.received,
        "vpn_sent_bytes": served.sent,
        "vpn_endpoint": "" if served.endpoint == "(none)" else served.endpoint,
    }


STALE_HANDSHAKE = 300  # seconds: WireGuard shakes hands every 2 min while a peer is up
SILENT = 90  # seconds: a joined worker's keepalive reaches the server every 25 s


def stale_peers(cluster: Cluster, status: ClusterStatus, now: float) -> list[str]:
    """The nodes whose tunnel is down, each with why, as far as the server says."""
    if cluster.vpn is None or status.vpn_peers is None:
        return []
    stale = []
    for node, peer in sorted(cluster.vpn.peers.items()):
        served = status.vpn_peers.get(peer.public_key)
        _, quiet_since = status.vpn_heard.get(peer.public_key, (0, now))
        if served is None:
            stale.append(f"{node}: not on the server yet")
        elif not served.latest_handshake:
            stale.append(f"{node}: never connected (does it reach the VPN's endpoint?)")
        elif now - quiet_since > SILENT:
            ago = int(now - quiet_since)
            stale.append(f"{node}: nothing heard for {ago} s (its worker is down, or cut off)")
        elif now - served.latest_handshake > STALE_HANDSHAKE:
            ago = int(now - served.latest_handshake)
            stale.append(f"{node}: no handshake for {ago} s (its worker is down, or cut off)")
    return stale


def hypervisor_view(hypervisor: Hypervisor) -> api.Hypervisor:
    low, high = hypervisor.port_range
    return api.Hypervisor(
        name=hypervisor.name,
        endpoint=hypervisor.endpoint,
        role=hypervisor.role,
        ip_address=hypervisor.ip_address,
        port_range_low=low,
        port_range_high=high,
        labels=dict(hypervisor.labels),
        mutual_tls=hypervisor.tls is not None,
        components=sorted(hypervisor.placements),
        data_dir=hypervisor.data_dir,
    )


def cluster_view(
    cluster: Cluster, state: FleetState, status: ClusterStatus | None = None
) -> api.Cluster:
    """The desired cluster, and (from the reconciler) how far it is."""
    components = sorted(cluster.components.values(), key=lambda c: (c.role, c.name))
    phases = status.components if status else {}
    return api.Cluster(
        name=cluster.name,
        cluster_id=cluster.cluster_id,
        kubernetes_version=cluster.kubernetes_version,
        control_plane_replicas=cluster.control_plane_replicas,
        service_cidr=cluster.service_cidr,
        pod_cidr=cluster.pod_cidr,
        dns_domain=cluster.dns_domain,
        apiserver_extra_sans=list(cluster.apiserver_extra_sans),
        vpn_enabled=cluster.vpn_enabled,
        vpn_cidr=cluster.vpn_cidr,
        api_server_endpoint=api_server_endpoint(cluster, state.hypervisors) or "",
        components=[
            api.Component(
                name=c.name,
                role=c.role,
                hypervisor=c.hypervisor,
                ports=dict(c.ports),
                phase=phases.get(c.name, UNOBSERVED).phase,
                reason=phases.get(c.name, UNOBSERVED).reason,
            )
            for c in components
        ],
        status=status_view(cluster, status),
        certificate_lifetime_seconds=cluster.leaf_lifetime,
        ca_lifetime_seconds=cluster.ca_lifetime,
        ca_rotation=rotation_view(cluster),
        **backup_schedule_view(cluster),
        **vpn_view(cluster, state),
    )


def backup_schedule_view(cluster: Cluster) -> dict[str, Any]:
    schedule, failure = cluster.backup_schedule, cluster.backup_failure
    return {
        "backup_every_seconds": schedule.every if schedule else 0,
        "backup_keep": schedule.keep if schedule else 0,
        "last_backup_at": timestamp(cluster.backups[-1].taken_at) if cluster.backups else "",
        "backup_failure": failure.reason if failure else "",
        "restoring_backup": restore.backup.backup_id if (restore := cluster.etcd_restore) else "",
    }


def backup_view(backup: ev.Backup) -> api.Backup:
    return api.Backup(
        id=backup.backup_id,
        taken_at=timestamp(backup.taken_at),
        member=backup.member,
        revision=backup.revision,
        keys=backup.keys,
        size=backup.size,
        etcd_hash=backup.etcd_hash,
        sha256=backup.sha256,
        location=backup.location,
    )


def backups_view(cluster: Cluster) -> api.BackupList:
    schedule, failure = cluster.backup_schedule, cluster.backup_failure
    return api.BackupList(
        backups=[backup_view(b) for b in cluster.backups],
        every_seconds=schedule.every if schedule else 0,
        keep=schedule.keep if schedule else 0,
        failure=failure.reason if failure else "",
        failed_at=timestamp(failure.at) if failure else "",
        failures=failure.attempts if failure else 0,
    )


def vpn_view(cluster: Cluster, state: FleetState) -> dict[str, Any]:
    vpn = cluster.vpn
    if vpn is None:
        return {}
    endpoint = vpn_endpoint(cluster, state.hypervisors) or ""
    return {
        "vpn_server_address": vpn.server_address,
        "vpn_server_public_key": vpn.server_public_key,
        "vpn_endpoint": endpoint,
        "vpn_peers": len(vpn.peers),
    }


def timestamp(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds") if unix else ""


def status_view(cluster: Cluster, status: ClusterStatus | None) -> api.ClusterStatus:
    if status is None:
        return api.ClusterStatus(ready=False, phase=UNOBSERVED.phase, reason=UNOBSERVED.reason)
    # Ready as of the latest probe, with every component of the desired
    # state (a replica just added included) seen running.
    ready = status.phase.phase == READY and all(
        status.components.get(name, UNOBSERVED).phase == RUNNING for name in cluster.components
    )
    conditions = [
        api.Condition(
            type="Ready",
            status=str(ready),
            reason=status.phase.phase,
            message=status.phase.reason,
            last_transition=timestamp(status.since),
        ),
        api.Condition(
            type="ApiServerAnswers",
            status=str(status.probe is not None and status.probe.phase == READY),
            reason="readyz through the ingress",
            message=status.probe.reason if status.probe else "not probed yet",
        ),
    ]
    for name in sorted(cluster.components):
        phase = status.components.get(name, UNOBSERVED)
        conditions.append(
            api.Condition(
                type=f"Component/{name}",
                status=str(phase.phase == RUNNING),
                reason=phase.phase,
                message=phase.reason,
            )
        )
    if status.inside is not None:
        conditions.append(
            api.Condition(
                type="WorkersCanJoin",
                status=str(status.inside.phase == READY),
                reason="bootstrap objects applied" if status.inside.phase == READY else "failed",
                message=status.inside.reason,
            )
        )
    if cluster.vpn is not None and status.vpn_peers is not None:
        stale = stale_peers(cluster, status, time.time())
        conditions.append(
            api.Condition(
                type="VpnPeersConnected",
                status=str(not stale),
                reason=f"{len(cluster.vpn.peers) - len(stale)} of {len(cluster.vpn.peers)} peers",
                message="; ".join(stale[:10]),
            )
        )
    if status.etcd:
        conditions.append(
            api.Condition(
                type="EtcdMembers", status="False", reason="changing", message=status.etcd
            )
        )
    if cluster.certificates:
        conditions.append(certificates_condition(cluster, time.time()))
    return api.ClusterStatus(
        ready=ready, conditions=conditions, phase=status.phase.phase, reason=status.phase.reason
    )


def fleet_view(state: FleetState, recorded_at: str) -> api.FleetView:
    return api.FleetView(
        position=state.position,
        recorded_at=recorded_at,
        hypervisors=[hypervisor_view(h) for _, h in sorted(state.hypervisors.items())],
        clusters=[cluster_view(c, state) for _, c in sorted(state.clusters.items())],
    )
