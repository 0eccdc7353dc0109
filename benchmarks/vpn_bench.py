"""Edge workers over the VPN, on the local hypervisors with two workers each
behind a NAT of its own (oneinfra local up --behind-nat 2; as root):

- `node join` (over the VPN: key, peer request, tunnel, kubelet) to Ready;
- pod-to-pod throughput and latency between the two NATed sites, through
  the cluster's VPN server (the hub), against a bare WireGuard tunnel of the
  same kind (wireguard-go, as this kernel has no WireGuard) between the same
  two workers' namespaces through a bare hub on the bridge, in the same run,
  with the same tools (busybox wget from busybox httpd, busybox ping);
- 50 peers on one cluster's VPN: registered as workers register
  (node/join.register_peer, with a join token), each a live wireguard-go
  interface with keepalive; then the VPN server's CPU while steady.

    .venv/bin/python benchmarks/vpn_bench.py [--runs 5] [--size-mb 200] [--peers 50]
        [--steady 60] [--peers-only]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.join_bench import (
    add_hypervisors,
    api_client,
    cpu_seconds,
    emit,
    local_up,
    oneinfra,
    ready,
)
from benchmarks.time_to_ready import start_daemon
from oneinfra.local import config
from oneinfra.node import discovery, join
from oneinfra.pki import wireguard

SITES = ("w0", "w1")  # both behind NAT
HUB_NETNS, HUB_VETH, HUB_ADDRESS, HUB_PORT = "oibench-hub", "oib-hub", "10.213.0.60", 51999
BARE_NETWORK = "10.199.0"
KUBECTL = str(Path(sys.executable).parent / "kubectl")  # scripts/lib puts it in the venv
POD = """
apiVersion: v1
kind: Pod
metadata: {{name: bench-{node}}}
spec:
  nodeName: {node}
  containers:
  - name: bench
    image: docker.io/library/busybox:1.35
    command: ["sh", "-c", "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count={size}
               && exec httpd -f -p 8080 -h /www"]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}  # httpd: after dd
"""


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout + done.stderr


def worker(name: str) -> config.WorkerSpec:
    (found,) = [w for w in config.workers(len(SITES), len(SITES)) if w.name == name]
    return found


def in_worker(name: str, *args: str) -> list[str]:
    spec = worker(name)
    return ["nsenter", f"--net=/run/netns/{spec.netns}", f"--mount={spec.mount_namespace}", *args]


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    return sh(KUBECTL, "--kubeconfig", str(kubeconfig), *args, check=check)


def real_seconds(output: str) -> float:
    """busybox time's `real 0m 1.23s`."""
    found = re.search(r"real\s+(\d+)m\s*([\d.]+)s", output)
    if found is None:
        raise RuntimeError(f"no time in {output!r}")
    return int(found[1]) * 60 + float(found[2])


def ping_ms(output: str) -> float:
    found = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", output)
    if found is None:
        raise RuntimeError(f"no round trip in {output!r}")
    return float(found[1])


def bare_hub_up(keys: dict[str, tuple[str, str]]) -> None:
    """wireguard-go between the two workers' namespaces through a hub of
    its own on the bridge: the path the cluster's VPN takes, without it."""
    hub_private, hub_public = keys["hub"]
    sh("ip", "netns", "add", HUB_NETNS)
    sh("ip", "link", "add", HUB_VETH, "type", "veth", "peer", "name", "eth0", "netns", HUB_NETNS)
    sh("ip", "link", "set", HUB_VETH, "master", config.BRIDGE, "up")
    hub = ["nsenter", f"--net=/run/netns/{HUB_NETNS}"]
    sh(*hub, "ip", "addr", "add", f"{HUB_ADDRESS}/24", "dev", "eth0")
    sh(*hub, "ip", "link", "set", "eth0", "up")
    sh(*hub, "ip", "route", "replace", "default", "via", config.HOST_ADDRESS)
    sh(*hub, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh(*hub, "wireguard-go", "oibench-hub")
    key_file = Path(tempfile.mkstemp()[1])
    key_file.write_text(hub_private)
    peers: list[str] = []
    for i, site in enumerate(SITES):
        peers += ["peer", keys[site][1], "allowed-ips", f"{BARE_NETWORK}.{2 + i}/32"]
    sh(*hub, "wg", "set", "oibench-hub", "listen-port", str(HUB_PORT), "private-key",
       str(key_file), *peers)  # fmt: skip
    sh(*hub, "ip", "addr", "add", f"{BARE_NETWORK}.1/24", "dev", "oibench-hub")
    sh(*hub, "ip", "link", "set", "oibench-hub", "mtu", "1420", "up")
    for i, site in enumerate(SITES):
        interface = f"oibench-{site}"
        key_file.write_text(keys[site][0])
        sh(*in_worker(site, "wireguard-go", interface))
        sh(*in_worker(site, "wg", "set", interface, "private-key", str(key_file), "peer",
                      hub_public, "endpoint", f"{HUB_ADDRESS}:{HUB_PORT}", "allowed-ips",
                      f"{BARE_NETWORK}.0/24", "persistent-keepalive", "25"))  # fmt: skip
        sh(*in_worker(site, "ip", "addr", "add", f"{BARE_NETWORK}.{2 + i}/24", "dev", interface))
        sh(*in_worker(site, "ip", "link", "set", interface, "mtu", "1420", "up"))
    key_file.unlink()


def bare_hub_down() -> None:
    for site in SITES:
        sh(*in_worker(site, "ip", "link", "del", f"oibench-{site}"), check=False)
    sh("ip", "-n", HUB_NETNS, "link", "del", "oibench-hub", check=False)  # wireguard-go ends
    sh("ip", "link", "del", HUB_VETH, check=False)
    sh("ip", "netns", "del", HUB_NETNS, check=False)


def new_keys() -> tuple[str, str]:
    private = wireguard.new_private_key(os.urandom)
    return wireguard.encode(private), wireguard.public_key(private)


def through_bare(size_mb: int, runs: int) -> tuple[list[float], list[float]]:
    """Throughput (MB/s) and latency (ms) from w0 to w1 over the bare tunnel."""
    www = worker(SITES[1]).root / "bench-www"
    www.mkdir(parents=True, exist_ok=True)
    sh("dd", "if=/dev/zero", f"of={www / 'big'}", "bs=1048576", f"count={size_mb}")
    server = subprocess.Popen(in_worker(SITES[1], "busybox", "httpd", "-f", "-p",
                                        f"{BARE_NETWORK}.3:8080", "-h", str(www)))  # fmt: skip
    try:
        time.sleep(0.5)
        rates, latencies = [], []
        for _ in range(runs):
            took = real_seconds(sh(*in_worker(SITES[0], "busybox", "time", "busybox", "wget",
                                              "-q", "-O", "/dev/null",
                                              f"http://{BARE_NETWORK}.3:8080/big")))  # fmt: skip
            rates.append(size_mb / took)
            latencies.append(ping_ms(sh(*in_worker(SITES[0], "busybox", "ping", "-c", "20",
                                                   "-i", "0.2", f"{BARE_NETWORK}.3"))))  # fmt: skip
        return rates, latencies
    finally:
        server.terminate()
        server.wait(10)


def through_pods(kubeconfig: Path, size_mb: int, runs: int) -> tuple[list[float], list[float]]:
    """The same, pod on w0 to pod on w1, through the cluster's VPN."""
    manifest = "\n---\n".join(POD.format(node=n, size=size_mb) for n in SITES)
    path = kubeconfig.parent / "bench-pods.yaml"
    path.write_text(manifest)
    kubectl(kubeconfig, "apply", "-f", str(path))
    for node in SITES:
        try:
            kubectl(kubeconfig, "wait", "--for=condition=Ready", f"pod/bench-{node}",
                    "--timeout=300s")  # fmt: skip
        except RuntimeError:
            print(kubectl(kubeconfig, "describe", "pod", f"bench-{node}", check=False),
                  file=sys.stderr)  # fmt: skip
            raise
    target = kubectl(kubeconfig, "get", "pod", f"bench-{SITES[1]}", "-o",
                     "jsonpath={.status.podIP}")  # fmt: skip
    source = f"bench-{SITES[0]}"
    rates, latencies = [], []
    for _ in range(runs):
        took = real_seconds(kubectl(kubeconfig, "exec", source, "--", "busybox", "time", "wget",
                                    "-q",
                                    "-O", "/dev/null", f"http://{target}:8080/big"))  # fmt: skip
        rates.append(size_mb / took)
        latencies.append(ping_ms(kubectl(kubeconfig, "exec", source, "--", "busybox", "ping",
                                         "-c", "20",
                                         "-i", "0.2", target)))  # fmt: skip
    return rates, latencies


def vpn_server_pid() -> int:
    """The VPN server's wireguard-go (the only cluster's): the one on wg0,
    where workers' are on oivpn0 and the bare tunnel's on oibench-*."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command[0].endswith(b"wireguard-go") and command[1:2] == [b"wg0"]:
            return int(proc.name)
    raise RuntimeError("no wireguard-go of the cluster's VPN server runs")


def many_peers(socket: Path, count: int, steady: float) -> None:
    """`count` peers registered as workers do, each a live interface with
    keepalive in a namespace of its own workers' site (w0's); the server's CPU."""
    words = oneinfra(socket, "cluster", "join-command", "bench").splitlines()[0].split()
    endpoint, token = words[3], discovery.parse_token(words[5])
    found = join.discover(endpoint, token, [words[7]], 60)
    info = join.cluster_vpn(found, token)
    assert info is not None
    started = time.monotonic()
    interfaces: list[tuple[str, str]] = []
    key_dir = Path(tempfile.mkdtemp(prefix="oneinfra-vpn-bench-"))
    try:
        for i in range(count):
            peer = join.register_peer(found, token, f"peer-{i}", info, 60)
            interface = f"oibp{i}"
            key = key_dir / interface
            key.write_text(wireguard.encode(peer.private_key))
            netns = f"oibench-p{i}"
            sh("ip", "netns", "add", netns)
            interfaces.append((netns, interface))
            inside = ["nsenter", f"--net=/run/netns/{netns}"]
            # Each peer a machine behind w0's router: its LAN, its NAT.
            sh("ip", "link", "add", f"oibv{i}", "type", "veth", "peer", "name", "eth0",
               "netns", netns)  # fmt: skip
            sh("ip", "link", "set", f"oibv{i}", "netns", worker(SITES[0]).site)
            site = ["nsenter", f"--net=/run/netns/{worker(SITES[0]).site}"]
            sh(*site, "ip", "addr", "add", f"172.31.{i}.1/24", "dev", f"oibv{i}")
            sh(*site, "ip", "link", "set", f"oibv{i}", "up")
            sh(*site, "nft", "add", "rule", "ip", "oneinfra_site", "forward", "iifname",
               f"oibv{i}", "accept")  # fmt: skip
            sh(*inside, "ip", "addr", "add", f"172.31.{i}.2/24", "dev", "eth0")
            sh(*inside, "ip", "link", "set", "eth0", "up")
            sh(*inside, "ip", "route", "add", "default", "via", f"172.31.{i}.1")
            sh(*inside, "wireguard-go", interface)
            sh(*inside, "wg", "set", interface, "private-key", str(key), "peer",
               info.server_public_key, "endpoint", info.endpoint, "allowed-ips", info.network,
               "persistent-keepalive", "25")  # fmt: skip
            sh(*inside, "ip", "addr", "add", f"{peer.address}/16", "dev", interface)
            sh(*inside, "ip", "link", "set", interface, "up")
            sh(*inside, "ping", "-c", "1", "-W", "5", info.server_address, check=False)
        emit("vpn_peers_joined", time.monotonic() - started, "s", peers=count)
        time.sleep(30)  # every peer's first handshake and keepalive under way
        pid = vpn_server_pid()
        shaken = sh("nsenter", "-t", str(pid), "-n", "-m", "wg", "show", "wg0", "latest-handshakes")
        live = sum(1 for line in shaken.splitlines() if line.split()[-1] != "0")
        emit("vpn_peers_with_a_handshake", live, "peers", registered=count + len(SITES))
        before, at = cpu_seconds(pid), time.monotonic()
        time.sleep(steady)
        used = cpu_seconds(pid) - before
        emit("vpn_server_cpu_steady", used / (time.monotonic() - at) * 100, "percent-of-a-core",
             peers=count + len(SITES), seconds=steady)  # fmt: skip
    finally:
        for netns, interface in interfaces:
            sh("ip", "-n", netns, "link", "del", interface, check=False)  # wireguard-go ends
            sh("ip", "netns", "del", netns, check=False)


def network_figures(kubeconfig: Path, size_mb: int, runs: int) -> None:
    """Ours and the bare tunnel's, side by side in one run."""
    keys = {name: new_keys() for name in ("hub", *SITES)}
    try:
        bare_hub_up(keys)
        pod_rates, pod_latencies = through_pods(kubeconfig, size_mb, runs)
        bare_rates, bare_latencies = through_bare(size_mb, runs)
    finally:
        bare_hub_down()
    ours, bare = statistics.median(pod_rates), statistics.median(bare_rates)
    emit("pod_to_pod_across_nats_throughput", ours, "MB/s",
         runs=[round(r, 1) for r in pod_rates])  # fmt: skip
    emit("bare_wireguard_go_throughput", bare, "MB/s",
         runs=[round(r, 1) for r in bare_rates])  # fmt: skip
    emit("pod_to_pod_over_bare_throughput", ours / bare, "ratio")
    ours, bare = statistics.median(pod_latencies), statistics.median(bare_latencies)
    emit("pod_to_pod_across_nats_latency", ours, "ms")
    emit("bare_wireguard_go_latency", bare, "ms")
    emit("pod_to_pod_over_bare_latency", ours / bare, "ratio")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--peers-only", action="store_true", help="only the many peers' part")
    args = parser.parse_args()
    machines = local_up("--workers", str(len(SITES)), "--behind-nat", str(len(SITES)))
    with tempfile.TemporaryDirectory(prefix="oneinfra-vpn-bench-") as tmp:
        root = Path(tmp)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root)
        try:
            add_hypervisors(socket, machines)
            oneinfra(socket, "cluster", "create", "bench", "--vpn", "--wait", "--timeout", "5m")
            kubeconfig = root / "admin.conf"
            kubeconfig.write_text(oneinfra(socket, "cluster", "kubeconfig", "bench"))
            client = api_client(kubeconfig.read_text())

            def timed_join(node: str) -> float:
                words = oneinfra(socket, "cluster", "join-command", "bench").splitlines()[0]
                endpoint, token, ca_hash = words.split()[3], words.split()[5], words.split()[7]
                started = time.monotonic()
                oneinfra(socket, "local", "join", node, endpoint, "--token", token,
                         "--discovery-token-ca-cert-hash", ca_hash)  # fmt: skip
                while not ready(client, node):
                    time.sleep(0.05)
                return time.monotonic() - started

            joins = []
            for _ in range(0 if args.peers_only else args.runs):
                joins.append(timed_join(SITES[0]))
                oneinfra(socket, "local", "leave", SITES[0])
                oneinfra(socket, "node", "remove", "bench", SITES[0])
            if joins:
                emit("node_join_over_vpn_to_ready", statistics.median(joins), "s",
                     runs=[round(t, 2) for t in joins])  # fmt: skip
            for node in SITES:
                timed_join(node)

            if not args.peers_only:
                network_figures(kubeconfig, args.size_mb, args.runs)
            many_peers(socket, args.peers, args.steady)
            for node in SITES:
                oneinfra(socket, "local", "leave", node)
            oneinfra(socket, "cluster", "delete", "bench", "--wait", "--timeout", "5m")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
