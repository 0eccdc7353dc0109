"""The VPN for edge workers, as the decider decides it: its network, the
server's key pair, one peer per node (address and key), released at removal."""

from __future__ import annotations

import base64
import ipaddress
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model.decider.vpn import free_address
from oneinfra.pki import wireguard
from oneinfra.pki.sealing import unseal

from .harness import Fleet


def worker_key() -> str:
    """A public key made as a worker makes it (its private half stays here)."""
    return wireguard.public_key(wireguard.new_private_key(os.urandom))


@pytest.fixture
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    return fleet


def test_create_with_vpn_decides_the_server_address_and_a_sealed_key_pair(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True, vpn_cidr="10.220.0.0/16"))

    enabled = next(e for e in fleet.log if isinstance(e, ev.VpnEnabled))
    assert (enabled.cidr, enabled.server_address) == ("10.220.0.0/16", "10.220.0.1")
    private = unseal(enabled.server_private_key, fleet.keys[fleet.state.clusters["edge"].key_id])
    assert wireguard.public_key(base64.b64decode(private)) == enabled.server_public_key
    vpn = fleet.state.clusters["edge"].vpn
    assert vpn is not None and vpn.server_public_key == enabled.server_public_key


def test_a_cluster_without_vpn_has_none_until_enabled(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="plain"))
    assert fleet.state.clusters["plain"].vpn is None

    fleet.run(cmd.EnableVpn(cluster="plain"))
    vpn = fleet.state.clusters["plain"].vpn
    assert vpn is not None and vpn.cidr == "10.220.0.0/16"
    assert fleet.run(cmd.EnableVpn(cluster="plain")).events == []  # already so


def test_peers_get_the_lowest_free_address_and_a_removed_ones_comes_back(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    for node in ("w0", "w1", "w2"):
        fleet.run(cmd.AddVpnPeer(cluster="edge", node=node, public_key=worker_key()))
    vpn = fleet.state.clusters["edge"].vpn
    assert vpn is not None
    assert [vpn.peers[n].address for n in ("w0", "w1", "w2")] == [
        "10.220.0.2", "10.220.0.3", "10.220.0.4"
    ]  # fmt: skip

    fleet.run(cmd.RemoveNode(cluster="edge", node="w1"))
    assert isinstance(fleet.log[-1], ev.VpnPeerRemoved) and "w1" not in vpn.peers
    fleet.run(cmd.AddVpnPeer(cluster="edge", node="w3", public_key=worker_key()))
    assert vpn.peers["w3"].address == "10.220.0.3"


def test_the_same_join_again_changes_nothing_and_a_new_key_replaces_the_old(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    key = worker_key()
    fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=key))
    assert fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=key)).events == []

    new_key = worker_key()
    decision = fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=new_key))
    assert [type(e) for e in decision.events] == [ev.VpnPeerRemoved, ev.VpnPeerAdded]
    vpn = fleet.state.clusters["edge"].vpn
    assert vpn is not None and vpn.peers["w0"].public_key == new_key
    assert vpn.peers["w0"].address == "10.220.0.2"  # its address stays


@pytest.mark.parametrize(
    ("public_key", "says"),
    [
        ("not a key", "is not a WireGuard public key"),
        ("A" * 43 + "=", "is not a WireGuard public key"),  # all zero: a low-order point
        ("x" * 100_000, "is not a WireGuard public key"),
    ],
)
def test_a_malformed_key_is_refused_and_nothing_appended(
    fleet: Fleet, public_key: str, says: str
) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    before = len(fleet.log)
    with pytest.raises(DomainError, match=says) as refused:
        fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=public_key))
    assert len(str(refused.value)) < 300  # the key is shown shortened, not whole
    assert len(fleet.log) == before


def test_a_key_another_node_has_is_refused(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    key = worker_key()
    fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=key))
    with pytest.raises(DomainError, match="belongs to node 'w0'"):
        fleet.run(cmd.AddVpnPeer(cluster="edge", node="w1", public_key=key))
    server_key = fleet.state.clusters["edge"].vpn.server_public_key  # type: ignore[union-attr]
    with pytest.raises(DomainError, match="the VPN server's own"):
        fleet.run(cmd.AddVpnPeer(cluster="edge", node="w1", public_key=server_key))


def test_a_peer_for_a_cluster_without_vpn_is_refused_with_the_way_out(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="plain"))
    with pytest.raises(DomainError, match="has no VPN; enable it first"):
        fleet.run(cmd.AddVpnPeer(cluster="plain", node="w0", public_key=worker_key()))


@pytest.mark.parametrize(
    ("cidr", "says"),
    [
        ("10.244.0.0/24", "overlaps"),  # inside the pod network
        ("10.96.0.0/16", "overlaps"),  # inside the service network
        ("10.220.0.0/31", "too small"),
        ("10.220.0.1/16", "not a valid CIDR"),
    ],
)
def test_vpn_networks_that_cannot_work_are_refused(fleet: Fleet, cidr: str, says: str) -> None:
    with pytest.raises(DomainError, match=says):
        fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True, vpn_cidr=cidr))
    fleet.run(cmd.CreateCluster(name="plain"))
    with pytest.raises(DomainError, match=says):
        fleet.run(cmd.EnableVpn(cluster="plain", vpn_cidr=cidr))
    assert fleet.state.clusters["plain"].vpn is None


def test_a_full_network_is_refused(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True, vpn_cidr="10.220.0.0/30"))
    fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=worker_key()))
    with pytest.raises(DomainError, match="has no address left"):
        fleet.run(cmd.AddVpnPeer(cluster="edge", node="w1", public_key=worker_key()))


def test_the_vpn_network_cannot_change_under_its_peers(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    with pytest.raises(DomainError, match="cannot change"):
        fleet.run(cmd.EnableVpn(cluster="edge", vpn_cidr="10.221.0.0/16"))


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.integers(min_value=24, max_value=29),
    taken=st.sets(st.integers(min_value=2, max_value=254)),
)
def test_a_free_address_is_in_the_network_and_nobody_elses(prefix: int, taken: set[int]) -> None:
    network = ipaddress.ip_network(f"10.220.0.0/{prefix}")
    used = {str(network.network_address + i) for i in taken}
    found = free_address(str(network), str(network.network_address + 1), used)
    hosts = {str(h) for h in network.hosts()}
    if hosts <= used | {str(network.network_address + 1)}:
        assert found is None
    else:
        assert found in hosts and found not in used and found != str(network.network_address + 1)


def test_the_vpn_server_is_placed_beside_the_ingress_on_a_port_of_its_own(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    fleet.run(cmd.CreateCluster(name="plain"))
    fleet.run(cmd.EnableVpn(cluster="plain"))

    for name in ("edge", "plain"):
        cluster = fleet.state.clusters[name]
        server, ingress = cluster.vpn_server(), cluster.ingress()
        assert server is not None and ingress is not None
        assert (server.role, server.hypervisor) == ("vpn", ingress.hypervisor)
        assert server.ports["vpn"] not in ingress.ports.values()
    for hypervisor in fleet.state.hypervisors.values():  # no port given twice on any
        used = [p for ports in hypervisor.placements.values() for p in ports]
        assert len(used) == len(set(used)), hypervisor.name


def test_deleting_a_vpn_cluster_frees_its_server_port(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    fleet.run(cmd.DeleteCluster(name="edge"))
    assert all(not h.placements for h in fleet.state.hypervisors.values())


def test_no_port_left_for_the_vpn_server_is_refused_and_nothing_appended() -> None:
    fleet = Fleet()
    fleet.hypervisors(public=0)
    fleet.run(cmd.RegisterHypervisor(name="public-0", endpoint="unix:///run/hv/public-0.sock",
                                     role="public", ip_address="192.0.2.1",
                                     port_range=(30000, 30001)))  # fmt: skip
    fleet.run(cmd.CreateCluster(name="plain"))  # its ingress takes both ports
    before = len(fleet.log)
    with pytest.raises(DomainError, match=r"VPN server needs a free port.*30000-30001"):
        fleet.run(cmd.EnableVpn(cluster="plain"))
    assert len(fleet.log) == before
