"""What was decided: the events of the fleet stream.

Every choice (placement, ports, keys, certificates, serial numbers) is in an
event, so replaying the log never depends on code or randomness. Events are
msgspec tagged structs; the tag is the stable type name stored in the log,
and `schema_version` says which shape the stored bytes have. An event read in
an older shape is upcast, step by step, to the current one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from ..errors import UnknownEvent, shown
from ..pki.certlist import ClusterPKI, KeyPair, Validity
from ..pki.sealing import SealedKey
from .kinds import ComponentRole, HypervisorRole, PhaseName

FLEET_STREAM = "fleet"


class HypervisorTLS(msgspec.Struct, frozen=True, gc=False):
    ca_certificate: str
    client_certificate: str
    client_key: SealedKey


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, gc=False):
    schema_version: ClassVar[int] = 1


class HypervisorRegistered(Event, frozen=True):
    name: str
    endpoint: str
    role: HypervisorRole
    ip_address: str
    port_range: tuple[int, int]
    labels: dict[str, str]
    tls: HypervisorTLS | None = None
    data_dir: str = "/var/lib/oneinfra"  # on the hypervisor: components' files and data


class HypervisorLabelsChanged(Event, frozen=True):
    name: str
    labels: dict[str, str]  # the whole new set


class HypervisorRemoved(Event, frozen=True):
    name: str


class ClusterCreated(Event, frozen=True):
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
    key_id: str  # the cluster's data key; destroyed when the cluster is deleted
    pki: ClusterPKI
    # Lifetimes in seconds (0: the defaults, as before they were settable),
    # and what the certificates in `pki` are good for (None: read them).
    leaf_lifetime: int = 0
    ca_lifetime: int = 0
    leaf_validity: Validity | None = None
    ca_validity: Validity | None = None


class ComponentPlaced(Event, frozen=True):
    cluster: str
    component: str  # "control-plane-0", "ingress"
    role: ComponentRole
    hypervisor: str
    ports: dict[str, int]
    etcd_server: KeyPair | None = None  # control-plane only: its etcd member
    etcd_peer: KeyPair | None = None
    validity: Validity | None = None  # the etcd member's (None: read them)


class ComponentRemoved(Event, frozen=True):
    cluster: str
    component: str


class ApiServerCertificateIssued(Event, frozen=True):
    """The API servers' serving certificate, reissued when their addresses change."""

    cluster: str
    sans: list[str]
    serving: KeyPair
    validity: Validity | None = None  # None: read it


class CertificatesRenewed(Event, frozen=True):
    """Leaves issued again, from the same CAs, with the same names: by
    certificate id (pki/certlist.py: "admin", "serving",
    "etcd_server/control-plane-0", ...)."""

    cluster: str
    certificates: dict[str, KeyPair]
    validity: Validity
    reason: str  # "due": 2/3 of its life gone; "asked": renew-certificates


class CARotationPrepared(Event, frozen=True):
    """The first phase of a CA rotation: new CAs (cluster, etcd, front
    proxy) and service-account key, every leaf issued again from them, and
    the old CAs trusted beside the new ones until the rotation completes.
    `cross_signed`: each new CA vouched for by its old one, sent after the
    leaves it signs so that whoever trusts only the old CA follows it."""

    cluster: str
    cas: dict[str, KeyPair]  # by CA id: ca, etcd_ca, front_proxy_ca
    cross_signed: dict[str, str]  # CA id -> PEM
    previous: dict[str, str]  # CA id -> the old CA's certificate (PEM)
    service_account_public: str
    service_account_key: SealedKey
    previous_service_account: str  # the old public key, still accepted
    certificates: dict[str, KeyPair]  # every leaf, by certificate id
    validity: Validity  # the leaves'
    ca_validity: Validity


class CARotationCompleted(Event, frozen=True):
    """The second phase: the old CAs are trusted no more; certificates they
    signed stop working. The old service-account key goes with them when
    pods' tokens had time to be signed again (`key_retired`), later
    (ServiceAccountKeyRetired) otherwise."""

    cluster: str
    completed: int  # Unix seconds
    key_retired: bool = False


class ServiceAccountKeyRetired(Event, frozen=True):
    """A rotation's old service-account key no longer accepted: every pod's
    token has been signed again with the new one by now."""

    cluster: str
    retired: int  # Unix seconds


class CertificateLifetimesChanged(Event, frozen=True):
    """Seconds: what leaves and CAs issued from now on are good for."""

    cluster: str
    leaf_lifetime: int
    ca_lifetime: int


class EtcdMemberReplaced(Event, frozen=True):
    """A control plane's etcd member to be removed (member_id) and added
    again as a learner, on a data directory of its own (the component's
    etcd generation): why is said."""

    cluster: str
    component: str
    member_id: int
    reason: str


class Backup(msgspec.Struct, frozen=True, gc=False):
    """An etcd snapshot of a cluster, checked and sealed with its data key:
    etcdutl's figures of it, the SHA-256 of its plain bytes, and its file."""

    backup_id: str
    taken_at: int  # Unix seconds
    member: str  # the control plane whose etcd it came from
    revision: int
    keys: int
    size: int  # bytes of the snapshot (the file holds them sealed)
    etcd_hash: int  # etcdutl's hash of the snapshot's content
    sha256: str
    location: str  # where the sealed file is, on the management host


class BackupTaken(Event, frozen=True):
    cluster: str
    backup: Backup


class BackupFailed(Event, frozen=True):
    """A backup that could not be taken, and why: tried again with backoff."""

    cluster: str
    at: int  # Unix seconds
    reason: str


class BackupsPruned(Event, frozen=True):
    """Backups forgotten (the schedule keeps only so many): their files go."""

    cluster: str
    backup_ids: list[str]


class EtcdRestoreStarted(Event, frozen=True):
    """The cluster's etcd to be rebuilt from a backup (its own, or another
    cluster's for a clone): every member on a new data directory restored
    from the snapshot, under a new cluster token, started anew together."""

    cluster: str
    backup: Backup
    source_cluster: str  # whose backup: its name, id and data key then
    source_cluster_id: str
    source_key_id: str
    token: str  # the etcd cluster's new --initial-cluster-token


class EtcdRestoreCompleted(Event, frozen=True):
    """Every member restored and running, the API ready again."""

    cluster: str
    backup_id: str


class BackupScheduleSet(Event, frozen=True):
    """Backups every `every` seconds, the newest `keep` kept; every 0: none."""

    cluster: str
    every: int
    keep: int


class ClusterScaled(Event, frozen=True):
    name: str
    control_plane_replicas: int


class ClusterDeleted(Event, frozen=True):
    name: str


class KubeconfigIssued(Event, frozen=True):
    """A kubeconfig given to a person. Its private key went to the caller only."""

    cluster: str
    user: str
    groups: list[str]
    serial: str  # hex
    not_before: str  # ISO 8601
    not_after: str


class JoinTokenCreated(Event, frozen=True):
    """A bootstrap token for workers: its id is public, its secret sealed with
    the cluster's data key (shown once, to whoever asked for it)."""

    cluster: str
    token_id: str  # [a-z0-9]{6}
    secret: SealedKey  # [a-z0-9]{16}
    expires_at: str  # RFC 3339
    description: str
    groups: list[str]  # the extra groups the token authenticates as


class JoinTokenRevoked(Event, frozen=True):
    cluster: str
    token_id: str


class NodeRemoved(Event, frozen=True):
    """Someone removed a node: a Node of that name registered before
    `requested_at` is deleted from the cluster."""

    cluster: str
    node: str
    requested_at: str  # RFC 3339


class VpnEnabled(Event, frozen=True):
    """The cluster's VPN for edge workers: the server's address in the VPN's
    network, and its key pair (the private half sealed with the data key)."""

    cluster: str
    cidr: str
    server_address: str
    server_public_key: str  # base64, as wg prints it
    server_private_key: SealedKey


class VpnPeerAdded(Event, frozen=True):
    """A node's place in its cluster's VPN: its address, and the public key
    its worker made (the private key never left the worker)."""

    cluster: str
    node: str
    address: str
    public_key: str


class VpnPeerRemoved(Event, frozen=True):
    """A node's peer gone (the node removed): its key connects no more, its address is free."""

    cluster: str
    node: str


# -- the status stream: what the reconciler saw change ----------------------------
# Transitions only (a cluster became ready, a component failed): a steady
# fleet records nothing. A stream of their own, so that they never conflict
# with the fleet's commands.

STATUS_STREAM = "status"


class ClusterStatusChanged(Event, frozen=True):
    cluster: str
    cluster_id: str
    phase: PhaseName  # pending | running | ready | degraded | failed | deleted
    reason: str


class ComponentStatusChanged(Event, frozen=True):
    cluster: str
    cluster_id: str
    component: str
    hypervisor: str
    phase: PhaseName  # pending | running | degraded | failed
    reason: str


class HypervisorStatusChanged(Event, frozen=True):
    name: str
    reachable: bool
    error: str


class NodeJoined(Event, frozen=True):
    """A Node registered in a cluster, first seen by the reconciler; which
    bootstrap token let it in ("" when its CSR was gone before it was seen)."""

    cluster: str
    cluster_id: str
    node: str
    address: str
    kubelet_version: str
    token_id: str
    at: str  # RFC 3339, when it was seen


class NodeLeft(Event, frozen=True):
    cluster: str
    cluster_id: str
    node: str
    at: str


class ServingCertificateApproved(Event, frozen=True):
    """A kubelet's serving CSR for its own names and addresses, approved by the daemon."""

    cluster: str
    cluster_id: str
    node: str
    csr: str
    names: list[str]


class NodeTrustRotated(Event, frozen=True):
    """A worker took a CA rotation's new CAs (`node rotate-trust`): its CA
    file holds them, and its client certificate is the new cluster CA's."""

    cluster: str
    cluster_id: str
    node: str
    csr: str
    ca: str  # the new cluster CA's public-key hash


class ServingCertificateRefused(Event, frozen=True):
    cluster: str
    cluster_id: str
    node: str  # who asked, as the request says
    csr: str
    reason: str


StatusEvent = (
    ClusterStatusChanged
    | ComponentStatusChanged
    | HypervisorStatusChanged
    | NodeJoined
    | NodeLeft
    | ServingCertificateApproved
    | ServingCertificateRefused
    | NodeTrustRotated
)

FleetEvent = (
    HypervisorRegistered
    | HypervisorLabelsChanged
    | HypervisorRemoved
    | ClusterCreated
    | ComponentPlaced
    | ComponentRemoved
    | ApiServerCertificateIssued
    | CertificatesRenewed
    | CertificateLifetimesChanged
    | CARotationPrepared
    | CARotationCompleted
    | ServiceAccountKeyRetired
    | EtcdMemberReplaced
    | BackupTaken
    | BackupFailed
    | BackupsPruned
    | BackupScheduleSet
    | EtcdRestoreStarted
    | EtcdRestoreCompleted
    | ClusterScaled
    | ClusterDeleted
    | KubeconfigIssued
    | JoinTokenCreated
    | JoinTokenRevoked
    | NodeRemoved
    | VpnEnabled
    | VpnPeerAdded
    | VpnPeerRemoved
)


def type_name(cls: type[Event]) -> str:
    """The stable name stored in the log: the struct's tag, not its Python name."""
    return str(cls.__struct_config__.tag)


EVENT_TYPES: dict[str, type[Event]] = {
    type_name(cls): cls for cls in (*typing.get_args(FleetEvent), *typing.get_args(StatusEvent))
}

# (type, stored schema version) -> a function from that shape to the next one.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Codec:
    """Encodes events for the store and decodes them, upcasting old shapes."""

    def __init__(
        self, types: dict[str, type[Event]], upcasters: dict[tuple[str, int], Upcaster]
    ) -> None:
        self.types = types
        self.upcasters = upcasters
        self._encoder = msgspec.json.Encoder()
        self._decoders = {name: msgspec.json.Decoder(cls) for name, cls in types.items()}

    def encode(self, event: Event) -> tuple[str, int, bytes]:
        """(type, schema version, data) as the event store keeps them."""
        cls = type(event)
        return type_name(cls), cls.schema_version, self._encoder.encode(event)

    def decode(self, event_type: str, schema_version: int, data: bytes) -> Event:
        cls = self.types.get(event_type)
        if cls is None:
            raise UnknownEvent(f"unknown event type {shown(event_type)}")
        if schema_version == cls.schema_version:
            return self._decoders[event_type].decode(data)
        if schema_version > cls.schema_version:
            raise UnknownEvent(
                f"{event_type} schema version {schema_version} is newer than this code "
                f"({cls.schema_version})"
            )
        raw = msgspec.json.decode(data)
        for version in range(schema_version, cls.schema_version):
            upcast = self.upcasters.get((event_type, version))
            if upcast is None:
                raise UnknownEvent(f"no upcaster for {event_type} from schema version {version}")
            raw = upcast(raw)
        return msgspec.convert(raw, cls)


# No event has changed shape yet; an upcaster goes here when one does.
CODEC = Codec(EVENT_TYPES, upcasters={})
encode = CODEC.encode
decode = CODEC.decode
