"""A cluster's VPN server: WireGuard in a pod with a network namespace of
its own on the ingress's hypervisor, its UDP port mapped from the host.

Of its own, because every cluster's VPN may use the same network (the
default is one for all) and a route or an interface on the hypervisor's
host network would serve one cluster only. The kernel's WireGuard where the
host has it, else wireguard-go (userspace, on /dev/net/tun): the container
finds out as it starts. Its files are the interface's key and address; its
peers are not files but applied live by the reconciler (`wg set`, see
reconcile/vpn.py), so that a node joining or leaving restarts nothing.
"""

from __future__ import annotations

import ipaddress

from ..model.state import Cluster, Component
from .pods import (
    DATA_DIR,
    ContainerSpec,
    File,
    Mount,
    Network,
    PodSpec,
    PortMapping,
    component_directory,
    pod,
)

IMAGE = "docker.io/oneinfra/wireguard:0.0.20220316"  # wireguard-go's version, with wg and ip
INTERFACE = "wg0"
# A worker's end: not wg0, which a worker may have a tunnel of its own by.
WORKER_INTERFACE = "oivpn0"
LISTEN_PORT = 51820  # inside the pod; the host's port is the one placed
MTU = 1420  # WireGuard's usual: 1500 less its overhead over IPv6
CONFIG_DIRECTORY = "/etc/wireguard"
CONTAINER = "wireguard"  # the server's container: `wg` runs in it
PORT = "vpn"  # the component's port name


def start_script(address: str, prefix: int, pod_cidr: str) -> str:
    """The interface, kernel or userspace, then its key, port and address,
    and the cluster's pod network routed into it (each node's part is its
    peer's allowed IPs); the script stays as long as the interface is served."""
    return "\n".join(
        [
            "set -eu",
            f"if ip link add {INTERFACE} type wireguard 2>/dev/null; then",
            "  echo 'kernel WireGuard'",
            "  served=''",
            "else",
            "  echo 'no kernel WireGuard here: wireguard-go (userspace)'",
            f"  WG_PROCESS_FOREGROUND=1 wireguard-go {INTERFACE} & served=$!",
            f"  while ! [ -e /sys/class/net/{INTERFACE} ]; do sleep 0.1; done",
            "fi",
            f"wg set {INTERFACE} listen-port {LISTEN_PORT}"
            f" private-key {CONFIG_DIRECTORY}/server.key",
            f"ip address add {address}/{prefix} dev {INTERFACE}",
            f"ip link set {INTERFACE} mtu {MTU} up",
            f"ip route replace {pod_cidr} dev {INTERFACE}",
            f"echo 'serving {address}/{prefix} on UDP {LISTEN_PORT}'",
            # Peers come from the reconciler; this stays while the tunnel does.
            'if [ -n "$served" ]; then wait "$served"; else exec sleep 2147483647; fi',
            "",
        ]
    )


def vpn_server(
    cluster: Cluster,
    component: Component,
    private_key: bytes,
    data_dir: str = DATA_DIR,
    image: str = IMAGE,
) -> PodSpec:
    """`private_key`: the server's, unsealed (wg's base64 form)."""
    vpn = cluster.vpn
    assert vpn is not None, "a VPN server is placed only for a cluster with a VPN"
    prefix = ipaddress.ip_network(vpn.cidr).prefixlen
    directory = component_directory(cluster, component, data_dir)
    files = [
        File("server.key", private_key.strip() + b"\n", 0o600),
        File(
            "start.sh", start_script(vpn.server_address, prefix, cluster.pod_cidr).encode(), 0o755
        ),
    ]
    container = ContainerSpec(
        name=CONTAINER,
        image=image,
        command=["/bin/sh", f"{CONFIG_DIRECTORY}/start.sh"],
        mounts=[Mount(CONFIG_DIRECTORY, directory)],
        capabilities=["NET_ADMIN"],
        devices=["/dev/net/tun"],
    )
    network = Network(
        ports=[PortMapping(component.ports[PORT], LISTEN_PORT, "UDP")],
        # The server carries peers' packets to one another (node to node:
        # the pod network between sites).
        sysctls={"net.ipv4.ip_forward": "1"},
    )
    return pod(cluster, component, component.hypervisor, directory, [container], files,
               network=network)  # fmt: skip
