"""OCI images made from local binaries and pushed to the local registry.

Each image is one deterministic layer (fixed times and owners) plus its
config and manifest, kept in the cache; a push sends only what the registry
lacks, over the registry's v2 HTTP API.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LocalError
from . import config
from .sources import Sources

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    name: str  # the production name, e.g. registry.k8s.io/kube-apiserver:v1.37.2
    files: dict[str, Path]  # path in the image -> file on the host
    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> target
    user: str = ""  # the user its processes run as, when not root (USER 1234)

    @property
    def registry_host(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def repository(self) -> str:
        path = self.name.split("/", 1)[1].rsplit(":", 1)[0]
        # docker.io's one-word names live under library/
        return f"library/{path}" if self.registry_host == "docker.io" and "/" not in path else path

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def shared_libraries(binary: Path) -> dict[str, Path]:
    """The libraries (and the loader) a dynamic binary needs, from ldd."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            found[path] = Path(path).resolve()
    return found


def catalogue(sources: Sources) -> list[Image]:
    """Every image the local hypervisors serve, made from the sources' binaries."""
    images: list[Image] = []
    for version, binaries in sorted(sources.kubernetes.items()):
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            binary = binaries[component]
            images.append(
                Image(
                    f"registry.k8s.io/{component}:{version}",
                    {f"/usr/local/bin/{component}": binary},
                    [f"/usr/local/bin/{component}"],
                )
            )
    tag = sources.etcd_version.removeprefix("v") + "-0"
    images.append(
        Image(
            f"registry.k8s.io/etcd:{tag}",
            {f"/usr/local/bin/{name}": path for name, path in sorted(sources.etcd.items())},
            ["/usr/local/bin/etcd"],
        )
    )
    images.append(at_root(f"registry.k8s.io/pause:{config.PAUSE_TAG}", "pause", sources.pause))
    # konnectivity's server and agent, where upstream's images have them (/proxy-server, ...).
    for name, binary in sorted(sources.konnectivity.items()):
        image = f"registry.k8s.io/kas-network-proxy/{name}:{config.KONNECTIVITY_VERSION}"
        images.append(at_root(image, name, binary))
    busybox = Path("/bin/busybox")
    applets = (
        "sh",
        "cat",
        "mkdir",
        "chmod",
        "rm",
        "mv",
        "cp",
        "ls",
        "echo",
        "printf",
        "test",
        "sleep",
        "base64",
        "sha256sum",
        "env",
        "true",
        "false",
        "ipcalc",  # the pod network's CNI configuration (render/addons.py)
        "cmp",
        "dd",  # a backup read out in chunks (backup/snapshot.py)
        "stat",
        # What a workload on the workers is tried with (tests/e2e, scripts/run).
        "httpd",
        "wget",
        "nslookup",
        "hostname",
        "nc",
        "ip",
        "grep",
        "head",
    )
    images.append(
        Image(
            f"docker.io/library/busybox:{config.BUSYBOX_TAG}",
            {"/bin/busybox": busybox},
            [],
            ["sh"],
            symlinks={f"/bin/{a}": "busybox" for a in applets},
        )
    )
    images += node_images(sources)
    images.append(wireguard_image(busybox))
    haproxy = Path("/usr/sbin/haproxy")
    libraries = {inside: host for inside, host in shared_libraries(haproxy).items()}
    images.append(
        Image(
            f"docker.io/library/haproxy:{config.HAPROXY_TAG}",
            # A shell, as the upstream image has: the ingress is reloaded
            # with `sh -c "kill -USR2 1"` (render/ingress.py).
            {"/usr/sbin/haproxy": haproxy, **libraries, "/bin/busybox": busybox},
            ["/usr/sbin/haproxy"],
            ["-f", "/usr/local/etc/haproxy/haproxy.cfg"],
            symlinks={"/bin/sh": "busybox", "/bin/kill": "busybox"},
        )
    )
    return images


WIREGUARD_BINARIES = (Path("/usr/bin/wireguard-go"), Path("/usr/bin/wg"), Path("/bin/ip"))


def wireguard_image(busybox: Path) -> Image:
    """The VPN server's (render/vpn.py): Debian's wireguard-go, wg and ip,
    and a shell."""
    return Image(
        f"docker.io/oneinfra/wireguard:{config.WIREGUARD_GO_TAG}",
        {**with_libraries(*WIREGUARD_BINARIES), "/bin/busybox": busybox},
        ["/bin/sh"],
        symlinks={f"/bin/{a}": "busybox" for a in ("sh", "sleep", "echo", "cat", "[")},
    )


def with_libraries(*binaries: Path) -> dict[str, Path]:
    """Dynamic binaries of the host, each under its own path, with what ldd names."""
    files: dict[str, Path] = {}
    for binary in binaries:
        files[str(binary)] = binary
        files.update(shared_libraries(binary))
    return files


NFT, CONNTRACK = Path("/usr/sbin/nft"), Path("/usr/sbin/conntrack")
XTABLES = Path("/usr/sbin/xtables-nft-multi")  # Debian's iptables, on nftables
XTABLES_EXTENSIONS = Path("/usr/lib/x86_64-linux-gnu/xtables")
IPTABLES_NAMES = [f"{family}tables{verb}" for family in ("ip", "ip6")
                  for verb in ("", "-save", "-restore")]  # fmt: skip


def iptables() -> tuple[dict[str, Path], dict[str, str]]:
    """iptables in an image: its files, and its names as symlinks to the one
    binary. Both kube-proxy and flannel clear iptables rules at start, even
    in nftables mode, and fail without it."""
    files = with_libraries(XTABLES)
    for extension in sorted(XTABLES_EXTENSIONS.glob("*.so")):
        files[str(extension)] = extension
    return files, {f"/usr/sbin/{name}": XTABLES.name for name in IPTABLES_NAMES}


def node_images(sources: Sources) -> list[Image]:
    """What runs on workers: kube-proxy (nftables mode: it runs nft, and
    conntrack for UDP), the flannel network (nft too), CoreDNS and
    metrics-server."""
    images = []
    legacy, names = iptables()
    rules = {**with_libraries(NFT, CONNTRACK), **legacy}
    for version, binaries in sorted(sources.kubernetes.items()):
        if "kube-proxy" in binaries:
            images.append(Image(
                f"registry.k8s.io/kube-proxy:{version}",
                {"/usr/local/bin/kube-proxy": binaries["kube-proxy"], **rules},
                ["/usr/local/bin/kube-proxy"],
                symlinks=names,
            ))  # fmt: skip
    if sources.flanneld is not None:
        images.append(Image(
            f"docker.io/flannel/flannel:{config.FLANNEL_VERSION}",
            {"/opt/bin/flanneld": sources.flanneld, **rules},
            ["/opt/bin/flanneld"],
            symlinks=names,
        ))  # fmt: skip
    if sources.coredns is not None:
        coredns = f"registry.k8s.io/coredns/coredns:{config.COREDNS_VERSION}"
        images.append(at_root(coredns, "coredns", sources.coredns))
    if sources.agnhost is not None:
        agnhost = f"registry.k8s.io/e2e-test-images/agnhost:{config.AGNHOST_TAG}"
        images.append(at_root(agnhost, "agnhost", sources.agnhost))
    if sources.metrics_server is not None:
        metrics = f"registry.k8s.io/metrics-server/metrics-server:{config.METRICS_SERVER_VERSION}"
        images.append(at_root(metrics, "metrics-server", sources.metrics_server))
    return images


def at_root(image: str, name: str, binary: Path) -> Image:
    """An image of one static binary, /NAME, its entrypoint, as upstream's are."""
    return Image(image, {f"/{name}": binary}, [f"/{name}"])


def layer(image: Image) -> bytes:
    """The image's single layer: a tar with fixed metadata, so equal inputs give equal bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted(
            {str(Path(p).parent) for p in [*image.files, *image.symlinks]} | {"/tmp"}
        )
        for directory in directories:
            parts = Path(directory).parts[1:]
            for depth in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:depth]))
                if info.name in tar.getnames():
                    continue
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if info.name == "tmp" else 0o755
                tar.addfile(info)
        for inside, host in sorted(image.files.items()):
            data = host.read_bytes()
            info = tarfile.TarInfo(inside.lstrip("/"))
            info.size, info.mode = len(data), host.stat().st_mode & 0o7777
            tar.addfile(info, io.BytesIO(data))
        for inside, target in sorted(image.symlinks.items()):
            info = tarfile.TarInfo(inside.lstrip("/"))
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    return raw.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def source_stamp(image: Image) -> str:
    stamp = hashlib.sha256(
        json.dumps([image.name, image.entrypoint, image.cmd, image.symlinks, image.user]).encode()
    )
    for inside, host in sorted(image.files.items()):
        info = host.stat()
        stamp.update(f"{inside}:{host}:{info.st_size}:{info.st_mtime_ns}".encode())
    return stamp.hexdigest()


def assemble(image: Image) -> Path:
    """Config, layer and manifest in the cache (made once per source stamp)."""
    directory = config.CACHE / "images" / image.name.replace("/", "_").replace(":", "_")
    stamp = source_stamp(image)
    if (directory / "stamp").exists() and (directory / "stamp").read_text() == stamp:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    tar = layer(image)
    compressed = gzip.compress(tar, compresslevel=1, mtime=0)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [PATH_ENV],
            "Entrypoint": image.entrypoint or None,
            "Cmd": image.cmd or None,
            **({"User": image.user} if image.user else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": LAYER, "digest": digest(compressed), "size": len(compressed)}],
    }
    (directory / "config.json").write_bytes(config_bytes)
    (directory / "layer.tar.gz").write_bytes(compressed)
    (directory / "manifest.json").write_bytes(json.dumps(manifest, sort_keys=True).encode())
    (directory / "stamp").write_text(stamp)
    return directory


def request(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def push(image: Image) -> bool:
    """Push what the registry lacks; False when it had the image already."""
    directory = assemble(image)
    manifest = (directory / "manifest.json").read_bytes()
    base = f"http://{config.REGISTRY}/v2/{image.repository}"
    status, headers = request("HEAD", f"{base}/manifests/{image.tag}", headers={"Accept": MANIFEST})
    if status == 200 and headers.get("Docker-Content-Digest") == digest(manifest):
        return False
    for blob in ("config.json", "layer.tar.gz"):
        data = (directory / blob).read_bytes()
        blob_digest = digest(data)
        if request("HEAD", f"{base}/blobs/{blob_digest}")[0] == 200:
            continue
        status, headers = request("POST", f"{base}/blobs/uploads/")
        if status != 202:
            raise LocalError(f"registry refused an upload for {image.name}: HTTP {status}")
        location = headers["Location"]
        if location.startswith("/"):
            location = f"http://{config.REGISTRY}{location}"
        separator = "&" if "?" in location else "?"
        status, _ = request(
            "PUT",
            f"{location}{separator}digest={blob_digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise LocalError(f"registry refused {blob} of {image.name}: HTTP {status}")
    status, _ = request(
        "PUT", f"{base}/manifests/{image.tag}", manifest, {"Content-Type": MANIFEST}
    )
    if status != 201:
        raise LocalError(f"registry refused the manifest of {image.name}: HTTP {status}")
    return True
