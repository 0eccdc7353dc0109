"""The desired state of the fleet: what the events say should exist.

Only the projection changes it; the decider reads it. Certificates and keys
are not held here but referred to: by the log position of the event that
carries them. Those events never change, so a position names its content for
good, and the state (and its snapshots) stay small.
"""

from __future__ import annotations

import msgspec

from ..pki.certlist import DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, Validity
from .events import Backup, HypervisorTLS
from .kinds import CONTROL_PLANE, INGRESS, VPN, ComponentRole, HypervisorRole

# A replica's ports for konnectivity's server (render/konnectivity.py): where
# its cluster's agents connect (through the ingress), its admin and health.
KONNECTIVITY_PORTS = ("konnectivity", "konnectivity-admin", "konnectivity-health")
# Host ports each role needs, by name.
PORT_NAMES = {
    CONTROL_PLANE: ("apiserver", "etcd-client", "etcd-peer", *KONNECTIVITY_PORTS),
    INGRESS: ("apiserver", "konnectivity"),
    VPN: ("vpn",),  # UDP: WireGuard's
}


class Component(msgspec.Struct, gc=False):
    name: str
    role: ComponentRole
    hypervisor: str
    ports: dict[str, int]
    placed_at: int = 0  # its ComponentPlaced event: its etcd member's certificates
    # Placed with its cluster: its etcd member starts with the others ('new');
    # one placed by scaling joins the running etcd as a learner first.
    founding: bool = False
    # Replaced etcd members (EtcdMemberReplaced): each starts on a data
    # directory of its own; the member etcd knew before, to remove.
    etcd_generation: int = 0
    replaced_member: int = 0


class Certificate(msgspec.Struct, frozen=True, gc=False):
    at: int  # the event that carries it now (ClusterCreated, ComponentPlaced, ...)
    validity: Validity


class CARotation(msgspec.Struct, frozen=True, gc=False):
    """The cluster's latest CA rotation."""

    prepared_at: int  # its CARotationPrepared event: the old CAs, the links to them
    prepared: int  # when, in Unix seconds
    completed: int = 0  # when the old CAs were dropped; 0: they are trusted still
    # When the old service-account key stopped being accepted (0: it is
    # still): pods' tokens it signed live on for a while after complete.
    key_retired: int = 0

    @property
    def in_progress(self) -> bool:
        return not self.completed


class JoinToken(msgspec.Struct, gc=False):
    token_id: str
    created_at: int  # its JoinTokenCreated event: the sealed secret
    expires_at: str  # RFC 3339
    description: str
    groups: list[str]


class VpnPeer(msgspec.Struct, gc=False):
    address: str
    public_key: str


class Vpn(msgspec.Struct, gc=False):
    cidr: str
    server_address: str
    server_public_key: str
    enabled_at: int  # its VpnEnabled event: the sealed private key
    peers: dict[str, VpnPeer] = msgspec.field(default_factory=dict)  # by node


class BackupSchedule(msgspec.Struct, frozen=True, gc=False):
    every: int  # seconds between backups
    keep: int  # the newest kept, the older pruned


class BackupFailure(msgspec.Struct, frozen=True, gc=False):
    """Failed backups since the last good one: the latest's time and reason."""

    at: int
    reason: str
    attempts: int


class EtcdRestore(msgspec.Struct, frozen=True, gc=False):
    """A restore under way: the backup every member is rebuilt from (whose,
    and the data key it is sealed with)."""

    backup: Backup
    source_cluster: str
    source_cluster_id: str
    source_key_id: str


class Cluster(msgspec.Struct, gc=False):
    cluster_id: str
    name: str
    kubernetes_version: str
    control_plane_replicas: int
    service_cidr: str
    pod_cidr: str
    dns_domain: str
    apiserver_extra_sans: list[str]
    vpn_enabled: bool
    vpn_cidr: str
    key_id: str
    created_at: int = 0  # its ClusterCreated event: the cluster's CAs and clients
    components: dict[str, Component] = msgspec.field(default_factory=dict)
    apiserver_sans: list[str] = msgspec.field(default_factory=list)
    apiserver_at: int = 0  # its latest ApiServerCertificateIssued event
    scaled: bool = False  # scaled at least once: new members are not founding ones
    join_tokens: dict[str, JoinToken] = msgspec.field(default_factory=dict)  # live or expired
    removed_nodes: dict[str, str] = msgspec.field(default_factory=dict)  # node -> removed at
    vpn: Vpn | None = None  # enabled: its server and peers
    leaf_lifetime: int = DEFAULT_LEAF_LIFETIME  # seconds, for what is issued from now on
    ca_lifetime: int = DEFAULT_CA_LIFETIME
    # Every certificate of the cluster, by id (pki/certlist.py), with where
    # it is and what it is good for: what renewal decides on.
    certificates: dict[str, Certificate] = msgspec.field(default_factory=dict)
    certificates_at: int = 0  # the latest event that changed any of them
    # The event holding its service-account key: 0, its ClusterCreated's.
    service_account_at: int = 0
    rotation: CARotation | None = None
    backups: list[Backup] = msgspec.field(default_factory=list)  # oldest first
    backup_schedule: BackupSchedule | None = None
    backup_failure: BackupFailure | None = None  # since the last good backup
    etcd_restore: EtcdRestore | None = None  # under way
    etcd_token: str = ""  # etcd's --initial-cluster-token; empty: the cluster's id

    def control_planes(self) -> list[Component]:
        return sorted(
            (c for c in self.components.values() if c.role == CONTROL_PLANE),
            key=lambda c: component_index(c.name),
        )

    def ingress(self) -> Component | None:
        return self.components.get(INGRESS)

    def vpn_server(self) -> Component | None:
        return self.components.get(VPN)


class Hypervisor(msgspec.Struct, gc=False):
    name: str
    endpoint: str
    role: HypervisorRole
    ip_address: str
    port_range: tuple[int, int]
    labels: dict[str, str]
    tls: HypervisorTLS | None = None
    data_dir: str = "/var/lib/oneinfra"
    # "cluster/component" -> its host ports here: what placement needs to know.
    placements: dict[str, list[int]] = msgspec.field(default_factory=dict)

    def used_ports(self) -> set[int]:
        return {port for ports in self.placements.values() for port in ports}


class FleetState(msgspec.Struct, gc=False):
    version: int | None = None  # the fleet stream's version folded so far
    position: int = 0  # the global log position folded so far
    hypervisors: dict[str, Hypervisor] = msgspec.field(default_factory=dict)
    clusters: dict[str, Cluster] = msgspec.field(default_factory=dict)


def component_index(name: str) -> int:
    """control-plane-3 -> 3."""
    return int(name.rsplit("-", 1)[1])


def etcd_member_name(cluster: str, component: str) -> str:
    """The member's --name, and the CN and a SAN of its certificates: one rule."""
    return f"{cluster}-{component}"


def placement_key(cluster: str, component: str) -> str:
    return f"{cluster}/{component}"


def host_port(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def api_server_endpoint(cluster: Cluster, hypervisors: dict[str, Hypervisor]) -> str | None:
    ingress = cluster.ingress()
    if ingress is None:
        return None
    host = hypervisors[ingress.hypervisor].ip_address
    return "https://" + host_port(host, ingress.ports["apiserver"])


def vpn_endpoint(cluster: Cluster, hypervisors: dict[str, Hypervisor]) -> str | None:
    """Where workers send the VPN's packets: host:port (UDP) of its server."""
    server = cluster.vpn_server()
    if server is None:
        return None
    return host_port(hypervisors[server.hypervisor].ip_address, server.ports["vpn"])
