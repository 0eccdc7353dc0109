"""What people ask for. The decider turns each into events, or refuses it."""

from __future__ import annotations

import msgspec

from .events import Backup

DEFAULT_PORT_RANGE = (30000, 32767)
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_VPN_CIDR = "10.220.0.0/16"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_KUBECONFIG_TTL = 24 * 3600
DEFAULT_JOIN_TOKEN_TTL = 24 * 3600


class Command(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class HypervisorCredentials(msgspec.Struct, frozen=True):
    """Mutual TLS to a tcp:// CRI endpoint; the key arrives in PEM, in clear."""

    ca_certificate: str
    client_certificate: str
    client_key: str


class RegisterHypervisor(Command, frozen=True):
    name: str
    endpoint: str
    role: str
    ip_address: str
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    labels: dict[str, str] = {}
    tls: HypervisorCredentials | None = None
    data_dir: str = "/var/lib/oneinfra"  # where its components' files and data live


class LabelHypervisor(Command, frozen=True):
    name: str
    set: dict[str, str] = {}
    remove: list[str] = []


class RemoveHypervisor(Command, frozen=True):
    name: str


class CreateCluster(Command, frozen=True):
    name: str
    kubernetes_version: str | None = None
    control_plane_replicas: int = 1
    service_cidr: str = DEFAULT_SERVICE_CIDR
    pod_cidr: str = DEFAULT_POD_CIDR
    dns_domain: str = DEFAULT_DNS_DOMAIN
    apiserver_extra_sans: list[str] = []
    vpn_enabled: bool = False
    vpn_cidr: str = DEFAULT_VPN_CIDR
    certificate_lifetime: int = 0  # seconds; 0: a year
    ca_lifetime: int = 0  # seconds; 0: ten years
    # "CLUSTER/BACKUP": a clone, its etcd restored from another cluster's backup.
    from_backup: str = ""


class RenewCertificates(Command, frozen=True):
    """Issue leaves again from the same CAs. `certificates`: kubeadm's names
    (apiserver, admin.conf, etcd/server, ...) or ids; `components`: the etcd
    members of these replicas; neither: every leaf. `due_only`: those past
    2/3 of their life, as the daemon decides (none due: nothing happens)."""

    cluster: str
    certificates: list[str] = []
    components: list[str] = []
    due_only: bool = False


class SetCertificateLifetimes(Command, frozen=True):
    """What the cluster's certificates are good for from now on (seconds;
    0: unchanged). Leaves get it at their next renewal; CAs at their next
    rotation."""

    cluster: str
    certificate_lifetime: int = 0
    ca_lifetime: int = 0


class RotateCA(Command, frozen=True):
    """A phase of the cluster's two-phase CA rotation: "prepare" (new CAs
    trusted beside the old, every leaf from the new) or "complete" (the old
    ones dropped)."""

    cluster: str
    phase: str


class RetireServiceAccountKey(Command, frozen=True):
    """The daemon's, when due: a completed rotation's old service-account
    key no longer accepted (nothing happens before that)."""

    cluster: str


class ReplaceEtcdMember(Command, frozen=True):
    """The daemon's, when a control plane's etcd member lost its data (it
    crash-loops while the others keep quorum): the member removed from etcd
    and added again as a learner, on an empty data directory."""

    cluster: str
    component: str
    member_id: int  # the member etcd knows it by, to remove
    reason: str


class RecordBackup(Command, frozen=True):
    """The daemon's, once a backup's sealed file is written: it is the
    cluster's (the same cluster, not one made again under its name)."""

    cluster: str
    cluster_id: str
    backup: Backup


class RecordBackupFailure(Command, frozen=True):
    cluster: str
    cluster_id: str
    reason: str


class PruneBackups(Command, frozen=True):
    cluster: str
    backup_ids: list[str]


class ScheduleBackups(Command, frozen=True):
    """Backups every `every` seconds (0: none scheduled), the newest `keep`
    kept."""

    cluster: str
    every: int
    keep: int


class RestoreCluster(Command, frozen=True):
    """The cluster's etcd rebuilt from one of its backups; its PKI stays."""

    cluster: str
    backup_id: str


class CompleteEtcdRestore(Command, frozen=True):
    """The daemon's, once a restored cluster runs and answers again."""

    cluster: str
    backup_id: str


class ScaleCluster(Command, frozen=True):
    name: str
    control_plane_replicas: int


class DeleteCluster(Command, frozen=True):
    name: str


class IssueKubeconfig(Command, frozen=True):
    cluster: str
    user: str = "admin"
    groups: list[str] = msgspec.field(default_factory=lambda: ["system:masters"])
    ttl_seconds: int = DEFAULT_KUBECONFIG_TTL


class CreateJoinToken(Command, frozen=True):
    """A bootstrap token that lets workers join the cluster (kubeadm's)."""

    cluster: str
    ttl_seconds: int = DEFAULT_JOIN_TOKEN_TTL
    description: str = ""


class RevokeJoinToken(Command, frozen=True):
    cluster: str
    token_id: str


class RemoveNode(Command, frozen=True):
    """A worker node out of the cluster: its Node deleted (its kubelet
    stopped first, on the worker: `oneinfra node reset`)."""

    cluster: str
    node: str


class EnableVpn(Command, frozen=True):
    """The VPN on a running cluster (`cluster create --vpn` enables it at once)."""

    cluster: str
    vpn_cidr: str | None = None  # the one given at create, when None


class AddVpnPeer(Command, frozen=True):
    """A worker joining over the VPN hands in its public key for a node name.
    With `certify_key` (a PEM public key, its request's), the decision's reply
    is the peer's certificate: its node and address, signed by the cluster CA."""

    cluster: str
    node: str
    public_key: str
    certify_key: str = ""


FleetCommand = (
    RegisterHypervisor
    | LabelHypervisor
    | RemoveHypervisor
    | CreateCluster
    | ScaleCluster
    | DeleteCluster
    | IssueKubeconfig
    | CreateJoinToken
    | RevokeJoinToken
    | RemoveNode
    | EnableVpn
    | AddVpnPeer
)
