"""Decisions about a cluster's VPN for edge workers: enabling it (its network,
the server's address and key pair) and its peers, one per node, each with an
address of the VPN's network and the public key its worker made."""

from __future__ import annotations

import ipaddress

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import DomainError, shown
from ...pki import wireguard
from ...pki.sealing import NONCE_BYTES, seal
from .. import commands as cmd
from .. import events as ev
from .. import validation
from ..kinds import VPN
from ..placement import free_ports
from ..state import PORT_NAMES, Cluster, FleetState, Hypervisor
from .context import Context, Decision, existing_cluster

MIN_VPN_ADDRESSES = 4  # the network, the server, a peer, the broadcast
MAX_VPN_PEERS = 5000  # one cluster's: the server's configuration stays small


def vpn_network(cluster: Cluster, cidr: str) -> validation.IPNetwork:
    """The VPN's network for a running cluster, checked against its pod and
    service networks (which its routes must not shadow)."""
    network = roomy(validation.network(cidr, "VPN CIDR"))
    validation.disjoint(
        {
            "VPN CIDR": network,
            "service CIDR": validation.network(cluster.service_cidr, "service CIDR"),
            "pod CIDR": validation.network(cluster.pod_cidr, "pod CIDR"),
        }
    )
    return network


def roomy(network: validation.IPNetwork) -> validation.IPNetwork:
    if network.num_addresses < MIN_VPN_ADDRESSES:
        raise DomainError(f"VPN CIDR {network} is too small: it needs room for peers")
    return network


def vpn_enabled(
    cluster: str, key_id: str, data_key: bytes, network: validation.IPNetwork, context: Context
) -> ev.VpnEnabled:
    """The server's address (the network's first) and a new key pair for it."""
    private = wireguard.new_private_key(context.entropy)
    sealed = seal(key_id, data_key, wireguard.encode(private).encode(),
                  context.entropy(NONCE_BYTES))  # fmt: skip
    return ev.VpnEnabled(
        cluster=cluster,
        cidr=str(network),
        server_address=str(network.network_address + 1),
        server_public_key=wireguard.public_key(private),
        server_private_key=sealed,
    )


def server_placed(cluster: str, ingress_host: Hypervisor, taken: set[int]) -> ev.ComponentPlaced:
    """The VPN server goes where the ingress is: on a public hypervisor, the
    address workers already reach, with a UDP port of its range (`taken`:
    those decided beside it, not yet in the state)."""
    names = PORT_NAMES[VPN]
    free = free_ports(ingress_host, len(names), taken)
    if free is None:
        low, high = ingress_host.port_range
        raise DomainError(
            f"cluster {shown(cluster)}'s VPN server needs a free port on hypervisor "
            f"{shown(ingress_host.name)}, its ingress's, but its range {low}-{high} is exhausted"
        )
    ports = dict(zip(names, free, strict=True))
    return ev.ComponentPlaced(
        cluster=cluster, component=VPN, role=VPN, hypervisor=ingress_host.name, ports=ports
    )


def enable_vpn(state: FleetState, command: cmd.EnableVpn, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    cidr = command.vpn_cidr or cluster.vpn_cidr
    if cluster.vpn is not None:
        if cidr != cluster.vpn.cidr:
            raise DomainError(
                f"cluster {shown(cluster.name)} has its VPN on {cluster.vpn.cidr} already; "
                "its network cannot change while peers use it"
            )
        return Decision(events=[])  # already so: nothing to record
    network = vpn_network(cluster, cidr)
    ingress = cluster.ingress()
    if ingress is None:
        raise DomainError(f"cluster {shown(cluster.name)} has no ingress for its VPN server")
    placed = server_placed(cluster.name, state.hypervisors[ingress.hypervisor], set())
    data_key = context.data_keys.get(cluster.key_id)
    enabled = vpn_enabled(cluster.name, cluster.key_id, data_key, network, context)
    return Decision(events=[enabled, placed])


def add_vpn_peer(state: FleetState, command: cmd.AddVpnPeer, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    vpn = cluster.vpn
    if vpn is None:
        raise DomainError(
            f"cluster {shown(cluster.name)} has no VPN; enable it first "
            f"('oneinfra cluster enable-vpn {cluster.name}')"
        )
    validation.node_name(command.node)
    key = wireguard.parsed_public_key(command.public_key)
    if key is None:
        raise DomainError(
            f"{shown(command.public_key)} is not a WireGuard public key "
            "(44 characters of base64, as 'wg pubkey' prints)"
        )
    if key == vpn.server_public_key:
        raise DomainError("that public key is the VPN server's own")
    for node, peer in vpn.peers.items():
        if peer.public_key != key:
            continue
        if node == command.node:  # the same join again: its address stays
            return Decision(events=[], reply=certified(cluster, command, peer.address, context))
        raise DomainError(
            f"public key {key} belongs to node {shown(node)} of cluster "
            f"{shown(cluster.name)} already; each worker makes its own key"
        )
    events: list[ev.Event] = []
    if command.node in vpn.peers:  # the node joins again with a new key
        events.append(ev.VpnPeerRemoved(cluster=cluster.name, node=command.node))
        taken = {p.address for n, p in vpn.peers.items() if n != command.node}
    else:
        if len(vpn.peers) >= MAX_VPN_PEERS:
            raise DomainError(
                f"cluster {shown(cluster.name)}'s VPN has {len(vpn.peers)} peers, the most it may"
            )
        taken = {p.address for p in vpn.peers.values()}
    address = free_address(vpn.cidr, vpn.server_address, taken)
    if address is None:
        raise DomainError(
            f"cluster {shown(cluster.name)}'s VPN network {vpn.cidr} has no address left"
        )
    events.append(ev.VpnPeerAdded(cluster=cluster.name, node=command.node, address=address,
                                  public_key=key))  # fmt: skip
    return Decision(events=events, reply=certified(cluster, command, address, context))


def certified(
    cluster: Cluster, command: cmd.AddVpnPeer, address: str, context: Context
) -> str | None:
    """The peer's certificate when the command asks for one: what the worker
    learns its address from, vouched for by the CA it pinned at join."""
    if not command.certify_key:
        return None
    try:
        key = serialization.load_pem_public_key(command.certify_key.encode())
    except ValueError:
        raise DomainError("the key to certify is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise DomainError("the key to certify is not an elliptic-curve key")
    issuer = context.cluster_issuer(cluster)
    ca = issuer.open_ca(context.pki[cluster.name].ca)
    return issuer.vpn_peer(ca, key, command.node, address)


def free_address(cidr: str, server: str, taken: set[str]) -> str | None:
    """The lowest host address of the network that nobody has: addresses of
    removed nodes come back, so the network does not run out over the years."""
    network = ipaddress.ip_network(cidr)
    used = taken | {server}
    for candidate in network.hosts():
        text = str(candidate)
        if text not in used:
            return text
    return None


def peer_removed(cluster: Cluster, node: str) -> list[ev.Event]:
    """A removed node's peer, if it has one: its key refused from then on."""
    if cluster.vpn is None or node not in cluster.vpn.peers:
        return []
    return [ev.VpnPeerRemoved(cluster=cluster.name, node=node)]
