"""A cluster's VPN server serves exactly the cluster's peers: what `wg`
reports in the running server is compared with the peers in the events
(one per node: its public key, its address), and one `wg set` adds,
changes and removes the difference. Live, level-triggered: a node that
joins or leaves restarts nothing, and a server started anew (its
container killed) gets its peers back at the next pass.
"""

from __future__ import annotations

import logging

from ..errors import CRIError
from ..model.state import Cluster
from ..render.vpn import CONTAINER
from ..runtime.wgctl import ServedPeer, WireGuard
from .shared import Shared

log = logging.getLogger("oneinfra.reconciler")


def peer_changes(desired: dict[str, str], served: list[ServedPeer]) -> list[str]:
    """`wg set` arguments from the served peers to the desired ones (public
    key -> its address): each peer routes its own address only."""
    arguments: list[str] = []
    current = {p.public_key: p.allowed_ips for p in served}
    for key in sorted(current.keys() - desired.keys()):
        arguments += ["peer", key, "remove"]
    for key, address in sorted(desired.items()):
        wanted = (f"{address}/32",)
        if current.get(key) != wanted:
            arguments += ["peer", key, "allowed-ips", wanted[0]]
    return arguments


def desired_peers(cluster: Cluster) -> dict[str, str]:
    vpn = cluster.vpn
    return {} if vpn is None else {p.public_key: p.address for p in vpn.peers.values()}


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
            changes = peer_changes(desired_peers(cluster), served)
            await server.set(changes)
        except CRIError as error:
            log.warning("cluster %s's VPN peers: %s", cluster.name, error)
            return f"VPN peers: {error}"
        count = sum(1 for a in changes if a == "peer")
        return f"VPN: {len(desired_peers(cluster))} peer(s), {count} changed" if count else ""
