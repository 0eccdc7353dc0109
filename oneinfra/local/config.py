"""What the local hypervisors are made of: versions, addresses, paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..model.versions import SUPPORTED

KUBERNETES_VERSIONS = tuple(r.version for r in SUPPORTED)  # what oneinfra runs
ETCD_VERSION = "v" + SUPPORTED[0].etcd_version
CRICTL_VERSION = "v1.37.0"
PAUSE_TAG = "3.10"
HAPROXY_TAG = "2.6"
BUSYBOX_TAG = "1.35"

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
