"""Where the local hypervisors' binaries come from: built from the Go module
proxy (cached), or given in a directory by someone who has them already
(a distribution's packages, a release tarball), so that nobody waits for a
build they do not need. Either way, the versions must be ones oneinfra runs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LocalError
from ..model.versions import SUPPORTED
from . import builds, config
from .progress import Reporter

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("kubelet", "kube-proxy", "kubeadm")  # for workers: optional in a given directory
ETCD = ("etcd", "etcdctl")
ETCD_OPTIONAL = ("etcdutl",)  # snapshot status and restore (3.6): in upstream's image
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


@dataclass(frozen=True)
class Sources:
    kubernetes: dict[str, dict[str, Path]]  # version -> binary name -> file
    etcd: dict[str, Path]  # etcd, etcdctl, and etcdutl when there is one
    etcd_version: str  # v3.6.8
    crictl: Path
    pause: Path
    konnectivity: dict[str, Path]  # proxy-server (beside API servers), proxy-agent (on nodes)
    # What workers need; absent when given binaries lack them (then no workers).
    cni_plugins: list[Path] = field(default_factory=list)
    flanneld: Path | None = None
    coredns: Path | None = None
    agnhost: Path | None = None  # Kubernetes' test server, for the end-to-end tests
    metrics_server: Path | None = None  # the resource metrics API, for `kubectl top`

    def as_data(self) -> dict[str, object]:
        """For the state file: what the running hypervisors' images came from."""
        return {
            "kubernetes": {
                v: {n: str(p) for n, p in b.items()} for v, b in self.kubernetes.items()
            },
            "etcd": {n: str(p) for n, p in self.etcd.items()},
            "etcd_version": self.etcd_version,
            "crictl": str(self.crictl),
            "pause": str(self.pause),
            "konnectivity": {n: str(p) for n, p in self.konnectivity.items()},
            "cni_plugins": [str(p) for p in self.cni_plugins],
            "flanneld": str(self.flanneld) if self.flanneld else None,
            "coredns": str(self.coredns) if self.coredns else None,
            "agnhost": str(self.agnhost) if self.agnhost else None,
            "metrics_server": str(self.metrics_server) if self.metrics_server else None,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Sources:
        return cls(
            kubernetes={
                v: {n: Path(p) for n, p in b.items()} for v, b in data["kubernetes"].items()
            },
            etcd={n: Path(p) for n, p in data["etcd"].items()},
            etcd_version=data["etcd_version"],
            crictl=Path(data["crictl"]),
            pause=Path(data["pause"]),
            konnectivity={n: Path(p) for n, p in data.get("konnectivity", {}).items()},
            cni_plugins=[Path(p) for p in data.get("cni_plugins", [])],
            flanneld=Path(data["flanneld"]) if data.get("flanneld") else None,
            coredns=Path(data["coredns"]) if data.get("coredns") else None,
            agnhost=Path(data["agnhost"]) if data.get("agnhost") else None,
            metrics_server=Path(data["metrics_server"]) if data.get("metrics_server") else None,
        )


def current() -> Sources:
    """The sources of the hypervisors that run (as `up` recorded them)."""
    from .system import load_state

    recorded = load_state().get("sources")
    if not isinstance(recorded, dict):
        raise LocalError("no local hypervisors run; 'oneinfra local up' starts them")
    return Sources.from_data(recorded)


def built(reporter: Reporter) -> Sources:
    """Everything from the Go module proxy: built once, cached after."""
    ensure_all(builds.all_builds(), reporter)
    kubernetes = {
        v: {name: builds.kubernetes(v).binary(name) for name in (*CONTROL_PLANE, *NODE)}
        for v in config.KUBERNETES_VERSIONS
    }
    etcd = builds.etcd()
    return Sources(
        kubernetes=kubernetes,
        etcd={name: etcd.binary(name) for name in (*ETCD, *ETCD_OPTIONAL)},
        etcd_version=config.ETCD_VERSION,
        crictl=builds.crictl().binary("crictl"),
        pause=builds.pause(),
        konnectivity=konnectivity(),
        cni_plugins=[builds.cni_plugins().binary(p) for p in CNI_PLUGINS],
        flanneld=builds.flannel().binary("flanneld"),
        coredns=builds.coredns().binary("coredns"),
        agnhost=builds.agnhost().binary("agnhost"),
        metrics_server=builds.metrics_server().binary("metrics-server"),
    )


def konnectivity() -> dict[str, Path]:
    build = builds.konnectivity()
    return {name: build.binary(name) for name in build.binaries.values()}


def ensure_all(wanted: list[builds.GoBuild], reporter: Reporter) -> None:
    for build in wanted:
        took = builds.ensure(build, reporter)
        if took is None:
            reporter.say(f"{build.name}: cached")
        else:
            reporter.say(f"{build.name}: built in {took:.0f} s")


def reported_version(binary: Path, pattern: str) -> str:
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as error:
        raise LocalError(f"cannot run {binary}: {error.strerror}") from None
    found = re.search(pattern, result.stdout + result.stderr)
    if found is None:
        raise LocalError(f"{binary} --version does not say its version")
    return found.group(1)


def from_directory(directory: Path, reporter: Reporter) -> Sources:
    """The binaries in `directory`; crictl is built if it is not there."""
    missing = [n for n in (*CONTROL_PLANE, *ETCD) if not (directory / n).is_file()]
    if missing:
        raise LocalError(f"{directory} lacks {', '.join(missing)}")
    versions = {
        name: reported_version(directory / name, r"Kubernetes (v\d+\.\d+\.\d+)")
        for name in CONTROL_PLANE
    }
    if len(set(versions.values())) != 1:
        found = ", ".join(f"{n} {v}" for n, v in versions.items())
        raise LocalError(f"the Kubernetes binaries in {directory} differ in version: {found}")
    version = versions["kube-apiserver"]
    release = next((r for r in SUPPORTED if r.version == version), None)
    if release is None:
        supported = ", ".join(r.version for r in SUPPORTED)
        raise LocalError(f"Kubernetes {version} is not one oneinfra runs ({supported})")
    etcd_version = "v" + reported_version(directory / "etcd", r"etcd Version: (\d+\.\d+\.\d+)")
    if etcd_version != f"v{release.etcd_version}":
        raise LocalError(
            f"oneinfra runs Kubernetes {version} with etcd v{release.etcd_version}, "
            f"and {directory / 'etcd'} is {etcd_version}"
        )
    crictl = directory / "crictl"
    if not crictl.is_file():
        ensure_all([builds.crictl()], reporter)
        crictl = builds.crictl().binary("crictl")
    ensure_all([builds.konnectivity()], reporter)  # not part of a Kubernetes release
    reporter.say(f"Kubernetes {version} and etcd {etcd_version} from {directory}")
    return Sources(
        kubernetes={
            version: {
                n: directory / n for n in (*CONTROL_PLANE, *NODE) if (directory / n).is_file()
            }
        },
        etcd={n: directory / n for n in (*ETCD, *ETCD_OPTIONAL) if (directory / n).is_file()},
        etcd_version=etcd_version,
        crictl=crictl,
        pause=builds.pause(),
        konnectivity=konnectivity(),
    )
