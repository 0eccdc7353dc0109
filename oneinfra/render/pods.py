"""A pod as pure data: one host-network sandbox per component, its
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
    # Derived, on creation: container name -> the hash of the files it reads.
    # Every pass compares them with the running containers' (pods are cached).
    files_hashes: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        hashes = {c.name: files_digest(self.files_of(c)) for c in self.containers}
        msgspec.structs.force_setattr(self, "files_hashes", hashes)

    def files_of(self, container: ContainerSpec) -> list[File]:
        """The files a container reads: those under its mounts."""
        roots = [m.host_path.rstrip("/") + "/" for m in container.mounts]
        return [
            f for f in self.files if any(f"{self.directory}/{f.path}".startswith(r) for r in roots)
        ]

    def files_hash(self, container: ContainerSpec) -> str:
        """Changes when a file the container reads changes: it is then
        restarted with the new files, and the others are left running."""
        found = self.files_hashes.get(container.name)
        return found if found is not None else files_digest(self.files_of(container))


def files_digest(files: list[File]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(files)).hexdigest()[:16]


def component_directory(cluster: Cluster, component: Component, data_dir: str = DATA_DIR) -> str:
    return f"{data_dir}/clusters/{cluster.cluster_id}/{component.name}"


def member_name(cluster: Cluster, component: Component) -> str:
    return etcd_member_name(cluster.name, component.name)


def host_url(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"


def spec_hash(containers: list[ContainerSpec]) -> str:
    """Changes when what the pod runs changes (images, commands, mounts): the
    pod is then replaced. Files have their own hash, per container."""
    hashed = [msgspec.structs.replace(c, startup_args=[]) for c in containers]
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
) -> PodSpec:
    return PodSpec(
        name=f"{cluster.cluster_id}-{component.name}",
        hypervisor=hypervisor,
        directory=directory,
        labels=labels_for(cluster, component, spec_hash(containers), directory),
        containers=containers,
        files=files,
        blocked=blocked,
    )


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def in_fleet(pod: PodSpec, fleet: str) -> PodSpec:
    if not fleet:
        return pod
    return msgspec.structs.replace(pod, labels={**pod.labels, LABEL_FLEET: fleet})
