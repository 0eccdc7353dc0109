"""The decider: (state, command, context) -> events, or a DomainError.

Pure: no I/O, no clock, no randomness but the context's. Every choice it
makes (placement, ports, ids, keys, certificates) goes into the events, so
replay never runs this code again. It never changes the state it reads.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from . import commands as cmd
from . import events as ev
from . import pki, validation
from .errors import DomainError
from .placement import place
from .secrets import KEY_BYTES, NONCE_BYTES, seal, unseal
from .state import (
    CONTROL_PLANE,
    INGRESS,
    PRIVATE,
    PUBLIC,
    FleetState,
    api_server_endpoint,
    component_index,
    etcd_member_name,
)
from .versions import DEFAULT_VERSION, release

MAX_REPLICAS = 7
MIN_KUBECONFIG_TTL = 60
MAX_KUBECONFIG_TTL = 366 * 24 * 3600


class DataKeys(Protocol):
    def get(self, key_id: str) -> bytes: ...


@dataclass(frozen=True)
class Context:
    now: dt.datetime
    entropy: pki.Entropy
    data_keys: DataKeys  # existing data keys, to sign with a cluster's CAs
    # The PKI of the clusters the command signs for (see pki_needed): the state
    # only refers to it, by the position of its ClusterCreated event.
    pki: Mapping[str, ev.ClusterPKI] = field(default_factory=dict)


@dataclass
class Decision:
    events: list[ev.Event]
    new_keys: dict[str, bytes] = field(default_factory=dict)  # store before appending
    destroyed_keys: list[str] = field(default_factory=list)  # destroy after appending
    reply: str | None = None  # a kubeconfig: for the caller only, never stored


def pki_needed(state: FleetState, command: cmd.Command) -> dict[str, int]:
    """The clusters whose CAs the command signs with: name -> the log position
    of the ClusterCreated event that holds them."""
    name = None
    if isinstance(command, cmd.ScaleCluster):
        name = command.name
    elif isinstance(command, cmd.IssueKubeconfig):
        name = command.cluster
    cluster = state.clusters.get(name) if name is not None else None
    return {cluster.name: cluster.created_at} if cluster is not None else {}


def decide(state: FleetState, command: cmd.Command, context: Context) -> Decision:
    handler = HANDLERS.get(type(command))
    if handler is None:
        raise DomainError(f"unknown command {type(command).__name__}")
    return handler(state, command, context)


# -- hypervisors --------------------------------------------------------------------


def register_hypervisor(
    state: FleetState, command: cmd.RegisterHypervisor, context: Context
) -> Decision:
    name = validation.name("hypervisor", command.name)
    if name in state.hypervisors:
        raise DomainError(f"hypervisor {name!r} is already registered")
    if command.role not in (PUBLIC, PRIVATE):
        raise DomainError(
            f"hypervisor role must be {PUBLIC!r} or {PRIVATE!r}, not {command.role!r}"
        )
    address = str(validation.ip_address(command.ip_address, "hypervisor IP address"))
    endpoint = validation.endpoint(command.endpoint, has_tls=command.tls is not None)
    for other in state.hypervisors.values():
        if other.endpoint == endpoint:
            raise DomainError(f"endpoint {endpoint} is already registered by {other.name!r}")
    port_range = validation.port_range(*command.port_range)
    labels = validation.labels(dict(command.labels))
    decision = Decision(events=[])
    tls = None
    if command.tls is not None:
        key_id = f"hypervisor-{name}-{new_id(context)}"
        data_key = context.entropy(KEY_BYTES)
        tls = ev.HypervisorTLS(
            ca_certificate=checked_certificate(command.tls.ca_certificate, "CA certificate"),
            client_certificate=checked_certificate(
                command.tls.client_certificate, "client certificate"
            ),
            client_key=seal(
                key_id,
                data_key,
                checked_private_key(command.tls.client_key),
                context.entropy(NONCE_BYTES),
            ),
        )
        decision.new_keys[key_id] = data_key
    decision.events.append(
        ev.HypervisorRegistered(
            name=name,
            endpoint=endpoint,
            role=command.role,
            ip_address=address,
            port_range=port_range,
            labels=labels,
            tls=tls,
            data_dir=validation.absolute_path(command.data_dir, "hypervisor data directory"),
        )
    )
    return decision


def label_hypervisor(state: FleetState, command: cmd.LabelHypervisor, context: Context) -> Decision:
    hypervisor = state.hypervisors.get(command.name)
    if hypervisor is None:
        raise unknown("hypervisor", command.name, state.hypervisors)
    labels = {k: v for k, v in hypervisor.labels.items() if k not in command.remove}
    labels.update(validation.labels(dict(command.set)))
    if labels == hypervisor.labels:
        return Decision(events=[])
    return Decision(events=[ev.HypervisorLabelsChanged(name=command.name, labels=labels)])


def remove_hypervisor(
    state: FleetState, command: cmd.RemoveHypervisor, context: Context
) -> Decision:
    hypervisor = state.hypervisors.get(command.name)
    if hypervisor is None:
        raise unknown("hypervisor", command.name, state.hypervisors)
    if hypervisor.placements:
        held = ", ".join(sorted(hypervisor.placements)[:5])
        more = len(hypervisor.placements) - 5
        raise DomainError(
            f"hypervisor {command.name!r} still holds components: {held}"
            + (f" and {more} more" if more > 0 else "")
            + "; delete or scale those clusters first"
        )
    destroyed = [hypervisor.tls.client_key.key_id] if hypervisor.tls else []
    return Decision(events=[ev.HypervisorRemoved(name=command.name)], destroyed_keys=destroyed)


# -- clusters -----------------------------------------------------------------------


def create_cluster(state: FleetState, command: cmd.CreateCluster, context: Context) -> Decision:
    name = validation.name("cluster", command.name)
    if name in state.clusters:
        raise DomainError(f"cluster {name!r} already exists")
    version = release(command.kubernetes_version or DEFAULT_VERSION).version
    replicas = checked_replicas(command.control_plane_replicas)
    networks = {
        "service CIDR": validation.network(command.service_cidr, "service CIDR"),
        "pod CIDR": validation.network(command.pod_cidr, "pod CIDR"),
    }
    if command.vpn_enabled:
        networks["VPN CIDR"] = validation.network(command.vpn_cidr, "VPN CIDR")
    validation.disjoint(networks)
    if networks["service CIDR"].num_addresses < 4:
        raise DomainError(f"service CIDR {command.service_cidr} is too small for any service")
    if not validation.DNS1123_SUBDOMAIN.match(command.dns_domain):
        raise DomainError(f"DNS domain {command.dns_domain!r} is not a DNS name")
    extra_sans = [validation.subject_alternative_name(s) for s in command.apiserver_extra_sans]

    purpose = f"cluster {name!r}"
    ((ingress_host, ingress_ports),) = place(
        state.hypervisors.values(), PUBLIC, INGRESS, 1, set(), f"{purpose}'s ingress"
    )
    control_planes = place(
        state.hypervisors.values(),
        PRIVATE,
        CONTROL_PLANE,
        replicas,
        set(),
        f"{purpose} with {replicas} control-plane replica(s)",
    )

    cluster_id = new_id(context)
    key_id = f"cluster-{name}-{cluster_id}"
    data_key = context.entropy(KEY_BYTES)
    issuer = Issuer(context, key_id, data_key)
    cluster_pki, cas = issuer.cluster_pki()
    created = ev.ClusterCreated(
        cluster_id=cluster_id,
        name=name,
        kubernetes_version=version,
        control_plane_replicas=replicas,
        service_cidr=str(networks["service CIDR"]),
        pod_cidr=str(networks["pod CIDR"]),
        dns_domain=command.dns_domain,
        apiserver_extra_sans=extra_sans,
        vpn_enabled=command.vpn_enabled,
        vpn_cidr=command.vpn_cidr,
        key_id=key_id,
        pki=cluster_pki,
    )
    events: list[ev.Event] = [
        created,
        ev.ComponentPlaced(
            cluster=name,
            component=INGRESS,
            role=INGRESS,
            hypervisor=ingress_host.name,
            ports=ingress_ports,
        ),
    ]
    for index, (host, ports) in enumerate(control_planes):
        events.append(
            issuer.control_plane(cas.etcd, name, f"{CONTROL_PLANE}-{index}", host.name,
                                 host.ip_address, ports)
        )  # fmt: skip
    events.append(
        issuer.apiserver_certificate(
            cas.ca,
            name,
            command.dns_domain,
            str(networks["service CIDR"]),
            ingress_host.ip_address,
            [host.ip_address for host, _ in control_planes],
            extra_sans,
        )
    )
    return Decision(events=events, new_keys={key_id: data_key})


def scale_cluster(state: FleetState, command: cmd.ScaleCluster, context: Context) -> Decision:
    cluster = state.clusters.get(command.name)
    if cluster is None:
        raise unknown("cluster", command.name, state.clusters)
    replicas = checked_replicas(command.control_plane_replicas)
    current = cluster.control_planes()
    if replicas == len(current):
        return Decision(events=[])
    issuer = Issuer(context, cluster.key_id, context.data_keys.get(cluster.key_id))
    events: list[ev.Event] = [ev.ClusterScaled(name=cluster.name, control_plane_replicas=replicas)]
    if replicas > len(current):
        used_indexes = {component_index(c.name) for c in current}
        free_indexes = (i for i in range(MAX_REPLICAS * 2) if i not in used_indexes)
        hosts = place(
            state.hypervisors.values(),
            PRIVATE,
            CONTROL_PLANE,
            replicas - len(current),
            {c.hypervisor for c in current},
            f"scaling cluster {cluster.name!r} to {replicas} control-plane replicas",
        )
        etcd_ca = issuer.open_ca(context.pki[cluster.name].etcd_ca)
        placed = [
            issuer.control_plane(etcd_ca, cluster.name, f"{CONTROL_PLANE}-{index}", host.name,
                                 host.ip_address, ports)
            for index, (host, ports) in zip(free_indexes, hosts, strict=False)
        ]  # fmt: skip
        events.extend(placed)
        addresses = [state.hypervisors[c.hypervisor].ip_address for c in current]
        addresses += [host.ip_address for host, _ in hosts]
    else:
        # The newest members leave first; the reconciler removes each from etcd
        # before its containers, so the cluster keeps quorum.
        leaving = current[replicas:]
        events.extend(ev.ComponentRemoved(cluster=cluster.name, component=c.name) for c in leaving)
        addresses = [state.hypervisors[c.hypervisor].ip_address for c in current[:replicas]]
    ingress = cluster.ingress()
    events.append(
        issuer.apiserver_certificate(
            issuer.open_ca(context.pki[cluster.name].ca),
            cluster.name,
            cluster.dns_domain,
            cluster.service_cidr,
            state.hypervisors[ingress.hypervisor].ip_address if ingress else None,
            addresses,
            cluster.apiserver_extra_sans,
        )
    )
    return Decision(events=events)


def delete_cluster(state: FleetState, command: cmd.DeleteCluster, context: Context) -> Decision:
    cluster = state.clusters.get(command.name)
    if cluster is None:
        raise unknown("cluster", command.name, state.clusters)
    return Decision(events=[ev.ClusterDeleted(name=command.name)], destroyed_keys=[cluster.key_id])


def issue_kubeconfig(state: FleetState, command: cmd.IssueKubeconfig, context: Context) -> Decision:
    cluster = state.clusters.get(command.cluster)
    if cluster is None:
        raise unknown("cluster", command.cluster, state.clusters)
    if not command.user or not command.user.isprintable() or len(command.user) > 128:
        raise DomainError("user must be 1-128 printable characters")
    for group in command.groups:
        if not group or not group.isprintable() or len(group) > 128:
            raise DomainError(f"group {group!r} must be 1-128 printable characters")
    if not MIN_KUBECONFIG_TTL <= command.ttl_seconds <= MAX_KUBECONFIG_TTL:
        raise DomainError(
            f"kubeconfig TTL must be between {MIN_KUBECONFIG_TTL} s and 366 days, "
            f"not {command.ttl_seconds} s"
        )
    server = api_server_endpoint(cluster, state.hypervisors)
    if server is None:
        raise DomainError(f"cluster {cluster.name!r} has no ingress yet")
    issuer = Issuer(context, cluster.key_id, context.data_keys.get(cluster.key_id))
    cluster_pki = context.pki[cluster.name]
    ca = issuer.open_ca(cluster_pki.ca)
    key = pki.new_key(context.entropy)
    certificate = pki.issue_leaf(
        ca.certificate,
        ca.key,
        key,
        common_name=command.user,
        organizations=command.groups,
        usages=pki.CLIENT,
        now=context.now,
        entropy=context.entropy,
        validity=dt.timedelta(seconds=command.ttl_seconds),
    )
    kubeconfig = pki.kubeconfig(
        cluster.name,
        server,
        cluster_pki.ca.certificate,
        command.user,
        pki.cert_pem(certificate),
        pki.key_pem(key).decode(),
    )
    issued = ev.KubeconfigIssued(
        cluster=cluster.name,
        user=command.user,
        groups=list(command.groups),
        serial=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc.isoformat(),
        not_after=certificate.not_valid_after_utc.isoformat(),
    )
    return Decision(events=[issued], reply=kubeconfig)


# -- helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenCA:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ClusterCAs:
    ca: OpenCA
    etcd: OpenCA
    front_proxy: OpenCA


class Issuer:
    """Issues a cluster's certificates and seals their keys with its data key."""

    def __init__(self, context: Context, key_id: str, data_key: bytes) -> None:
        self.context = context
        self.key_id = key_id
        self.data_key = data_key

    def sealed(self, key: ec.EllipticCurvePrivateKey) -> ev.SealedKey:
        nonce = self.context.entropy(NONCE_BYTES)
        return seal(self.key_id, self.data_key, pki.key_pem(key), nonce)

    def open_ca(self, pair: ev.KeyPair) -> OpenCA:
        return OpenCA(
            pki.load_cert(pair.certificate), pki.load_key(unseal(pair.key, self.data_key))
        )

    def new_ca(self, common_name: str) -> tuple[ev.KeyPair, OpenCA]:
        key = pki.new_key(self.context.entropy)
        certificate = pki.issue_ca(common_name, key, self.context.now, self.context.entropy)
        return ev.KeyPair(pki.cert_pem(certificate), self.sealed(key)), OpenCA(certificate, key)

    def leaf(self, ca: OpenCA, **subject: object) -> ev.KeyPair:
        key = pki.new_key(self.context.entropy)
        certificate = pki.issue_leaf(
            ca.certificate,
            ca.key,
            key,
            now=self.context.now,
            entropy=self.context.entropy,
            **subject,  # type: ignore[arg-type]
        )
        return ev.KeyPair(pki.cert_pem(certificate), self.sealed(key))

    def cluster_pki(self) -> tuple[ev.ClusterPKI, ClusterCAs]:
        ca_pair, ca = self.new_ca("kubernetes")
        etcd_pair, etcd = self.new_ca("etcd-ca")
        front_proxy_pair, front_proxy = self.new_ca("front-proxy-ca")
        service_account = pki.new_key(self.context.entropy)
        masters = ["system:masters"]
        return (
            ev.ClusterPKI(
                ca=ca_pair,
                etcd_ca=etcd_pair,
                front_proxy_ca=front_proxy_pair,
                service_account_public=pki.public_pem(service_account),
                service_account_key=self.sealed(service_account),
                apiserver_kubelet_client=self.leaf(
                    ca, common_name="kube-apiserver-kubelet-client",
                    organizations=masters, usages=pki.CLIENT,
                ),
                apiserver_etcd_client=self.leaf(
                    etcd, common_name="kube-apiserver-etcd-client", usages=pki.CLIENT
                ),
                front_proxy_client=self.leaf(
                    front_proxy, common_name="front-proxy-client", usages=pki.CLIENT
                ),
                controller_manager=self.leaf(
                    ca, common_name="system:kube-controller-manager", usages=pki.CLIENT
                ),
                scheduler=self.leaf(ca, common_name="system:kube-scheduler", usages=pki.CLIENT),
                admin=self.leaf(
                    ca, common_name="oneinfra-admin", organizations=masters, usages=pki.CLIENT
                ),
            ),
            ClusterCAs(ca, etcd, front_proxy),
        )  # fmt: skip

    def control_plane(
        self,
        etcd_ca: OpenCA,
        cluster: str,
        component: str,
        hypervisor: str,
        address: str,
        ports: dict[str, int],
    ) -> ev.ComponentPlaced:
        member = etcd_member_name(cluster, component)
        sans = pki.etcd_sans(member, address)
        return ev.ComponentPlaced(
            cluster=cluster,
            component=component,
            role=CONTROL_PLANE,
            hypervisor=hypervisor,
            ports=ports,
            etcd_server=self.leaf(
                etcd_ca, common_name=member, usages=pki.SERVER_AND_CLIENT, sans=sans
            ),
            etcd_peer=self.leaf(
                etcd_ca, common_name=member, usages=pki.SERVER_AND_CLIENT, sans=sans
            ),
        )

    def apiserver_certificate(
        self,
        ca: OpenCA,
        cluster: str,
        dns_domain: str,
        service_cidr: str,
        ingress_address: str | None,
        addresses: list[str],
        extra_sans: list[str],
    ) -> ev.ApiServerCertificateIssued:
        sans = pki.apiserver_sans(dns_domain, service_cidr, ingress_address, addresses, extra_sans)
        serving = self.leaf(ca, common_name="kube-apiserver", usages=pki.SERVER, sans=sans)
        return ev.ApiServerCertificateIssued(cluster=cluster, sans=sans, serving=serving)


def new_id(context: Context) -> str:
    return str(uuid.UUID(bytes=context.entropy(16), version=4))


def checked_replicas(replicas: object) -> int:
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise DomainError(f"control-plane replicas must be a number, not {replicas!r}")
    if not 1 <= replicas <= MAX_REPLICAS or replicas % 2 == 0:
        raise DomainError(
            f"control-plane replicas must be odd, from 1 to {MAX_REPLICAS} "
            f"(etcd needs a majority), not {replicas}"
        )
    return replicas


def checked_certificate(pem: str, what: str) -> str:
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise DomainError(f"the {what} is not a PEM certificate") from None
    return pem


def checked_private_key(pem: str) -> bytes:
    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise DomainError("the client key is not an unencrypted PEM private key") from None
    return pem.encode()


def unknown(kind: str, name: str, known: Mapping[str, object]) -> DomainError:
    hint = f"; known: {', '.join(sorted(known)[:10])}" if known else f"; there is no {kind} yet"
    return DomainError(f"unknown {kind} {name!r}{hint}")


Handler = Callable[[FleetState, cmd.Command, Context], Decision]
HANDLERS: dict[type[cmd.Command], Handler] = {
    cmd.RegisterHypervisor: register_hypervisor,  # type: ignore[dict-item]
    cmd.LabelHypervisor: label_hypervisor,  # type: ignore[dict-item]
    cmd.RemoveHypervisor: remove_hypervisor,  # type: ignore[dict-item]
    cmd.CreateCluster: create_cluster,  # type: ignore[dict-item]
    cmd.ScaleCluster: scale_cluster,  # type: ignore[dict-item]
    cmd.DeleteCluster: delete_cluster,  # type: ignore[dict-item]
    cmd.IssueKubeconfig: issue_kubeconfig,  # type: ignore[dict-item]
}
