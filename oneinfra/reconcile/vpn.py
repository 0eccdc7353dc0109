"""A cluster's VPN server serves exactly the cluster's peers: what `wg`
reports in the running server is compared with the peers in the events
(one per node: its public key, its address), and one `wg set` adds,
changes and removes the difference. Live, level-triggered: a node that
joins or leaves restarts nothing, and a server started anew (its
container killed) gets its peers back at the next pass.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lightkube.resources.certificates_v1 import CertificateSigningRequest

from ..errors import CRIError, DomainError
from ..model import commands as cmd
from ..model.state import Cluster
from ..pki.csr import peer_node
from ..render.vpn import CONTAINER
from ..runtime.kube import ClusterAPI, NodeView, pending_peers
from ..runtime.wgctl import ServedPeer, WireGuard
from .shared import Shared

log = logging.getLogger("oneinfra.reconciler")


def peer_changes(desired: dict[str, tuple[str, ...]], served: list[ServedPeer]) -> list[str]:
    """`wg set` arguments from the served peers to the desired ones (public
    key -> the networks it routes, sorted)."""
    arguments: list[str] = []
    current = {p.public_key: p.allowed_ips for p in served}
    for key in sorted(current.keys() - desired.keys()):
        arguments += ["peer", key, "remove"]
    for key, wanted in sorted(desired.items()):
        if current.get(key) != wanted:
            arguments += ["peer", key, "allowed-ips", ",".join(wanted)]
    return arguments


def desired_peers(cluster: Cluster, nodes: Sequence[NodeView] = ()) -> dict[str, tuple[str, ...]]:
    """Each node's peer routes its own address and, once its Node has one,
    its pod CIDR: the pod network between nodes is the server's routing, no
    encapsulation over the tunnel. A pod CIDR outside the cluster's, or one
    another node has already, is left out (WireGuard would move it)."""
    vpn = cluster.vpn
    if vpn is None:
        return {}
    pods = ipaddress.ip_network(cluster.pod_cidr)
    cidrs: dict[str, str] = {}
    claimed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for node in sorted(nodes, key=lambda n: n.name):
        try:
            cidr = ipaddress.ip_network(node.pod_cidr)
        except ValueError:
            continue
        inside = cidr.version == pods.version and cidr.subnet_of(pods)  # type: ignore[arg-type]
        if inside and not any(cidr.overlaps(c) for c in claimed):
            claimed.append(cidr)
            cidrs[node.name] = str(cidr)
    return {
        peer.public_key: tuple(sorted([f"{peer.address}/32", *([cidrs[n]] if n in cidrs else [])]))
        for n, peer in vpn.peers.items()
    }


class VpnPeers:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def server(self, cluster: Cluster) -> WireGuard | None:
        """The cluster's running VPN server container, as last observed."""
        component = cluster.vpn_server()
        found = component and self.shared.running_container(cluster, component, CONTAINER)
        return WireGuard(*found) if found else None

    async def reconcile(self, cluster: Cluster) -> str:
        """What was done, in a few words; '' when there is no server to ask."""
        server = self.server(cluster)
        if server is None:
            return ""
        try:
            public_key, served = await server.peers()
            if cluster.vpn is not None and public_key != cluster.vpn.server_public_key:
                return f"the VPN server runs with another key ({public_key}): not its cluster's"
            self.shared.board.vpn_observed(cluster.name, cluster.cluster_id, served, time.time())
            status = self.shared.board.clusters.get(cluster.cluster_id)
            if status is None or not status.nodes_seen:
                # Just started: the nodes' pod CIDRs are not known yet, and a
                # change now would take them from the peers (a pod network
                # cut until the next pass). The server keeps what it serves.
                return ""
            desired = desired_peers(cluster, status.nodes)
            changes = peer_changes(desired, served)
            await server.set(changes)
        except CRIError as error:
            log.warning("cluster %s's VPN peers: %s", cluster.name, error)
            return f"VPN peers: {error}"
        count = sum(1 for a in changes if a == "peer")
        return f"VPN: {len(desired)} peer(s), {count} changed" if count else ""


async def answer_peer_requests(
    shared: Shared, cluster: Cluster, api: ClusterAPI, csrs: list[CertificateSigningRequest]
) -> int:
    """Workers' requests to be peers (node join over the VPN): each decided
    as a command of the daemon's own, so a key that is not one, or another
    node's, is refused with the decider's words and nothing is appended; a
    peer granted gets its certificate, its address in it. How many were
    answered."""
    objects = {c.metadata.name: c for c in csrs if c.metadata and c.metadata.name}
    pending = pending_peers(csrs)
    for request in pending:
        found = peer_node(request)
        certificate = None
        if isinstance(found, str):
            refusal: str | None = found
        else:
            node, key = found
            pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
            command = cmd.AddVpnPeer(cluster=cluster.name, node=node,
                                     public_key=request.public_key, certify_key=pem)  # fmt: skip
            try:
                certificate = (await shared.fleet.execute(command)).decision.reply
                refusal = None
            except DomainError as error:
                refusal = str(error)
        if refusal is not None:
            log.warning("cluster %s: VPN peer request %s refused: %s",
                        cluster.name, request.name, refusal)  # fmt: skip
        decided = objects[request.name]
        if not request.approved:
            decided = await api.decide(decided, refusal is None,
                                       f"oneinfra: {refusal or 'a peer of the VPN'}")  # fmt: skip
        if certificate is not None:
            await api.issue(decided, certificate)
    return len(pending)
