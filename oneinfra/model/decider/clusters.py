"""Decisions about clusters: create (placement, ports, the whole PKI), scale
(members placed or removed, the serving certificate reissued), delete (the
data key destroyed with it)."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import DomainError, shown
from ...pki import x509
from ...pki.certlist import (
    DAY,
    DEFAULT_CA_LIFETIME,
    DEFAULT_LEAF_LIFETIME,
    MAX_LIFETIME,
    MIN_LEAF_LIFETIME,
)
from ...pki.issuer import Issuer, OpenCA
from ...pki.sealing import KEY_BYTES
from .. import commands as cmd
from .. import events as ev
from .. import validation
from ..kinds import CONTROL_PLANE, INGRESS, PRIVATE, PUBLIC
from ..placement import place
from ..state import FleetState, component_index, etcd_member_name
from ..versions import DEFAULT_VERSION, release
from .backups import clone_source, restore_started
from .context import Context, Decision, existing_cluster, new_id
from .vpn import roomy, server_placed, vpn_enabled

MAX_REPLICAS = 7


def create_cluster(state: FleetState, command: cmd.CreateCluster, context: Context) -> Decision:
    name = validation.name("cluster", command.name)
    if name in state.clusters:
        raise DomainError(f"cluster {shown(name)} already exists")
    version = release(command.kubernetes_version or DEFAULT_VERSION).version
    replicas = checked_replicas(command.control_plane_replicas)
    networks = {
        "service CIDR": validation.network(command.service_cidr, "service CIDR"),
        "pod CIDR": validation.network(command.pod_cidr, "pod CIDR"),
    }
    # Checked even with the VPN off: it is stored, and a VPN enabled later uses it.
    vpn = validation.network(command.vpn_cidr, "VPN CIDR")
    if command.vpn_enabled:
        networks["VPN CIDR"] = roomy(vpn)
    validation.disjoint(networks)
    if networks["service CIDR"].num_addresses < 4:
        raise DomainError(f"service CIDR {command.service_cidr} is too small for any service")
    if not validation.DNS1123_SUBDOMAIN.match(command.dns_domain):
        raise DomainError(f"DNS domain {shown(command.dns_domain)} is not a DNS name")
    extra_sans = [validation.subject_alternative_name(s) for s in command.apiserver_extra_sans]
    clone = clone_source(state, command.from_backup) if command.from_backup else None

    purpose = f"cluster {shown(name)}"
    ((ingress_host, ingress_ports),) = place(
        state.hypervisors.values(),
        PUBLIC,
        INGRESS,
        1,
        set(),
        f"{purpose}'s ingress",
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
    leaf_lifetime, ca_lifetime = lifetimes(command.certificate_lifetime, command.ca_lifetime)
    issuer = context.issuer(key_id, data_key, leaf_lifetime, ca_lifetime)
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
        vpn_cidr=str(vpn),
        key_id=key_id,
        pki=cluster_pki,
        leaf_lifetime=leaf_lifetime,
        ca_lifetime=ca_lifetime,
        leaf_validity=issuer.validity(),
        ca_validity=issuer.validity(ca=True),
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
            control_plane_placed(issuer, cas["etcd_ca"], name, replica_name(index), host.name,
                                 host.ip_address, ports)
        )  # fmt: skip
    events.append(
        apiserver_certificate(
            issuer,
            cas["ca"],
            name,
            command.dns_domain,
            str(networks["service CIDR"]),
            ingress_host.ip_address,
            [host.ip_address for host, _ in control_planes],
            extra_sans,
        )
    )
    if command.vpn_enabled:
        events.append(vpn_enabled(name, key_id, data_key, vpn, context))
        events.append(server_placed(name, ingress_host, set(ingress_ports.values())))
    if clone is not None:  # its etcd starts from the other cluster's backup
        events.append(restore_started(name, cluster_id, *clone, context))
    return Decision(events=events, new_keys={key_id: data_key})


def scale_cluster(state: FleetState, command: cmd.ScaleCluster, context: Context) -> Decision:
    cluster = existing_cluster(state, command.name)
    replicas = checked_replicas(command.control_plane_replicas)
    current = cluster.control_planes()
    if replicas == len(current):
        return Decision(events=[])
    issuer = context.cluster_issuer(cluster)
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
            f"scaling cluster {shown(cluster.name)} to {replicas} control-plane replicas",
        )
        etcd_ca = issuer.open_ca(context.pki[cluster.name].etcd_ca)
        placed = [
            control_plane_placed(issuer, etcd_ca, cluster.name, replica_name(index), host.name,
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
        apiserver_certificate(
            issuer,
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
    cluster = existing_cluster(state, command.name)
    return Decision(events=[ev.ClusterDeleted(name=command.name)], destroyed_keys=[cluster.key_id])


def replica_name(index: int) -> str:
    """control-plane-0, control-plane-1, ...: the inverse of component_index."""
    return f"{CONTROL_PLANE}-{index}"


def control_plane_placed(
    issuer: Issuer,
    etcd_ca: OpenCA,
    cluster: str,
    component: str,
    hypervisor: str,
    address: str,
    ports: dict[str, int],
) -> ev.ComponentPlaced:
    """A control-plane replica placed, with its etcd member's certificates."""
    server, peer = issuer.etcd_member(etcd_ca, etcd_member_name(cluster, component), address)
    return ev.ComponentPlaced(
        cluster=cluster,
        component=component,
        role=CONTROL_PLANE,
        hypervisor=hypervisor,
        ports=ports,
        etcd_server=server,
        etcd_peer=peer,
        validity=issuer.validity(),
    )


def apiserver_certificate(
    issuer: Issuer,
    ca: OpenCA,
    cluster: str,
    dns_domain: str,
    service_cidr: str,
    ingress_address: str | None,
    addresses: Sequence[str],
    extra_sans: Sequence[str],
) -> ev.ApiServerCertificateIssued:
    sans = x509.apiserver_sans(dns_domain, service_cidr, ingress_address, addresses, extra_sans)
    serving = issuer.apiserver_serving(ca, sans)
    return ev.ApiServerCertificateIssued(
        cluster=cluster, sans=sans, serving=serving, validity=issuer.validity()
    )


def lifetimes(leaf: int, ca: int) -> tuple[int, int]:
    """A cluster's certificate lifetimes, in seconds (0: the defaults): a
    leaf lives at least a minute, and less than its CA."""
    leaf, ca = leaf or DEFAULT_LEAF_LIFETIME, ca or DEFAULT_CA_LIFETIME
    for what, seconds in (("certificate", leaf), ("CA", ca)):
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
            raise DomainError(f"a {what} lifetime is a whole number of seconds, not {seconds!r}")
        if seconds < MIN_LEAF_LIFETIME or seconds > MAX_LIFETIME:
            raise DomainError(
                f"a {what} lifetime of {seconds} s is out of range "
                f"({MIN_LEAF_LIFETIME} s to {MAX_LIFETIME // DAY // 365} years)"
            )
    if leaf >= ca:
        raise DomainError(
            f"certificates would outlive their CA: a lifetime of {leaf} s, the CA's {ca} s"
        )
    return leaf, ca


def checked_replicas(replicas: object) -> int:
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise DomainError(f"control-plane replicas must be a number, not {shown(replicas)}")
    if not 1 <= replicas <= MAX_REPLICAS or replicas % 2 == 0:
        raise DomainError(
            f"control-plane replicas must be odd, from 1 to {MAX_REPLICAS} "
            f"(etcd needs a majority), not {replicas}"
        )
    return replicas
