"""The conformance suite's test images, made here and pushed to the local registry.

The machine has no registry but ours, so each image `e2e.test --list-images`
names that a conformance spec runs is made from what does its job: upstream
binaries built at the suite's version (agnhost, sample-apiserver, nnp), our
etcd, CoreDNS and pause, and Debian's busybox, dig, curl and bash where
upstream's images have Alpine's. Run as `python -m tests.conformance.standins
KUBERNETES_VERSION` after `oneinfra local up`; it prints what it pushed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from oneinfra.local import builds, config, images
from oneinfra.local.images import Image
from oneinfra.local.progress import Reporter
from oneinfra.local.sources import Sources, current

E2E = "registry.k8s.io/e2e-test-images"
BUSYBOX = Path("/bin/busybox")
# Alpine's tools in upstream's agnhost that the specs run inside it (dig and
# getent for the DNS probes, curl and OpenBSD's nc for Services):
# Debian packages (tests/conformance/run installs them), at Alpine's paths.
HOST_TOOLS = {
    "/usr/bin/dig": Path("/usr/bin/dig"),
    "/usr/bin/curl": Path("/usr/bin/curl"),
    "/usr/bin/nc": Path("/usr/bin/nc.openbsd"),  # busybox's nc lacks -v, -t, -u, -z
    "/usr/bin/socat": Path("/usr/bin/socat"),
    "/sbin/ip": Path("/usr/sbin/ip"),
    "/usr/bin/getent": Path("/usr/bin/getent"),  # the DNS specs' probes run it
}
# busybox applets those replace.
REPLACED = {f"/bin/{Path(inside).name}" for inside in HOST_TOOLS}
WORKDIR = Path(tempfile.gettempdir()) / "oneinfra-conformance-images"


def applets() -> dict[str, str]:
    """Every applet of the host's busybox, as /bin/NAME -> busybox."""
    names = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    return {f"/bin/{name}": "busybox" for name in names if name != "busybox"}


def written(name: str, text: str, mode: int = 0o644) -> Path:
    """A small file made for an image (a page, /etc/passwd), kept in WORKDIR."""
    path = WORKDIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(mode)
    return path


def shell() -> tuple[dict[str, Path], dict[str, str]]:
    """busybox with all its applets, and bash as sh: what `sh -c` in any
    test image needs. bash because busybox 1.35's ash (Debian's) drops
    environment variables whose names are not a shell's (data-1, which the
    specs set), and runs its own applets before any on PATH (nc is OpenBSD's
    here); upstream's images have a busybox whose ash keeps them."""
    bash = Path("/usr/bin/bash")
    files = {"/bin/busybox": BUSYBOX, "/bin/bash": bash, **images.shared_libraries(bash)}
    return files, {**applets(), "/bin/sh": "bash"}


def agnhost_files(agnhost: Path, coredns: Path, kubernetes_source: Path) -> dict[str, Path]:
    porter = kubernetes_source / "test/images/agnhost/porter"
    users = "root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home:/bin/sh\n"
    groups = "root:x:0:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
    return {
        "/agnhost": agnhost,
        "/coredns": coredns,  # the DNS specs' own nameserver, run from this image
        "/localhost.crt": porter / "localhost.crt",  # porter serves TLS with these
        "/localhost.key": porter / "localhost.key",
        "/uploads/.keep": written("keep", ""),
        "/etc/passwd": written("passwd", users),
        "/etc/group": written("group", groups),
        **HOST_TOOLS,
        **{lib: host for binary in HOST_TOOLS.values()
           for lib, host in images.shared_libraries(binary).items()},
    }  # fmt: skip


def catalogue(sources: Sources, suite: builds.GoBuild, kubernetes_source: Path) -> list[Image]:
    if sources.agnhost is None or sources.coredns is None:
        raise SystemExit("agnhost and CoreDNS are built by `oneinfra local up`: run it first")
    box, links = shell()
    agnhost = {**box, **agnhost_files(sources.agnhost, sources.coredns, kubernetes_source)}
    agnhost_links = {
        **{path: target for path, target in links.items() if path not in REPLACED},
        "/agnhost-2": "agnhost",
    }
    made = [
        # The suite's agnhost, and the one before it (a spec upgrades from it).
        *(Image(f"{E2E}/agnhost:{tag}", agnhost, ["/agnhost"], ["pause"], symlinks=agnhost_links)
          for tag in (config.AGNHOST_TAG, "2.55")),
        *(Image(f"{E2E}/busybox:{tag}", box, [], ["sh"], symlinks=links)
          for tag in ("1.37.0-2", "1.36.1-1")),
        Image(f"{E2E}/nonroot:1.5", box, [], ["sh"], symlinks=links, user="1234"),
        Image(f"{E2E}/nonewprivs:1.4", {**box, "/usr/local/bin/nnp": setuid(suite.binary("nnp"))},
              [], ["nnp"], symlinks=links),
        Image(f"{E2E}/sample-apiserver:1.29.2",
              {"/sample-apiserver": suite.binary("sample-apiserver")}, ["/sample-apiserver"]),
        # The etcd the sample API server keeps its objects in: ours, by upstream's tag.
        Image("registry.k8s.io/etcd:3.7.0-0", {"/usr/local/bin/etcd": sources.etcd["etcd"]},
              ["/usr/local/bin/etcd"]),
        images.at_root("registry.k8s.io/pause:3.10.2", "pause", sources.pause),
    ]  # fmt: skip
    # nginx: a web server on port 80 with a page, and a shell.
    page = written("index.html", "<html><body>nginx stand-in</body></html>\n")
    for tag in ("1.27.0-2", "1.28.0-2"):
        made.append(Image(
            f"{E2E}/nginx:{tag}", {**box, "/usr/share/nginx/html/index.html": page},
            ["/bin/httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"], symlinks=links,
        ))  # fmt: skip
    # The DNS specs' glibc querier: Debian's dig and getent, as upstream's
    # (Debian with dnsutils); agnhost's files have them.
    made.append(Image(f"{E2E}/glibc-dns-testing:2.1.1", agnhost, [], ["sh"],
                      symlinks=agnhost_links))  # fmt: skip
    # kitten and nautilus: agnhost serving their pictures' data, as upstream.
    for name in ("kitten", "nautilus"):
        html = kubernetes_source / "test/images" / name / "html"
        files = {**agnhost, "/data.json": html / "data.json", f"/{name}.jpg": html / f"{name}.jpg"}
        made.append(Image(f"{E2E}/{name}:1.8", files, ["/agnhost"], ["test-webserver"],
                          symlinks=agnhost_links))  # fmt: skip
    return made


def setuid(binary: Path) -> Path:
    """A setuid-root copy (nnp checks that no_new_privs stops it gaining root)."""
    copy = WORKDIR / binary.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.exists() or copy.stat().st_size != binary.stat().st_size:
        copy.write_bytes(binary.read_bytes())
    copy.chmod(0o4755)
    return copy


def module_source(suite: builds.GoBuild) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "go.mod").write_text("module probe\n\ngo 1.24\n")
        out = builds.go(["mod", "download", "-json", f"{suite.module}@{suite.version}"], Path(tmp))
    return Path(json.loads(out)["Dir"])


def main(version: str) -> None:
    suite = builds.conformance(version)
    builds.ensure(suite, Reporter())
    sources = current()
    for image in catalogue(sources, suite, module_source(suite)):
        pushed = images.push(image)
        print(f"{'pushed' if pushed else 'present'} {image.name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else config.KUBERNETES_VERSIONS[0])
