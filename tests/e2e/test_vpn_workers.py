"""Edge workers over the VPN, on real containerd: two workers each behind a
NAT of its own (sites on the same private range, routers that masquerade
and let nothing in) and one reachable directly join a VPN cluster with
`oneinfra node join`, which brings each one's tunnel up first. From the
control plane's kubectl, logs, exec, port-forward and top reach pods on
the NATed workers; their pods reach each other and a Service across the sites;
a worker cut off is reported, and back when it is back; a removed node's
key is gone from the server."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from oneinfra.local import config
from oneinfra.node import discovery
from oneinfra.node import join as node_join
from oneinfra.node import vpn as node_vpn
from tests.oneinfra.daemon import Daemon

from .fleet import (
    KUBECTL,
    WAIT,
    eventually,
    fleet,
    join,
    kubeconfig,
    kubectl,
    local,
    new_token,
    nodes,
)
from .test_clusters import stop_container
from .test_vpn import served, served_peers
from .test_workers import http_get, webhook_is_called

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e

DIRECT, SITE_A, SITE_B = "w2", "w3", "w4"  # conftest: the last two workers are behind NAT

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web-NODE, labels: {app: web-NODE}}
spec:
  nodeName: NODE
  containers:
  - name: web
    image: docker.io/library/busybox:1.35
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html &&
               echo serving on NODE && exec httpd -f -v -p 8080 -h /www"]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web-NODE}
spec:
  selector: {app: web-NODE}
  ports: [{port: 80, targetPort: 8080}]
"""


def worker_spec(name: str) -> config.WorkerSpec:
    (found,) = [w for w in config.workers(5, behind_nat=2) if w.name == name]
    return found


def opens(netns: str, address: str, port: int) -> bool:
    """Whether a TCP connection from `netns` to address:port is made."""
    attempt = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2)"
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", attempt],
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


CUT = """\
add table ip oneinfra_cut
delete table ip oneinfra_cut
table ip oneinfra_cut {
    chain forward {
        type filter hook forward priority -10; policy accept;
        meta l4proto udp drop
    }
}
"""


def cut_off(site: str, cut: bool) -> None:
    """A site's router drops (or forwards again) every UDP packet: the
    worker's tunnel is cut, its LAN stays up."""
    rules = CUT if cut else "add table ip oneinfra_cut\ndelete table ip oneinfra_cut\n"
    subprocess.run(["nsenter", f"--net=/run/netns/{site}", "nft", "-f", "-"], input=rules,
                   text=True, check=True)  # fmt: skip


def vpn_condition(daemon: Daemon) -> dict[str, str]:
    shown = daemon.json("cluster", "show", "edge-w")
    found: dict[str, str] = next(
        c for c in shown["status"]["conditions"] if c["type"] == "VpnPeersConnected"
    )
    return found


def file_peer_request(found: Any, token: Any, info: Any, public_key: str) -> str:
    """A peer request for node 'intruder' with `public_key`, filed with the
    token as `node join` files it; the daemon's refusal."""
    name = f"oneinfra-vpn-test-{secrets.token_hex(4)}"
    request = node_vpn.signing_request(name, "intruder", public_key, info,
                                       ec.generate_private_key(ec.SECP256R1()))  # fmt: skip
    with node_join.trusted_client(found, token) as client:
        assert client.post(node_join.CSR_URL, json=request).status_code == 201
        for _ in range(120):
            csr = client.get(f"{node_join.CSR_URL}/{name}").json()
            try:
                node_vpn.answer(csr, found.ca_pem, "intruder", info)
            except node_vpn.Denied as denied:
                return str(denied)
            time.sleep(0.5)
    raise AssertionError(f"the peer request {name} was not refused")


def test_workers_behind_two_nats_join_over_the_vpn_and_everything_reaches_them(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, hypervisors = fleet
    created = daemon.json("cluster", "create", "edge-w", "--vpn", "--wait", "--timeout", WAIT,
                          timeout=240)  # fmt: skip
    config_file = kubeconfig(daemon, "edge-w", tmp_path)
    try:
        for worker in (SITE_A, SITE_B, DIRECT):
            endpoint, token, ca_hash = new_token(daemon, "edge-w")
            joined = join(worker, endpoint, token, ca_hash)
            assert joined.returncode == 0, joined.stderr
        everyone = {SITE_A: True, SITE_B: True, DIRECT: True}
        eventually(lambda: nodes(config_file) == everyone, "the three workers Ready")

        # Each registered with its VPN address, granted at join and recorded.
        shown = daemon.json("cluster", "show", "edge-w")
        network = ipaddress.ip_network(shown["vpnCidr"])
        listed = json.loads(kubectl(config_file, "get", "nodes", "-o", "json").stdout)["items"]
        internal = {
            n["metadata"]["name"]: next(a["address"] for a in n["status"]["addresses"]
                                        if a["type"] == "InternalIP")
            for n in listed
        }  # fmt: skip
        assert all(ipaddress.ip_address(a) in network for a in internal.values()), internal
        history = daemon.cli("history", "--cluster", "edge-w").stdout
        for node, address in internal.items():
            assert re.search(rf'VpnPeerAdded .*node="{node}" address="{address}"', history)
        server = eventually(lambda: len(served_peers(hypervisors, created["clusterId"])) == 3
                            and served_peers(hypervisors, created["clusterId"]),
                            "three peers on the VPN server")  # fmt: skip
        assert all(p.latest_handshake > 0 for p in server), server

        # The sites are NATed for real: the same LAN address at both, and
        # nothing outside opens a connection to a worker behind its router.
        a, b = worker_spec(SITE_A), worker_spec(SITE_B)
        assert a.address == b.address and a.router and b.router
        public = config.hypervisors()[0].netns
        assert not opens(public, a.router, 10250)
        assert not opens(public, a.address, 10250)

        manifest = tmp_path / "pods.yaml"
        manifest.write_text("\n---\n".join(PODS.replace("NODE", n) for n in everyone))
        kubectl(config_file, "apply", "-f", str(manifest))
        for node in everyone:
            kubectl(config_file, "wait", "--for=condition=Ready", f"pod/web-{node}",
                    "--timeout=120s")  # fmt: skip

        # Each node's pods routed through its peer: its pod CIDR among the
        # peer's allowed IPs on the server (no VXLAN inside the tunnel).
        pod_cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in listed}
        wanted = {tuple(sorted([f"{internal[n]}/32", pod_cidrs[n]])) for n in everyone}
        eventually(lambda: {p.allowed_ips for p in served_peers(hypervisors, created["clusterId"])}
                   == wanted, "each peer routing its node's pod CIDR", seconds=60)  # fmt: skip

        # logs and exec, from the control plane, on each NATed worker's pod.
        for node in (SITE_A, SITE_B):
            logs = eventually(lambda n=node: kubectl(config_file, "logs", f"web-{n}",
                                                     check=False).stdout,
                              f"kubectl logs on {node}", seconds=60)  # fmt: skip
            assert f"serving on {node}" in logs
            assert kubectl(config_file, "exec", f"web-{node}", "--", "hostname").stdout.strip() \
                == f"web-{node}"  # fmt: skip

        # Pod to pod between the two sites, and a Service whose endpoint is
        # at the other site, by its DNS name.
        def fetch(source: str, target: str) -> str:
            request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {target}"
            return str(kubectl(config_file, "exec", f"web-{source}", "--", "sh", "-c", request,
                               check=False).stdout)  # fmt: skip

        pods = json.loads(kubectl(config_file, "get", "pods", "-o", "json").stdout)["items"]
        ip_of = {p["spec"]["nodeName"]: p["status"]["podIP"] for p in pods}
        assert f"web-{SITE_B}" in eventually(lambda: fetch(SITE_A, f"{ip_of[SITE_B]} 8080"),
                                             "pod to pod across the sites")  # fmt: skip
        assert f"web-{SITE_A}" in eventually(
            lambda: fetch(SITE_B, f"web-{SITE_A}.default.svc.cluster.local 80"),
            "a Service at the other site, by name",
        )

        # port-forward to a NATed worker's pod.
        forward = subprocess.Popen(
            [KUBECTL, "--kubeconfig", str(config_file), "port-forward", f"pod/web-{SITE_A}",
             ":8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert forward.stdout is not None
            port = re.search(r"127\.0\.0\.1:(\d+)", forward.stdout.readline())
            assert port
            forwarded = http_get(f"http://127.0.0.1:{port[1]}/")
            assert forwarded is not None and forwarded.text.strip() == f"web-{SITE_A}"
        finally:
            forward.terminate()
            forward.wait(10)

        # A malformed key, or one another node has, filed as a joining worker
        # files it: refused in the CSR with why, nothing appended.
        endpoint, token_text, ca_hash = new_token(daemon, "edge-w")
        bootstrap = discovery.parse_token(token_text)
        found = node_join.discover(endpoint, bootstrap, [ca_hash], 60)
        info = node_join.cluster_vpn(found, bootstrap)
        assert info is not None
        taken = next(p.public_key for p in server if f"{internal[SITE_A]}/32" in p.allowed_ips)
        before = daemon.cli("history", "--cluster", "edge-w").stdout.count("VpnPeer")
        for public_key, said in (("not-a-key", "is not a WireGuard public key"),
                                 (taken, "belongs to node")):  # fmt: skip
            refusal = file_peer_request(found, bootstrap, info, public_key)
            assert said in refusal, refusal
        assert daemon.cli("history", "--cluster", "edge-w").stdout.count("VpnPeer") == before

        # An admission webhook served by a pod on a NATed worker is called.
        webhook_is_called(config_file, tmp_path, SITE_B)

        # kubectl top: metrics-server, wherever it runs, scrapes the NATed
        # kubelets through the tunnel, and the API server reaches it.
        for node in (SITE_A, SITE_B):
            top = eventually(lambda n=node: kubectl(config_file, "top", "pod", f"web-{n}",
                                                    "--no-headers", check=False).stdout,
                             f"kubectl top pod on {node}", seconds=180)  # fmt: skip
            assert re.match(rf"web-{node}\s+\d+m\s+\d+Mi", top), top
            top = kubectl(config_file, "top", "node", node, "--no-headers").stdout
            assert re.match(rf"{node}\s+\d+m\s+\d+%\s+\d+Mi", top), top

        # The daemon restarted: the tunnel as it was (same server, same peers
        # and routes, handshakes going on), nothing recorded of the VPN.
        peers_before = {p.public_key: p for p in served_peers(hypervisors, created["clusterId"])}
        server_before = served(hypervisors, created["clusterId"])
        peer_events = daemon.cli("history", "--cluster", "edge-w").stdout.count("VpnPeer")
        daemon.stop()
        daemon.start()
        time.sleep(12)  # two resyncs of the restarted daemon
        after = {p.public_key: p for p in served_peers(hypervisors, created["clusterId"])}
        assert served(hypervisors, created["clusterId"]) == server_before
        assert {k: p.allowed_ips for k, p in after.items()} == {
            k: p.allowed_ips for k, p in peers_before.items()}  # fmt: skip
        assert all(after[k].latest_handshake >= p.latest_handshake
                   for k, p in peers_before.items())  # fmt: skip
        assert daemon.cli("history", "--cluster", "edge-w").stdout.count("VpnPeer") == peer_events
        assert f"web-{SITE_B}" in fetch(SITE_A, f"{ip_of[SITE_B]} 8080")

        # A worker cut off (its router drops the tunnel's packets): the
        # cluster's VpnPeersConnected condition names it, and it clears once
        # the worker is back.
        site = worker_spec(SITE_A).site
        cut_off(site, True)
        try:
            said = eventually(lambda: (c := vpn_condition(daemon))["status"] == "False" and c,
                              f"{SITE_A} reported cut off", seconds=180)  # fmt: skip
            assert f"{SITE_A}: nothing heard for" in said["message"], said
            assert SITE_B not in said["message"] and said["reason"] == "2 of 3 peers", said
        finally:
            cut_off(site, False)
        eventually(lambda: vpn_condition(daemon)["status"] == "True", f"{SITE_A} heard again",
                   seconds=120)  # fmt: skip

        # The VPN server's container killed: back with its peers, which shake
        # hands with it again, and the sites reach each other again.
        hv, container_id, _ = served(hypervisors, created["clusterId"]) or ("", "", "")
        killed_at = time.time()
        stop_container(hypervisors, hv, container_id)
        eventually(lambda: (peers := served_peers(hypervisors, created["clusterId"]))
                   and len(peers) == 3 and all(p.latest_handshake >= killed_at for p in peers),
                   "the peers back on a new VPN server", seconds=180)  # fmt: skip
        assert f"web-{SITE_B}" in eventually(lambda: fetch(SITE_A, f"{ip_of[SITE_B]} 8080"),
                                             "pod to pod again")  # fmt: skip

        # A removed node's key leaves the server at once.
        removed_key = next(p.public_key for p in server
                           if f"{internal[SITE_B]}/32" in p.allowed_ips)  # fmt: skip
        left = local("leave", SITE_B)
        assert left.returncode == 0, left.stderr
        daemon.cli("node", "remove", "edge-w", SITE_B)
        eventually(lambda: removed_key not in {p.public_key for p in
                                               served_peers(hypervisors, created["clusterId"])},
                   "the removed node's peer gone from the server", seconds=60)  # fmt: skip
        assert re.search(rf'VpnPeerRemoved .*node="{SITE_B}"',
                         daemon.cli("history", "--cluster", "edge-w").stdout)  # fmt: skip
    finally:
        for worker in (SITE_A, SITE_B, DIRECT):
            local("leave", worker)
        # Waited for: the next module's daemon places its clusters on the same ports.
        daemon.cli("cluster", "delete", "edge-w", "--wait", "--timeout", WAIT, timeout=240,
                   check=False)  # fmt: skip
