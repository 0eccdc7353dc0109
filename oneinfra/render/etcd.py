"""The etcd member of a control-plane replica (kubeadm's phases/etcd): its
container, and how it joins its cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .pods import PKI, ContainerSpec, EtcdRestoreSpec, Mount, host_url

DATA_DIR = "/var/lib/etcd"  # in the container: the member's data


def state_flag(state: Literal["new", "existing"]) -> str:
    return f"--initial-cluster-state={state}"


@dataclass(frozen=True)
class EtcdMembership:
    """Who the etcd cluster is when this member starts, and how it joins:
    'new' for the members a cluster is created with, 'existing' for one added
    later (as a learner, by the reconciler, before it starts)."""

    members: dict[str, str]  # member name -> peer URL
    state: Literal["new", "existing"]

    def startup_args(self) -> list[str]:
        return [
            "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in sorted(self.members.items())),
            state_flag(self.state),
        ]


def starts_new(container: ContainerSpec) -> bool:
    """Whether this etcd starts as a founding member ('new'): on an empty
    data directory it bootstraps a cluster anew. One added later
    ('existing') may exit before it has written anything, and starts again
    empty."""
    return state_flag("new") in container.startup_args


def data_directory(generation: int) -> str:
    """A member's data, under its component's directory: a replaced member
    (its data lost) starts empty in a directory of its own, beside the old."""
    return "etcd" if generation == 0 else f"etcd-{generation}"


BUMP_REVISION = 1_000_000_000  # what Kubernetes' docs advise: its watchers see time go on


@dataclass(frozen=True)
class RestoreSource:
    """The backup a restored member comes from, and its key."""

    location: str
    cluster: str
    cluster_id: str
    backup_id: str
    sha256: str
    size: int
    data_key: bytes


def restore_spec(
    source: RestoreSource,
    image: str,
    member: str,
    cluster_token: str,
    peer_url: str,
    membership: EtcdMembership,
    generation: int,
) -> EtcdRestoreSpec:
    """A member rebuilt from a snapshot, as one of a new cluster of all the
    members (a new token), revisions bumped and compacted, so that clients'
    watches start over instead of seeing time go backwards."""
    return EtcdRestoreSpec(
        location=source.location, cluster=source.cluster, cluster_id=source.cluster_id,
        backup_id=source.backup_id, sha256=source.sha256, size=source.size,
        data_key=source.data_key, image=image, data_directory=data_directory(generation),
        arguments=[
            f"--name={member}",
            membership.startup_args()[0],  # --initial-cluster
            f"--initial-cluster-token={cluster_token}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--bump-revision={BUMP_REVISION}",
            "--mark-compacted",
        ],
    )  # fmt: skip


def etcd_container(
    image: str,
    member: str,
    cluster_token: str,
    address: str,
    ports: dict[str, int],
    directory: str,
    membership: EtcdMembership | None,
    generation: int = 0,
) -> ContainerSpec:
    client_url = host_url(address, ports["etcd-client"])
    peer_url = host_url(address, ports["etcd-peer"])
    return ContainerSpec(
        name="etcd",
        image=image,
        command=[
            "etcd",
            f"--name={member}",
            f"--data-dir={DATA_DIR}",
            f"--listen-client-urls=https://127.0.0.1:{ports['etcd-client']},{client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster-token={cluster_token}",
            f"--cert-file={PKI}/etcd/server.crt",
            f"--key-file={PKI}/etcd/server.key",
            f"--trusted-ca-file={PKI}/etcd/ca.crt",
            "--client-cert-auth=true",
            f"--peer-cert-file={PKI}/etcd/peer.crt",
            f"--peer-key-file={PKI}/etcd/peer.key",
            f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
            "--peer-client-cert-auth=true",
        ],
        # Only its own certificates: a new API server certificate (scaling)
        # must not restart etcd.
        mounts=[
            Mount(f"{PKI}/etcd", f"{directory}/pki/etcd"),
            Mount(DATA_DIR, f"{directory}/{data_directory(generation)}", readonly=False),
        ],
        startup_args=membership.startup_args() if membership else [],
    )
