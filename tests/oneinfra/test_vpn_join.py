"""A worker joining over its cluster's VPN: the ConfigMap it reads, the
request that registers its public key, the daemon's check of it, the
certificate that grants the address, and the tunnel's script."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from oneinfra.errors import DomainError, JoinError
from oneinfra.local import config
from oneinfra.model import commands as cmd
from oneinfra.node import vpn
from oneinfra.pki import wireguard
from oneinfra.pki.csr import PeerRequest, peer_node
from oneinfra.render import vpn as render_vpn
from oneinfra.render.bootstrap import vpn_info

from .harness import Fleet

SERVER_KEY = wireguard.public_key(wireguard.new_private_key(os.urandom))


def worker_key() -> str:
    return wireguard.public_key(wireguard.new_private_key(os.urandom))


def info() -> vpn.VpnInfo:
    return vpn.vpn_info({
        "endpoint": "192.0.2.1:30001", "serverPublicKey": SERVER_KEY,
        "serverAddress": "10.220.0.1", "network": "10.220.0.0/16",
        "peerSigner": "oneinfra.io/vpn-peer", "publicKeyAnnotation": "vpn.oneinfra.io/public-key",
    })  # fmt: skip


def filed(
    node: str,
    by: str = "system:bootstrap:abcdef",
    groups: tuple[str, ...] = ("system:bootstrappers", "system:authenticated"),
    **changes: Any,
) -> PeerRequest:
    """A request as the API server hands it to the daemon: what the worker
    filed, with who filed it."""
    key = ec.generate_private_key(ec.SECP256R1())
    obj = vpn.signing_request("oneinfra-vpn-x", node, worker_key(), info(), key)
    fields = {
        "name": "oneinfra-vpn-x",
        "request_pem": base64.b64decode(obj["spec"]["request"]),
        "username": by,
        "groups": list(groups),
        "usages": obj["spec"]["usages"],
        "public_key": obj["metadata"]["annotations"]["vpn.oneinfra.io/public-key"],
    }
    return PeerRequest(**{**fields, **changes})


def test_the_configmap_the_cluster_publishes_is_what_the_worker_reads() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    cluster = fleet.state.clusters["edge"]
    (configmap, *_) = vpn_info(cluster, "192.0.2.1:30001")
    read = vpn.vpn_info(configmap["data"])
    assert cluster.vpn is not None
    assert (read.server_public_key, read.server_address, read.network) == (
        cluster.vpn.server_public_key, "10.220.0.1", "10.220.0.0/16")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"serverPublicKey": "not-a-key"}, "is not one"),
        ({"serverAddress": "10.99.0.1"}, "is not in its network"),
        ({"network": "10.220.0.0/33"}, "oneinfra-vpn ConfigMap"),
        ({"endpoint": ""}, "lacks endpoint"),
    ],
)
def test_a_configmap_that_says_something_else_is_refused(change: dict[str, str], said: str) -> None:
    data = {
        "endpoint": "192.0.2.1:30001", "serverPublicKey": SERVER_KEY,
        "serverAddress": "10.220.0.1", "network": "10.220.0.0/16",
        "peerSigner": "oneinfra.io/vpn-peer", "publicKeyAnnotation": "vpn.oneinfra.io/public-key",
    }  # fmt: skip
    with pytest.raises(JoinError, match=said):
        vpn.vpn_info({**data, **change})


def test_a_joining_workers_request_names_its_node_and_key() -> None:
    found = peer_node(filed("w0"))
    assert not isinstance(found, str)
    assert found[0] == "w0" and isinstance(found[1], ec.EllipticCurvePublicKey)
    # A node may ask for itself (a new key), not for another.
    assert not isinstance(
        peer_node(filed("w0", by="system:node:w0", groups=("system:nodes",))), str
    )
    refused = peer_node(filed("w1", by="system:node:w0", groups=("system:nodes",)))
    assert isinstance(refused, str) and "neither a joining worker nor node w1" in refused


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"usages": ["client auth"]}, "not a VPN peer's"),
        ({"public_key": ""}, "no WireGuard public key"),
        ({"request_pem": b"garbage"}, "not a PEM certificate request"),
        ({"username": "alice", "groups": ["system:authenticated"]}, "neither a joining worker"),
    ],
)
def test_a_request_that_is_not_a_peers_is_refused_with_why(
    changes: dict[str, Any], said: str
) -> None:
    refusal = peer_node(filed("w0", **changes))
    assert isinstance(refusal, str) and said in refusal


def certify(fleet: Fleet, node: str, public_key: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    decision = fleet.run(cmd.AddVpnPeer(cluster="edge", node=node, public_key=public_key,
                                        certify_key=pem))  # fmt: skip
    assert decision.reply is not None
    return decision.reply, key


def answered(certificate: str) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Approved", "status": "True"}],
                       "certificate": base64.b64encode(certificate.encode()).decode()}}  # fmt: skip


def test_the_peer_certificate_grants_the_address_and_no_tls_identity() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    ca = fleet.created("edge").pki.ca.certificate
    key = worker_key()
    certificate, _ = certify(fleet, "w0", key)
    assert vpn.answer(answered(certificate), ca, "w0", info()) == "10.220.0.2"
    usages = x509.load_pem_x509_certificate(certificate.encode()).extensions
    eku = usages.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH not in eku and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    # The same join again: the same address, certified again, nothing appended.
    before = len(fleet.log)
    again, _ = certify(fleet, "w0", key)
    assert vpn.answer(answered(again), ca, "w0", info()) == "10.220.0.2"
    assert len(fleet.log) == before
    with pytest.raises(JoinError, match="not node w1"):
        vpn.answer(answered(certificate), ca, "w1", info())


def test_a_certificate_of_another_ca_or_a_denial_is_not_an_address() -> None:
    fleet, other = Fleet(), Fleet()
    for f in (fleet, other):
        f.hypervisors()
        f.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    foreign, _ = certify(other, "w0", worker_key())
    with pytest.raises(JoinError, match="not the cluster CA's"):
        vpn.answer(answered(foreign), fleet.created("edge").pki.ca.certificate, "w0", info())
    denied = {"status": {"conditions": [{"type": "Denied", "status": "True",
                                         "message": "oneinfra: that key is taken"}]}}  # fmt: skip
    with pytest.raises(vpn.Denied, match="that key is taken"):
        vpn.answer(denied, "", "w0", info())
    assert vpn.answer({"status": {}}, "", "w0", info()) is None  # not answered yet


def test_a_key_to_certify_that_is_not_one_is_refused_and_nothing_appended() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    before = len(fleet.log)
    with pytest.raises(DomainError, match="not a PEM public key"):
        fleet.run(cmd.AddVpnPeer(cluster="edge", node="w0", public_key=worker_key(),
                                 certify_key="nonsense"))  # fmt: skip
    assert len(fleet.log) == before


def test_the_tunnel_routes_the_vpn_network_to_the_server_and_keeps_nat_open() -> None:
    with_pods = vpn.VpnInfo(**{**info().__dict__, "pod_network": "10.244.0.0/16"})
    script = vpn.tunnel_script(with_pods, "10.220.0.7", Path("/etc/kubernetes/oneinfra-vpn/k"))
    assert (f"peer {SERVER_KEY} endpoint 192.0.2.1:30001 "
            "allowed-ips 10.220.0.0/16,10.244.0.0/16") in script  # fmt: skip
    assert "ip route replace 10.244.0.0/16 dev oivpn0" in script
    assert "persistent-keepalive 25" in script
    assert "ip addr add 10.220.0.7/16 dev oivpn0" in script
    assert "wireguard-go oivpn0" in script  # where the kernel has no WireGuard


def test_the_local_workers_and_the_node_name_the_tunnel_and_links_alike() -> None:
    from oneinfra.render.addons import NODE_LINKS

    assert config.VPN_INTERFACE == render_vpn.WORKER_INTERFACE == vpn.INTERFACE
    assert config.NODE_LINKS == NODE_LINKS


def test_local_workers_behind_nat_share_a_lan_range_each_behind_its_own_router() -> None:
    w0, w1, w2 = config.workers(3, behind_nat=2)
    assert w0.router is None and w0.address.startswith(config.SUBNET_PREFIX)
    assert w1.address == w2.address  # overlapping ranges, as sites have
    assert w1.router is not None and w2.router is not None and w1.router != w2.router
    assert w1.site != w2.site


def test_a_peer_without_a_recent_handshake_is_reported_with_why() -> None:
    from oneinfra.daemon.messages import peer_view, stale_peers
    from oneinfra.reconcile.board import ClusterStatus
    from oneinfra.runtime.wgctl import ServedPeer

    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    keys = {node: worker_key() for node in ("fresh", "gone", "never", "new")}
    for node, key in keys.items():
        fleet.run(cmd.AddVpnPeer(cluster="edge", node=node, public_key=key))
    cluster = fleet.state.clusters["edge"]
    now = 1_800_000_000
    status = ClusterStatus("edge", cluster.cluster_id, vpn_peers={
        keys["fresh"]: ServedPeer(keys["fresh"], (), "192.0.2.9:4242", now - 30, 100, 200),
        keys["gone"]: ServedPeer(keys["gone"], (), "192.0.2.8:4242", now - 900),
        keys["never"]: ServedPeer(keys["never"], (), "(none)", 0),
    })  # fmt: skip
    assert stale_peers(cluster, status, now) == [
        "gone: no handshake for 900 s (its worker is down, or cut off)",
        "never: never connected (does it reach the VPN's endpoint?)",
        "new: not on the server yet",
    ]
    shown = peer_view(cluster, status, "fresh")
    assert (shown["vpn_address"], shown["vpn_endpoint"], shown["vpn_received_bytes"]) == (
        "10.220.0.2", "192.0.2.9:4242", 100)  # fmt: skip
    assert peer_view(cluster, status, "not-a-peer") == {}
    assert stale_peers(cluster, ClusterStatus("edge", cluster.cluster_id), now) == []  # not asked


def test_a_peer_the_server_hears_nothing_from_is_reported_before_its_handshake_ages() -> None:
    from oneinfra.daemon.messages import stale_peers
    from oneinfra.reconcile.board import StatusBoard
    from oneinfra.runtime.wgctl import ServedPeer

    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="edge", vpn_enabled=True))
    keys = {node: worker_key() for node in ("talking", "cut")}
    for node, key in keys.items():
        fleet.run(cmd.AddVpnPeer(cluster="edge", node=node, public_key=key))
    cluster = fleet.state.clusters["edge"]
    board = StatusBoard()
    start = 1_800_000_000
    for tick in range(5):  # passes 30 s apart: keepalives reach the server from one only
        now = start + 30 * tick
        board.vpn_observed("edge", cluster.cluster_id, [
            ServedPeer(keys["talking"], (), "192.0.2.9:4242", start, 1000 + 32 * tick),
            ServedPeer(keys["cut"], (), "192.0.2.8:4242", start, 1000),
        ], now)  # fmt: skip
    status = board.clusters[cluster.cluster_id]
    assert stale_peers(cluster, status, start + 120) == [
        "cut: nothing heard for 120 s (its worker is down, or cut off)"
    ]
    assert stale_peers(cluster, status, start + 60) == []  # a missed keepalive or two is not news


@given(st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_a_peer_is_heard_from_since_its_count_of_bytes_last_moved(counts: list[int]) -> None:
    from oneinfra.reconcile.board import heard
    from oneinfra.runtime.wgctl import ServedPeer

    since: dict[str, tuple[int, float]] = {}
    for tick, count in enumerate(counts):
        since = heard(since, [ServedPeer("k", (), "(none)", 0, count)], float(tick))
    moved = max(i for i, c in enumerate(counts) if i == 0 or c != counts[i - 1])
    assert since == {"k": (counts[-1], float(moved))}


@pytest.mark.parametrize(
    ("status", "found"), [(403, None), (404, None), (200, "10.220.0.0/16"), (500, JoinError)]
)
def test_a_cluster_without_a_vpn_is_joined_without_one(
    monkeypatch: pytest.MonkeyPatch, status: int, found: object
) -> None:
    """Without the VPN there is neither the ConfigMap nor the Role that lets
    joining workers read it: 403 as well as 404 mean no VPN."""
    import httpx

    from oneinfra.node import join
    from oneinfra.node.discovery import Discovered, Token

    data = {
        "endpoint": "192.0.2.1:30001", "serverPublicKey": SERVER_KEY,
        "serverAddress": "10.220.0.1", "network": "10.220.0.0/16",
        "peerSigner": "oneinfra.io/vpn-peer", "publicKeyAnnotation": "vpn.oneinfra.io/public-key",
    }  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == join.VPN_INFO_URL
        return httpx.Response(status, json={"data": data} if status == 200 else {})

    monkeypatch.setattr(join, "trusted_client", lambda *_: httpx.Client(
        transport=httpx.MockTransport(answer), base_url="https://192.0.2.1:30000"))  # fmt: skip
    where, token = Discovered("https://192.0.2.1:30000", ""), Token("abcdef", "0123456789abcdef")
    if found is JoinError:
        with pytest.raises(JoinError, match="answered 500"):
            join.cluster_vpn(where, token)
    else:
        info = join.cluster_vpn(where, token)
        assert (info.network if info else None) == found
