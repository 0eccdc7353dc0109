"""The VPN server's pod (render/vpn.py), how CRI is asked for it
(runtime/realize.py), and how its peers are brought to the cluster's
(reconcile/vpn.py, runtime/wgctl.py): pure, no hypervisor needed."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oneinfra import render as bp
from oneinfra.api.pb.runtime.v1 import api_pb2 as pb
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.pki import wireguard
from oneinfra.pki.sealing import unseal
from oneinfra.reconcile.vpn import desired_peers, peer_changes
from oneinfra.runtime import realize
from oneinfra.runtime.kube import NodeView
from oneinfra.runtime.wgctl import ServedPeer, parse_dump

from .harness import Fleet


def key() -> str:
    return wireguard.public_key(wireguard.new_private_key(os.urandom))


@pytest.fixture
def edge() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True, vpn_cidr="10.220.0.0/16"))
    return fleet


def server_pod(fleet: Fleet) -> bp.PodSpec:
    cluster = fleet.state.clusters["edge"]
    server = cluster.vpn_server()
    assert server is not None
    enabled = next(e for e in fleet.log if isinstance(e, ev.VpnEnabled))
    private = unseal(enabled.server_private_key, fleet.keys[cluster.key_id])
    return bp.vpn_server(cluster, server, private)


def test_the_server_pod_has_its_own_network_its_port_mapped_and_its_key_0600(edge: Fleet) -> None:
    pod = server_pod(edge)
    server = edge.state.clusters["edge"].vpn_server()
    assert server is not None and pod.network is not None
    assert pod.network.ports == [bp.PortMapping(server.ports["vpn"], 51820, "UDP")]
    assert pod.network.sysctls == {"net.ipv4.ip_forward": "1"}  # peer to peer
    files = {f.path: f for f in pod.files}
    assert files["server.key"].mode == 0o600
    (container,) = pod.containers
    assert container.capabilities == ["NET_ADMIN"] and container.devices == ["/dev/net/tun"]
    script = files["start.sh"].content.decode()
    # Kernel WireGuard when there, else userspace; the server's address on wg0.
    assert "ip link add wg0 type wireguard" in script and "wireguard-go wg0" in script
    assert "ip address add 10.220.0.1/16 dev wg0" in script
    assert "ip route replace 10.244.0.0/16 dev wg0" in script  # nodes' pods: peers' allowed IPs


def test_cri_is_asked_for_a_pod_network_namespace_with_the_udp_port(edge: Fleet) -> None:
    pod = server_pod(edge)
    sandbox = realize.pod_sandbox_config(pod)
    assert sandbox.linux.security_context.namespace_options.network == pb.POD
    (mapping,) = sandbox.port_mappings
    assert (mapping.protocol, mapping.container_port) == (pb.UDP, 51820)
    assert dict(sandbox.linux.sysctls) == {"net.ipv4.ip_forward": "1"}
    config = realize.container_config(pod.containers[0], {})
    assert list(config.linux.security_context.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert [d.host_path for d in config.devices] == ["/dev/net/tun"]


def test_host_network_pods_keep_the_spec_hash_they_had_before_pods_had_networks() -> None:
    # A hash that changed would replace every running pod at the upgrade.
    container = bp.ContainerSpec("a", "img", ["x"], [bp.Mount("/a", "/b")],
                                 startup_args=["--q"], after_api=True)  # fmt: skip
    assert bp.spec_hash([container]) == "c6d253aae2b6fe0b"
    network = bp.Network([bp.PortMapping(30005, 51820)])
    assert bp.spec_hash([container], network) != bp.spec_hash([container])


def test_the_servers_peers_are_the_clusters_nodes(edge: Fleet) -> None:
    keys = {node: key() for node in ("w0", "w1")}
    for node, public in keys.items():
        edge.run(cmd.AddVpnPeer(cluster="edge", node=node, public_key=public))
    assert desired_peers(edge.state.clusters["edge"]) == {
        keys["w0"]: ("10.220.0.2/32",),
        keys["w1"]: ("10.220.0.3/32",),
    }


def node(name: str, pod_cidr: str) -> NodeView:
    return NodeView(name, True, "v1.37.2", "", [], "", pod_cidr)


def test_each_peer_routes_its_nodes_pod_cidr_once_it_has_one(edge: Fleet) -> None:
    keys = {n: key() for n in ("w0", "w1", "w2", "w3")}
    for name, public in keys.items():
        edge.run(cmd.AddVpnPeer(cluster="edge", node=name, public_key=public))
    nodes = [
        node("w0", "10.244.0.0/24"),
        node("w1", "10.244.0.0/25"),  # overlaps w0's: WireGuard would take it from w0
        node("w2", "192.168.0.0/24"),  # not of the cluster's pod network
        node("w3", ""),  # no pod CIDR yet
    ]
    assert desired_peers(edge.state.clusters["edge"], nodes) == {
        keys["w0"]: ("10.220.0.2/32", "10.244.0.0/24"),
        keys["w1"]: ("10.220.0.3/32",),
        keys["w2"]: ("10.220.0.4/32",),
        keys["w3"]: ("10.220.0.5/32",),
    }


def served(public: str, *allowed: str) -> ServedPeer:
    return ServedPeer(public, tuple(sorted(allowed)), "(none)", 0)


def test_peer_changes_add_the_missing_fix_the_wrong_and_remove_the_rest() -> None:
    a, b, c = sorted(key() for _ in range(3))
    desired = {a: ("10.220.0.2/32",), b: ("10.220.0.3/32", "10.244.1.0/24")}
    current = [served(a, "10.220.0.2/32"), served(b, "10.220.0.0/16"), served(c, "10.220.0.9/32")]
    assert peer_changes(desired, current) == [
        "peer", c, "remove", "peer", b, "allowed-ips", "10.220.0.3/32,10.244.1.0/24",
    ]  # fmt: skip
    settled = [served(a, "10.220.0.2/32"), served(b, "10.220.0.3/32", "10.244.1.0/24")]
    assert peer_changes(desired, settled) == []


@given(st.sets(st.integers(2, 200), max_size=8), st.sets(st.integers(2, 200), max_size=8))
def test_applying_the_changes_leaves_exactly_the_desired_peers(
    wanted: set[int], there: set[int]
) -> None:
    keys = {i: f"{i:043d}=" for i in wanted | there}
    desired: dict[str, tuple[str, ...]] = {keys[i]: (f"10.220.0.{i}/32",) for i in wanted}
    current: dict[str, tuple[str, ...]] = {
        keys[i]: (f"10.220.1.{i}/32",) for i in there
    }  # all with a wrong address
    arguments = peer_changes(desired, [served(k, *v) for k, v in current.items()])
    while arguments:  # as `wg set` reads them
        _, peer, verb, *rest = arguments
        if verb == "remove":
            current.pop(peer)
            arguments = rest
        else:
            current[peer] = tuple(rest[0].split(","))
            arguments = rest[1:]
    assert current == desired


def test_wg_dump_is_read_with_its_peers() -> None:
    output = (
        "PRIV=\tPUB=\t51820\toff\n"
        "K1=\t(none)\t10.213.0.1:41000\t10.220.0.2/32\t1764800000\t10\t20\t0\n"
        "K2=\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
    )
    public, peers = parse_dump(output)
    assert public == "PUB="
    assert peers == [
        ServedPeer("K1=", ("10.220.0.2/32",), "10.213.0.1:41000", 1764800000, 10, 20),
        ServedPeer("K2=", (), "(none)", 0),
    ]
    with pytest.raises(ValueError, match="not the output"):
        parse_dump("")


def daemon_set(manifests: list[Any]) -> Any:
    return next(o for o in manifests if o["kind"] == "DaemonSet")


def test_a_vpn_cluster_tells_joining_workers_its_server_and_routes_flannel_over_it(
    edge: Fleet,
) -> None:
    from oneinfra.model.state import vpn_endpoint
    from oneinfra.render.addons import network
    from oneinfra.render.bootstrap import BOOTSTRAPPERS, NODES, bootstrap_objects

    cluster = edge.state.clusters["edge"]
    endpoint = vpn_endpoint(cluster, edge.state.hypervisors)
    server = cluster.vpn_server()
    assert server is not None and endpoint == f"192.0.2.1:{server.ports['vpn']}"
    ca = edge.created("edge").pki.ca.certificate
    rendered = bootstrap_objects(cluster, "https://192.0.2.1:30000", ca, [], endpoint)
    found = {(o["kind"], o["metadata"]["name"]): o for o in rendered}
    info = found[("ConfigMap", "oneinfra-vpn")]
    assert info["metadata"]["namespace"] == "kube-public"
    assert info["data"] == {
        "endpoint": endpoint,
        "serverPublicKey": cluster.vpn.server_public_key if cluster.vpn else "",
        "serverAddress": "10.220.0.1",
        "network": "10.220.0.0/16",
        "podNetwork": "10.244.0.0/16",
        "peerSigner": "oneinfra.io/vpn-peer",
        "publicKeyAnnotation": "vpn.oneinfra.io/public-key",
    }
    binding = found[("RoleBinding", "oneinfra:vpn-info")]
    assert {s["name"] for s in binding["subjects"]} == {BOOTSTRAPPERS, NODES}
    flannel = next(
        o for o in network(cluster, "https://192.0.2.1:30000") if o["kind"] == "DaemonSet"
    )
    (flanneld,) = [c for c in flannel["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "flanneld"]  # fmt: skip
    assert "--iface-can-reach=10.220.0.1" in flanneld["command"]
    (conf,) = [o for o in network(cluster, "https://192.0.2.1:30000")
               if o["metadata"]["name"] == "kube-flannel-cfg"]  # fmt: skip
    # Only the pod CIDRs from flannel: the server routes them, no VXLAN in the tunnel.
    assert json.loads(conf["data"]["net-conf.json"])["Backend"] == {"Type": "alloc"}


def test_a_cluster_without_vpn_renders_no_vpn_info_and_flannel_as_before() -> None:
    from oneinfra.render.addons import network
    from oneinfra.render.bootstrap import bootstrap_objects

    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="plain"))
    cluster = fleet.state.clusters["plain"]
    ca = fleet.created("plain").pki.ca.certificate
    names = [o["metadata"]["name"] for o in bootstrap_objects(cluster, "https://h:1", ca, [])]
    assert "oneinfra-vpn" not in names
    flannel = next(
        o for o in network(cluster, "https://192.0.2.1:30000") if o["kind"] == "DaemonSet"
    )
    (flanneld, *_) = flannel["spec"]["template"]["spec"]["containers"]
    assert flanneld["command"] == ["/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr"]
    (conf,) = [o for o in network(cluster, "https://192.0.2.1:30000")
               if o["metadata"]["name"] == "kube-flannel-cfg"]  # fmt: skip
    assert json.loads(conf["data"]["net-conf.json"])["Backend"] == {"Type": "vxlan"}


class RecordingServer:
    """A VPN server that serves `peers` and records each `wg set`."""

    def __init__(self, public_key: str, peers: list[ServedPeer]) -> None:
        self.public_key, self.served, self.sets = public_key, peers, []  # type: ignore[var-annotated]

    async def peers(self) -> tuple[str, list[ServedPeer]]:
        return self.public_key, self.served

    async def set(self, arguments: list[str]) -> None:
        self.sets.append(arguments)


def test_a_restarted_daemon_changes_no_peer_before_it_has_seen_the_nodes(edge: Fleet) -> None:
    import anyio

    from oneinfra.reconcile.board import StatusBoard
    from oneinfra.reconcile.vpn import VpnPeers

    public = key()
    edge.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=public))
    cluster = edge.state.clusters["edge"]
    assert cluster.vpn is not None
    # As served before the restart: the peer routes its node's pods too.
    server = RecordingServer(cluster.vpn.server_public_key,
                             [served(public, "10.220.0.2/32", "10.244.3.0/24")])  # fmt: skip
    board = StatusBoard()
    shared: Any = type("Shared", (), {"board": board})()
    peers = VpnPeers(shared)
    peers.server = lambda _cluster: server  # type: ignore[method-assign, assignment, return-value]

    assert anyio.run(peers.reconcile, cluster) == ""
    assert server.sets == []  # nothing taken from the peer while the nodes are unknown
    board.nodes_observed("edge", cluster.cluster_id, [node("w0", "10.244.3.0/24")], {}, "")
    anyio.run(peers.reconcile, cluster)
    assert server.sets == [[]]  # seen: already as desired
    board.nodes_observed("edge", cluster.cluster_id, [node("w0", "10.244.4.0/24")], {}, "")
    anyio.run(peers.reconcile, cluster)
    assert server.sets[-1] == ["peer", public, "allowed-ips", "10.220.0.2/32,10.244.4.0/24"]
