"""Upstream binaries built from the Go module proxy, cached by version.

A module whose go.mod replaces its own submodules with local paths (the
staging modules of k8s.io/kubernetes, etcd's api/, server/, ...) cannot be
built with `go install module@version`. So each build gets a small module of
its own that requires the upstream module and pins every such submodule to
the version published beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LocalError
from . import config
from .progress import Reporter, Step


@dataclass(frozen=True)
class GoBuild:
    name: str  # the cache key: one directory per name
    module: str
    version: str
    binaries: dict[str, str]  # main package -> the binary's name in the cache
    ldflags: str = "-s -w"
    # The version of the submodules its go.mod replaces with local paths,
    # when it is not the module's own (k8s.io/api v0.37.2 beside v1.37.2).
    submodules_at: str | None = None
    # Packages of the module left out: built from its source with their
    # directories and blank imports removed (a dependency the proxy does not serve).
    without: tuple[str, ...] = ()
    # Test packages compiled into binaries with `go test -c` (e2e.test):
    # package -> the binary's name in the cache.
    tests: dict[str, str] = field(default_factory=dict)

    def submodule_version(self, submodule: str) -> str:
        """The version to pin a locally replaced submodule to."""
        return self.submodules_at or self.version

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(self.binaries)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every binary's name in the cache, main packages' and tests'."""
        return (*self.binaries.values(), *self.tests.values())

    @property
    def directory(self) -> Path:
        return config.CACHE / "bin" / self.name

    def binary(self, name: str) -> Path:
        return self.directory / name

    @property
    def done(self) -> bool:
        """Built, every binary: one added since is built with the rest."""
        return (self.directory / ".complete").exists() and all(
            self.binary(name).exists() for name in self.outputs
        )


def staging_version(version: str) -> str:
    """The version of Kubernetes' staging modules: k8s.io/api v0.37.2 ships with v1.37.2."""
    return "v0." + version.removeprefix("v1.")


def kubernetes(version: str) -> GoBuild:
    return GoBuild(
        name=f"kubernetes-{version}",
        module="k8s.io/kubernetes",
        version=version,
        binaries={
            f"k8s.io/kubernetes/cmd/{c}": c
            for c in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "kube-proxy",
                "kubeadm",
            )
        },
        submodules_at=staging_version(version),
        ldflags=f"-s -w -X k8s.io/component-base/version.gitVersion={version}",
    )


def agnhost() -> GoBuild:
    """Kubernetes' own test server (the e2e suite's agnhost image): the
    end-to-end tests serve an admission webhook with it from a worker."""
    version = config.KUBERNETES_VERSIONS[0]
    return GoBuild(
        name=f"agnhost-{config.AGNHOST_TAG}",
        module="k8s.io/kubernetes",
        version=version,
        binaries={"k8s.io/kubernetes/test/images/agnhost": "agnhost"},
        submodules_at=staging_version(version),
    )


def conformance(version: str) -> GoBuild:
    """Kubernetes' own end-to-end suite at a cluster's version, the ginkgo
    runner its go.mod pins, and the servers of the suite's images that are
    not agnhost: tests/conformance runs them (not in CI)."""
    return GoBuild(
        name=f"conformance-{version}",
        module="k8s.io/kubernetes",
        version=version,
        binaries={
            "github.com/onsi/ginkgo/v2/ginkgo": "ginkgo",
            "k8s.io/sample-apiserver": "sample-apiserver",
            "k8s.io/kubernetes/test/images/nonewprivs": "nnp",
        },
        tests={"k8s.io/kubernetes/test/e2e": "e2e.test"},
        submodules_at=staging_version(version),
        # The suite takes "latest" Pod Security fixtures from its own version's
        # major and minor: without them it looks for v0.0 ones and fails.
        ldflags=f"-s -w -X k8s.io/component-base/version.gitVersion={version}"
        f" -X k8s.io/component-base/version.gitMajor={version.removeprefix('v').split('.')[0]}"
        f" -X k8s.io/component-base/version.gitMinor={version.split('.')[1]}",
    )


def etcd() -> GoBuild:
    return GoBuild(
        name=f"etcd-{config.ETCD_VERSION}",
        module="go.etcd.io/etcd/v3",
        version=config.ETCD_VERSION,
        # etcdutl as upstream's image has it: snapshot status and restore
        # left etcdctl in 3.6.
        binaries={
            "go.etcd.io/etcd/server/v3": "etcd",
            "go.etcd.io/etcd/etcdctl/v3": "etcdctl",
            "go.etcd.io/etcd/etcdutl/v3": "etcdutl",
        },
    )


def crictl() -> GoBuild:
    return GoBuild(
        name=f"crictl-{config.CRICTL_VERSION}",
        module="sigs.k8s.io/cri-tools",
        version=config.CRICTL_VERSION,
        binaries={"sigs.k8s.io/cri-tools/cmd/crictl": "crictl"},
    )


def cni_plugins() -> GoBuild:
    """The containernetworking reference plugins a worker's pod network uses."""
    return GoBuild(
        name=f"cni-plugins-{config.CNI_PLUGINS_VERSION}",
        module="github.com/containernetworking/plugins",
        version=config.CNI_PLUGINS_VERSION,
        binaries={
            f"github.com/containernetworking/plugins/plugins/{p}": p.rsplit("/", 1)[1]
            for p in ("main/bridge", "main/loopback", "ipam/host-local", "meta/portmap")
        },
    )


def flannel() -> GoBuild:
    return GoBuild(
        name=f"flannel-{config.FLANNEL_VERSION}",
        module="github.com/flannel-io/flannel",
        version=config.FLANNEL_VERSION,
        binaries={"github.com/flannel-io/flannel": "flanneld"},
        # The Tencent Cloud VPC backend's SDK is not served by the module
        # proxy; the (deprecated) udp backend needs cgo, and we build static.
        without=(
            "github.com/flannel-io/flannel/pkg/backend/tencentvpc",
            "github.com/flannel-io/flannel/pkg/backend/udp",
        ),
        ldflags="-s -w -X github.com/flannel-io/flannel/pkg/version.Version="
        + config.FLANNEL_VERSION,
    )


def coredns() -> GoBuild:
    return GoBuild(
        name=f"coredns-{config.COREDNS_VERSION}",
        module="github.com/coredns/coredns",
        version=config.COREDNS_VERSION,
        binaries={"github.com/coredns/coredns": "coredns"},
    )


def konnectivity() -> GoBuild:
    """The API server's egress into each cluster: the proxy server beside
    every API server, the agent on every worker."""
    module = "sigs.k8s.io/apiserver-network-proxy"
    return GoBuild(
        name=f"konnectivity-{config.KONNECTIVITY_VERSION}",
        module=module,
        version=config.KONNECTIVITY_VERSION,
        binaries={f"{module}/cmd/server": "proxy-server", f"{module}/cmd/agent": "proxy-agent"},
    )


def metrics_server() -> GoBuild:
    """The resource metrics API (`kubectl top`), served from a worker."""
    module = "sigs.k8s.io/metrics-server"
    return GoBuild(
        name=f"metrics-server-{config.METRICS_SERVER_VERSION}",
        module=module,
        version=config.METRICS_SERVER_VERSION,
        binaries={f"{module}/cmd/metrics-server": "metrics-server"},
        ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=" + config.METRICS_SERVER_VERSION,
    )


def pause() -> Path:
    """Our own pause: PID 1 of each sandbox, exits on SIGTERM, reaps children."""
    out = config.CACHE / "bin" / "pause" / "pause"
    source = Path(__file__).parent / "pause"  # package data
    stamp = out.with_name(".source-" + hash_tree(source))
    if not stamp.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."], cwd=source)
        stamp.touch()
    return out


def hash_tree(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def go_binary_name(package: str) -> str:
    """The name go build gives a main package's binary: its last path element,
    or the one before when the last is a major version (server/v3 -> server)."""
    parts = package.rstrip("/").split("/")
    if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1:
        return parts[-2]
    return parts[-1]


def all_builds() -> list[GoBuild]:
    return [
        *(kubernetes(v) for v in config.KUBERNETES_VERSIONS),
        etcd(),
        crictl(),
        cni_plugins(),
        flannel(),
        coredns(),
        konnectivity(),
        metrics_server(),
        agnhost(),
    ]


GO_LOCATIONS = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")


def go_binary() -> str:
    """Go from PATH, or where it is installed when a non-login shell lacks it."""
    found = shutil.which("go") or next((g for g in GO_LOCATIONS if Path(g).exists()), None)
    if found is None:
        raise LocalError(
            "Go is needed to build Kubernetes and etcd (or give --binaries DIR): install it"
        )
    return found


def go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [go_binary(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", **(env or {})},
    )
    if result.returncode != 0:
        raise LocalError(f"go {' '.join(args)} failed in {cwd}:\n{result.stderr[-4000:]}")
    return result.stdout


def local_replacements(build: GoBuild, workdir: Path) -> list[str]:
    info = json.loads(go(["mod", "download", "-json", f"{build.module}@{build.version}"], workdir))
    text = Path(info["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(\S+)\s+=>\s+\./", text, re.MULTILINE)))


DURATIONS = "durations.json"  # how long each build took last time: the next one's estimate


def last_duration(build: GoBuild) -> float | None:
    try:
        durations = json.loads((config.CACHE / "bin" / DURATIONS).read_text())
    except (OSError, ValueError):
        return None
    value = durations.get(build.name) if isinstance(durations, dict) else None
    return float(value) if isinstance(value, int | float) else None


def remember_duration(build: GoBuild, seconds: float) -> None:
    path = config.CACHE / "bin" / DURATIONS
    try:
        durations = json.loads(path.read_text())
    except (OSError, ValueError):
        durations = {}
    durations[build.name] = round(seconds, 1)
    path.write_text(json.dumps(durations, indent=2, sort_keys=True))


def ensure(build: GoBuild, reporter: Reporter) -> float | None:
    """Build if not cached; returns the seconds it took, None when cached.
    A lock keeps two processes from building the same thing at once."""
    if build.done:
        return None
    lock_path = config.CACHE / "bin" / f".{build.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if build.done:  # built by whoever held the lock
            return None
        with reporter.step(f"building {build.name}", last_duration(build)) as step:
            took = build_now(build, step)
        remember_duration(build, took)
        return took


def go_streaming(args: list[str], cwd: Path, on_line: Callable[[str], None]) -> None:
    """go, its stderr read line by line as it comes (go build -v names each
    package as it compiles it)."""
    process = subprocess.Popen(
        [go_binary(), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
    )
    assert process.stderr is not None
    tail: list[str] = []
    for line in process.stderr:
        tail = [*tail[-60:], line]
        on_line(line.rstrip("\n"))
    if process.wait() != 0:
        raise LocalError(f"go {' '.join(args[:1])} failed in {cwd}:\n{''.join(tail)[-4000:]}")


def build_line(line: str, mains: set[str], known: set[str]) -> str:
    """What a line of `go build -v` says: a main package (compiled, then
    linked: the last step), another package compiled, or neither."""
    if line in mains:
        return "main"
    return "package" if line in known else ""


def source_without(build: GoBuild, workdir: Path) -> Path:
    """The module's own source, writable, without `build.without`: their
    directories gone, the blank imports of them dropped, go.mod tidied."""
    (workdir / "go.mod").write_text("module builder\n\ngo 1.24\n")
    info = json.loads(go(["mod", "download", "-json", f"{build.module}@{build.version}"], workdir))
    source = workdir / "src"
    shutil.copytree(info["Dir"], source)
    for path in source.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for package in build.without:
        shutil.rmtree(source / package.removeprefix(build.module + "/"))
        blank_import = re.compile(rf'^\s*_\s+"{re.escape(package)}"\s*$', re.MULTILINE)
        for file in source.rglob("*.go"):
            text = file.read_text()
            if package in text:
                file.write_text(blank_import.sub("", text))
    go(["mod", "tidy"], source)
    return source


def build_now(build: GoBuild, step: Step) -> float:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oneinfra-build-") as tmp:
        workdir = Path(tmp)
        step.phase("downloading modules")
        if build.without:
            return build_in(source_without(build, workdir), build, step, started)
        (workdir / "go.mod").write_text("module builder\n\ngo 1.24\n")
        replacements = local_replacements(build, workdir)
        lines = ["module builder", "", "go 1.24", "", f"require {build.module} {build.version}", ""]
        if replacements:
            lines.append("replace (")
            lines += [f"\t{m} => {m} {build.submodule_version(m)}" for m in replacements]
            lines.append(")")
        (workdir / "go.mod").write_text("\n".join(lines) + "\n")
        imports = "\n".join(f'\t_ "{p}"' for p in (*build.packages, *build.tests))
        (workdir / "tools.go").write_text(
            f"//go:build tools\n\npackage builder\n\nimport (\n{imports}\n)\n"
        )
        go(["mod", "tidy"], workdir)
        return build_in(workdir, build, step, started)


def build_in(workdir: Path, build: GoBuild, step: Step, started: float) -> float:
    """Compile and link `build`'s binaries in a module directory that has them."""
    # Every package the binaries need: what `go build -v` will name as it
    # compiles them (those not in Go's build cache yet).
    packages = go(["list", "-deps", *build.packages], workdir).split()
    mains = set(build.packages)
    step.phase("compiling packages", total=len(packages))
    staging = build.directory.with_name(build.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    known = set(packages)

    def progress(line: str) -> None:
        match build_line(line, mains, known):
            case "main" if step.phase_name != "linking":
                step.phase("linking")  # the main packages come last: compiled, then linked
            case "package":
                step.advance()

    go_streaming(
        ["build", "-v", "-trimpath", "-ldflags", build.ldflags, "-o", str(staging) + "/",
         *build.packages],
        workdir,
        progress,
    )  # fmt: skip
    for package, name in build.binaries.items():
        produced = staging / go_binary_name(package)
        if not produced.exists():
            raise LocalError(f"go build made no binary for {package} ({build.name})")
        produced.rename(staging / name)
    for package, name in build.tests.items():
        step.phase(f"compiling {name}")
        go_streaming(
            ["test", "-c", "-trimpath", "-ldflags", build.ldflags, "-o", str(staging / name),
             package],
            workdir,
            lambda line: None,
        )  # fmt: skip
    (staging / ".complete").write_text(build.version)
    shutil.rmtree(build.directory, ignore_errors=True)
    staging.rename(build.directory)
    return time.monotonic() - started
