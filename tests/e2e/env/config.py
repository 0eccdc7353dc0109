"""What the test environment is made of: versions, addresses, paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSIONS = ("v1.37.2", "v1.36.3")  # the default, and one older minor
ETCD_VERSION = "v3.6.8"
CRICTL_VERSION = "v1.37.0"
PAUSE_TAG = "3.10"
HAPROXY_TAG = "2.6"
BUSYBOX_TAG = "1.35"

CACHE = Path(os.environ.get("ONEINFRA_CACHE", Path.home() / ".cache" / "oneinfra"))
STATE = Path(os.environ.get("ONEINFRA_E2E_STATE", "/var/lib/oneinfra-e2e"))
RUN = Path(os.environ.get("ONEINFRA_E2E_RUN", "/run/oneinfra-e2e"))

# A network of our own test hosts: a bridge on the host, one namespace each.
BRIDGE = "oie2e0"
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
        return f"oie2e-{self.name}"

    @property
    def veth(self) -> str:
        return f"oie2e-{self.name[-5:]}"  # interface names are at most 15 bytes

    @property
    def root(self) -> Path:
        return STATE / "hypervisors" / self.name

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
