"""A pod as pure data: one sandbox per component (on the host's network,
or in a network namespace of its own with host ports mapped into it), its
containers with their commands and mounts, the files they read, and the
hashes that tell when a running pod is out of date (its spec: replace the
pod; a container's files: restart that container).
"""

from __future__ import annotations

import hashlib

import msgspec

from ..model.state import Cluster, Component, etcd_member_name
from .labels import (
    LABEL_CLUSTER,
    LABEL_CLUSTER_ID,
    LABEL_COMPONENT,
    LABEL_DIRECTORY,
    LABEL_FLEET,
    LABEL_SPEC_HASH,
    MANAGED,
)

DATA_DIR = "/var/lib/oneinfra"  # on each hypervisor
PKI = "/etc/kubernetes/pki"  # inside the containers, as kubeadm has it
KUBECONFIGS = "/etc/kubernetes"


class File(msgspec.Struct, frozen=True, gc=False):
    path: str  # relative to the component's directory on the hypervisor
    content: bytes
    mode: int = 0o644


STOP_GRACE = 5  # seconds: what a container gets to exit when it is stopped


class Mount(msgspec.Struct, frozen=True, gc=False):
    container_path: str
    host_path: str
    readonly: bool = True


class ContainerSpec(msgspec.Struct, frozen=True, gc=False):
    name: str
    image: str
    command: list[str]
    mounts: list[Mount]
    # Appended to the command when the container is created, and not part of
    # the spec hash: what only its first start reads (etcd's initial
    # membership), so that a later change of it replaces nothing.
    startup_args: list[str] = msgspec.field(default_factory=list)
    # Started only once the cluster's API answers: the controller manager and
    # the scheduler need it, and starting them earlier takes CPU from the API
    # server's own start (2 Go binaries instead of 4) and makes them exit.
    after_api: bool = False
    capabilities: list[str] = msgspec.field(default_factory=list)  # added: NET_ADMIN
    devices: list[str] = msgspec.field(default_factory=list)  # the host's, same path: /dev/net/tun
    # Seconds from SIGTERM to SIGKILL when it is stopped; not part of the
    # spec hash (a container's label carries it, for its stop).
    stop_grace: int = STOP_GRACE
    # Run in the running container once its files are rewritten, instead of
    # a restart: it reads them anew, dropping no connection (haproxy).
    reload: list[str] = msgspec.field(default_factory=list)
    # Files it reads anew by itself when they change (relative to the pod's
    # directory: an API server's serving pair): rewritten, not restarted for.
    live_files: list[str] = msgspec.field(default_factory=list)


class PortMapping(msgspec.Struct, frozen=True, gc=False):
    """A host port led into a pod with a network of its own (CNI's portmap)."""

    host_port: int
    container_port: int
    protocol: str = "UDP"  # "TCP" | "UDP"


class Network(msgspec.Struct, frozen=True, gc=False):
    """A network namespace of the pod's own (the hypervisor's CNI makes it),
    instead of the host's: what one cluster's pod sets up there (routes,
    interfaces) meets no other cluster's."""

    ports: list[PortMapping]
    sysctls: dict[str, str] = msgspec.field(default_factory=dict)  # namespaced ones


class EtcdRestoreSpec(msgspec.Struct, frozen=True, gc=False):
    """How a restored member's data directory is made before its etcd first
    starts: the backup's sealed file (on the management host) and its key,
    what `etcdutl snapshot restore` is told. Not part of the spec hash."""

    location: str
    cluster: str  # whose backup: a clone's is another cluster's
    cluster_id: str
    backup_id: str
    sha256: str
    size: int
    data_key: bytes  # empty: the backup's cluster was deleted, its key with it
    image: str  # the etcd image: it has etcdutl
    data_directory: str  # relative to the pod's directory
    arguments: list[str]  # etcdutl's, but the snapshot and the data directory


class PodSpec(msgspec.Struct, frozen=True, gc=False):
    name: str  # the sandbox's name: cluster id and component
    hypervisor: str
    directory: str  # the component's directory on the hypervisor
    labels: dict[str, str]
    containers: list[ContainerSpec]
    files: list[File]
    # Why the pod may not be created yet (an etcd member not admitted to its
    # cluster); a pod that runs already is kept.
    blocked: str = ""
    network: Network | None = None  # None: the host's
    restore: EtcdRestoreSpec | None = None  # its etcd's data comes from a backup first
    # Derived, on creation: container name -> the hash of the files it reads
    # (but its live files), and of its live files. Every pass compares them
    # with the running containers' (pods are cached).
    files_hashes: dict[str, str] = msgspec.field(default_factory=dict)
    live_hashes: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        hashes = {c.name: files_digest(self.restart_files(c)) for c in self.containers}
        msgspec.structs.force_setattr(self, "files_hashes", hashes)
        live = {c.name: self.live_digest(c) for c in self.containers}
        msgspec.structs.force_setattr(self, "live_hashes", live)

    def container(self, name: str) -> ContainerSpec:
        """Its container of that name (names are unique within a pod)."""
        (found,) = [c for c in self.containers if c.name == name]
        return found

    def files_of(self, container: ContainerSpec) -> list[File]:
        """The files a container reads: those under its mounts."""
        roots = [m.host_path.rstrip("/") + "/" for m in container.mounts]
        return [
            f for f in self.files if any(f"{self.directory}/{f.path}".startswith(r) for r in roots)
        ]

    def restart_files(self, container: ContainerSpec) -> list[File]:
        return [f for f in self.files_of(container) if f.path not in container.live_files]

    def live_digest(self, container: ContainerSpec) -> str:
        live = [f for f in self.files_of(container) if f.path in container.live_files]
        return files_digest(live) if live else ""

    def files_hash(self, container: ContainerSpec) -> str:
        """Changes when a file the container reads changes (but its live
        files): it is then restarted with the new files, and the others are
        left running."""
        found = self.files_hashes.get(container.name)
        return found if found is not None else files_digest(self.restart_files(container))

    def live_hash(self, container: ContainerSpec) -> str:
        """Changes when one of its live files changes: they are then
        rewritten under it. "" when it has none."""
        found = self.live_hashes.get(container.name)
        return found if found is not None else self.live_digest(container)


def files_digest(files: list[File]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(files)).hexdigest()[:16]


def component_directory(cluster: Cluster, component: Component, data_dir: str = DATA_DIR) -> str:
    return f"{data_dir}/clusters/{cluster.cluster_id}/{component.name}"


def member_name(cluster: Cluster, component: Component) -> str:
    return etcd_member_name(cluster.name, component.name)


def host_url(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"


NEWER_FIELDS = ("capabilities", "devices")  # hashed only when set: older pods' hashes stay
UNHASHED = (
    "stop_grace",
    "reload",
    "live_files",
)  # how it stops or reloads changes nothing of what runs


def hashed_form(container: ContainerSpec) -> dict[str, object]:
    """The container as its spec hash sees it: without what only its first
    start reads, and without newer fields left empty (msgpack encodes the
    dict as it encodes the struct)."""
    fields = msgspec.structs.asdict(msgspec.structs.replace(container, startup_args=[]))
    return {k: v for k, v in fields.items() if k not in UNHASHED and (k not in NEWER_FIELDS or v)}


def spec_hash(containers: list[ContainerSpec], network: Network | None = None) -> str:
    """Changes when what the pod runs changes (images, commands, mounts, its
    network): the pod is then replaced. Files have their own hash, per
    container. (A host-network pod's hash is what it was before pods could
    have networks of their own: upgrading replaces none.)"""
    hashed: list[object] = [hashed_form(c) for c in containers]
    if network is not None:
        hashed.append(network)
    digest = hashlib.sha256(msgspec.msgpack.encode(hashed))
    return digest.hexdigest()[:16]


def labels_for(
    cluster: Cluster, component: Component, digest: str, directory: str
) -> dict[str, str]:
    return {
        **MANAGED,
        LABEL_CLUSTER: cluster.name,
        LABEL_CLUSTER_ID: cluster.cluster_id,
        LABEL_COMPONENT: component.name,
        LABEL_SPEC_HASH: digest,
        LABEL_DIRECTORY: directory,
    }


def pod(
    cluster: Cluster,
    component: Component,
    hypervisor: str,
    directory: str,
    containers: list[ContainerSpec],
    files: list[File],
    blocked: str = "",
    network: Network | None = None,
    restore: EtcdRestoreSpec | None = None,
) -> PodSpec:
    return PodSpec(
        name=f"{cluster.cluster_id}-{component.name}",
        hypervisor=hypervisor,
        directory=directory,
        labels=labels_for(cluster, component, spec_hash(containers, network), directory),
        containers=containers,
        files=files,
        blocked=blocked,
        network=network,
        restore=restore,
    )


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def in_fleet(pod: PodSpec, fleet: str) -> PodSpec:
    if not fleet:
        return pod
    return msgspec.structs.replace(pod, labels={**pod.labels, LABEL_FLEET: fleet})
