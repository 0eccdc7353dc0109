"""The Kubernetes versions oneinfra can run, and what each needs."""

from __future__ import annotations

import msgspec

from ..errors import DomainError, shown


class KubernetesRelease(msgspec.Struct, frozen=True):
    version: str
    etcd_version: str


# Newest first; the first is the default. Images for each are built by the
# local hypervisors (oneinfra/local), or brought by the user.
SUPPORTED = (
    KubernetesRelease("v1.37.2", etcd_version="3.6.8"),
    KubernetesRelease("v1.36.3", etcd_version="3.6.8"),
)
DEFAULT_VERSION = SUPPORTED[0].version


def release(version: str) -> KubernetesRelease:
    for candidate in SUPPORTED:
        if candidate.version == version:
            return candidate
    supported = ", ".join(r.version for r in SUPPORTED)
    raise DomainError(
        f"Kubernetes version {shown(version)} is not supported; use one of: {supported}"
    )
