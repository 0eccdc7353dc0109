"""What the local hypervisors are made of: versions, addresses, paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..model.versions import SUPPORTED

KUBERNETES_VERSIONS = tuple(r.version for r in SUPPORTED)  # what oneinfra runs
ETCD_VERSION = "v" + SUPPORTED[0].etcd_version
CRICTL_VERSION = "v1.37.0"
CNI_PLUGINS_VERSION = "v1.10.0"
FLANNEL_VERSION = "v0.28.10"
COREDNS_VERSION = "v1.15.0"
# What the rendered pods name (render/ and here must agree: tests/oneinfra/test_local.py).
KONNECTIVITY_VERSION = "v0.36.0"
METRICS_SERVER_VERSION = "v0.8.0"
AGNHOST_TAG = "2.66.1"  # what e2e.test of the newest Kubernetes names (test/utils/image)
PAUSE_TAG = "3.10"
HAPROXY_TAG = "2.6"
BUSYBOX_TAG = "1.35"
WIREGUARD_GO_TAG = "0.0.20220316"  # Debian 12's wireguard-go, in the VPN server's image

CACHE = Path(os.environ.get("ONEINFRA_CACHE", Path.home() / ".cache" / "oneinfra"))
STATE = Path(os.environ.get("ONEINFRA_LOCAL_STATE", "/var/lib/oneinfra-local"))
RUN = Path(os.environ.get("ONEINFRA_LOCAL_RUN", "/run/oneinfra-local"))

# A network of hosts of our own: a bridge on the host, one namespace each.
BRIDGE = "oilocal0"
SUBNET_PREFIX = "10.213.0"
HOST_ADDRESS = f"{SUBNET_PREFIX}.1"
PREFIX_LENGTH = 24
# Hypervisor namespaces cannot reach the host's loopback, so the registry
# listens on the host's address on the bridge, which every one of them reaches.
REGISTRY = f"{HOST_ADDRESS}:5000"
MIRRORED = ("registry.k8s.io", "docker.io")

DEBIAN_PACKAGES = (
    "containerd",
    "runc",
    "docker-registry",
    "haproxy",
    "iproute2",
    "wireguard-go",
    "wireguard-tools",
    "busybox-static",
    "iptables",  # workers: the CNI portmap plugin's rules
    "nftables",  # workers: kube-proxy's and flannel's rules (nftables mode), in their images
    "conntrack",  # kube-proxy clears stale UDP flows with it
)


@dataclass(frozen=True)
class HypervisorSpec:
    name: str
    role: str  # "public" | "private"
    address: str

    @property
    def netns(self) -> str:
        return f"oilocal-{self.name}"

    @property
    def veth(self) -> str:
        return f"oil-{self.name[-5:]}"  # interface names are at most 15 bytes

    @property
    def root(self) -> Path:
        return STATE / "hypervisors" / self.name

    @property
    def data_dir(self) -> Path:
        """Where oneinfra puts its components' files on this hypervisor."""
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return RUN / self.name / "containerd.sock"


def hypervisors(public: int = 1, private: int = 3) -> list[HypervisorSpec]:
    specs = [
        HypervisorSpec(f"pub{i}", "public", f"{SUBNET_PREFIX}.{10 + i}") for i in range(public)
    ]
    specs += [
        HypervisorSpec(f"priv{i}", "private", f"{SUBNET_PREFIX}.{20 + i}") for i in range(private)
    ]
    return specs


# A worker is a machine of its own as far as Kubernetes can tell: its network
# namespace and address, and a mount namespace in which the paths a node
# uses (/etc/kubernetes, /var/lib/kubelet, /etc/cni/net.d, /opt/cni/bin,
# /run/containerd, ...) are its own directories, so that `oneinfra node
# join` and stock `kubeadm join` run there with their defaults.
NODE_PATHS = (
    "/etc/kubernetes",
    "/var/lib/kubelet",
    "/etc/cni/net.d",
    "/opt/cni/bin",
    "/run/containerd",
    "/run/flannel",
    "/run/wireguard",  # wireguard-go's control sockets: each worker its own
    "/var/log/pods",
    "/var/log/containers",
)


# A worker behind NAT sits on a site's LAN of its own, behind a router that
# masquerades: every site has the same LAN (overlapping ranges, as homes and
# shops do), nothing outside can open a connection to it, and it reaches
# only what the router's public address reaches.
SITE_LAN = "192.168.77"
# What `node join` names a worker's tunnel (render.vpn.WORKER_INTERFACE; the
# CLI's local commands import no render code).
VPN_INTERFACE = "oivpn0"
NODE_LINKS = ("cni0", "flannel.1")  # render.addons.NODE_LINKS: the pod network's on a node
SITE_PREFIX_LENGTH = 24


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    address: str  # on the bridge; a NATed worker's on its site's LAN
    role: str = "worker"
    router: str | None = None  # a NATed worker's router's address on the bridge

    @property
    def site(self) -> str:
        """The router's namespace, for a NATed worker."""
        return f"oilocal-site-{self.name}"

    @property
    def router_veth(self) -> str:
        return f"ois-{self.name[-5:]}"

    @property
    def netns(self) -> str:
        return f"oilocal-{self.name}"

    @property
    def veth(self) -> str:
        return f"oil-{self.name[-5:]}"

    @property
    def root(self) -> Path:
        return STATE / "workers" / self.name

    @property
    def mount_namespace(self) -> Path:
        return RUN / "mountns" / self.name

    def own(self, path: str) -> Path:
        """Where a node path of this worker is, seen from the host."""
        return self.root / "fs" / path.strip("/").replace("/", "-")

    @property
    def socket(self) -> Path:
        """Its containerd's socket, seen from the host (/run/containerd inside)."""
        return self.own("/run/containerd") / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/oneinfra-local-{self.name}"


def workers(count: int, behind_nat: int = 0) -> list[WorkerSpec]:
    """`count` workers, the last `behind_nat` of them each at a site of its own."""
    direct = count - behind_nat
    return [
        WorkerSpec(f"w{i}", f"{SUBNET_PREFIX}.{30 + i}") if i < direct
        else WorkerSpec(f"w{i}", f"{SITE_LAN}.2", router=f"{SUBNET_PREFIX}.{40 + i}")
        for i in range(count)
    ]  # fmt: skip


Machine = HypervisorSpec | WorkerSpec  # what has a namespace, an address and a containerd
