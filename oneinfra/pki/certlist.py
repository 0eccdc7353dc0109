"""The certificates of a cluster, as a table (kubeadm's certlist): which CA
signs each, for whom (subject), for what (usages), and how many there are
(one per cluster, one per etcd member, the API servers' serving one).

The issuer makes them from this table; renewal and CA rotation read it to
know what a CA's rotation touches. File names are kubeadm's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from .sealing import SealedKey
from .x509 import CLIENT, SERVER, SERVER_AND_CLIENT, Usages

MASTERS = "system:masters"
DAY = 86_400
DEFAULT_LEAF_LIFETIME = 365 * DAY  # seconds, as kubeadm's
DEFAULT_CA_LIFETIME = 3650 * DAY
MIN_LEAF_LIFETIME = 60  # short enough for a test to see several renewals
MAX_LIFETIME = 100 * 365 * DAY
RENEWAL_FRACTION = (2, 3)  # a leaf is renewed once it has lived 2/3 of its life


class Validity(msgspec.Struct, frozen=True, gc=False):
    """When a certificate was issued (the decision's time) and when it
    expires (its notAfter), in Unix seconds."""

    issued: int
    expires: int

    @property
    def renew_at(self) -> int:
        done, whole = RENEWAL_FRACTION
        return self.issued + (self.expires - self.issued) * done // whole


class KeyPair(msgspec.Struct, frozen=True, gc=False):
    certificate: str  # PEM
    key: SealedKey


class ClusterPKI(msgspec.Struct, frozen=True, gc=False):
    """The cluster-wide certificates, named as kubeadm lays them out."""

    ca: KeyPair  # ca.crt / ca.key
    etcd_ca: KeyPair  # etcd/ca.crt
    front_proxy_ca: KeyPair  # front-proxy-ca.crt
    service_account_public: str  # sa.pub
    service_account_key: SealedKey  # sa.key
    apiserver_kubelet_client: KeyPair
    apiserver_etcd_client: KeyPair
    front_proxy_client: KeyPair
    controller_manager: KeyPair  # controller-manager.conf's client
    scheduler: KeyPair  # scheduler.conf's client
    admin: KeyPair  # oneinfra's own admin.conf, for health checks


class Scope(StrEnum):
    CLUSTER = "cluster"  # one per cluster, in its ClusterCreated event
    MEMBER = "member"  # one per etcd member, in its ComponentPlaced event
    SERVING = "serving"  # the API servers', reissued when their addresses change


@dataclass(frozen=True)
class CA:
    field: str  # its name in ClusterPKI
    file: str  # kubeadm's file, under pki/
    common_name: str


@dataclass(frozen=True)
class Leaf:
    field: str  # its name in ClusterPKI (cluster scope) or its event
    file: str
    ca: str  # the field of the CA that signs it
    usages: Usages
    scope: Scope = Scope.CLUSTER
    common_name: str = ""  # empty: the etcd member's name
    organizations: tuple[str, ...] = ()


CAS = (
    CA("ca", "ca", "kubernetes"),
    CA("etcd_ca", "etcd/ca", "etcd-ca"),
    CA("front_proxy_ca", "front-proxy-ca", "front-proxy-ca"),
)

# In the order they are issued: a cluster's certificates come from one
# entropy stream, so the order is part of what a seed produces.
LEAVES = (
    Leaf("apiserver_kubelet_client", "apiserver-kubelet-client", "ca", CLIENT,
         common_name="kube-apiserver-kubelet-client", organizations=(MASTERS,)),
    Leaf("apiserver_etcd_client", "apiserver-etcd-client", "etcd_ca", CLIENT,
         common_name="kube-apiserver-etcd-client"),
    Leaf("front_proxy_client", "front-proxy-client", "front_proxy_ca", CLIENT,
         common_name="front-proxy-client"),
    Leaf("controller_manager", "controller-manager.conf", "ca", CLIENT,
         common_name="system:kube-controller-manager"),
    Leaf("scheduler", "scheduler.conf", "ca", CLIENT, common_name="system:kube-scheduler"),
    Leaf("admin", "admin.conf", "ca", CLIENT, common_name="oneinfra-admin",
         organizations=(MASTERS,)),
    Leaf("etcd_server", "etcd/server", "etcd_ca", SERVER_AND_CLIENT, Scope.MEMBER),
    Leaf("etcd_peer", "etcd/peer", "etcd_ca", SERVER_AND_CLIENT, Scope.MEMBER),
    Leaf("serving", "apiserver", "ca", SERVER, Scope.SERVING, common_name="kube-apiserver"),
)  # fmt: skip


def leaves(scope: Scope) -> tuple[Leaf, ...]:
    return tuple(leaf for leaf in LEAVES if leaf.scope == scope)


def leaf(field: str) -> Leaf:
    (found,) = (leaf for leaf in LEAVES if leaf.field == field)
    return found


# -- certificate ids: how the state and CertificatesRenewed name each one ------

SERVING_ID = "serving"
CA_IDS = tuple(ca.field for ca in CAS)
CLUSTER_LEAF_IDS = tuple(spec.field for spec in leaves(Scope.CLUSTER))


def member_ids(component: str) -> tuple[str, str]:
    """An etcd member's server and peer certificates."""
    return f"etcd_server/{component}", f"etcd_peer/{component}"


def member_of(certificate_id: str) -> str | None:
    """The control-plane component an etcd member's certificate belongs to."""
    kind, _, component = certificate_id.partition("/")
    return component if kind in ("etcd_server", "etcd_peer") and component else None


def file_of(certificate_id: str) -> str:
    """kubeadm's name for it (apiserver, etcd/server, scheduler.conf, ...)."""
    base = certificate_id.partition("/")[0]
    found = next((c.file for c in CAS if c.field == base), None)
    return found or leaf(base).file
