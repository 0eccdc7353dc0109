"""The reconciler's decision, pure: what a hypervisor runs versus what it
should, as a list of actions. Level-triggered: it compares with what CRI
reports, never with what oneinfra believes it did, so a crash anywhere is
repaired by the next plan. Only sandboxes labelled as oneinfra's are seen.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

import msgspec

from .. import render as bp
from ..render.labels import BACKUP_ROLE, LABEL_ROLE, WRITER_ROLE

Key = tuple[str, str]  # a pod's (cluster id, component): how the reconciler names it


class ObservedContainer(msgspec.Struct, frozen=True, gc=False):
    id: str
    role: str  # the container's name in its blueprint
    running: bool
    files_hash: str = ""  # of the files it was started with
    exit_code: int = 0
    stop_grace: int = bp.STOP_GRACE  # seconds it gets to exit (its label)
    live_hash: str = ""  # of the files it re-reads by itself, as last written


class ObservedPod(msgspec.Struct, frozen=True, gc=False):
    sandbox_id: str
    labels: dict[str, str]
    ready: bool
    containers: list[ObservedContainer]

    @property
    def key(self) -> tuple[str, str]:
        return self.labels.get(bp.LABEL_CLUSTER_ID, ""), self.labels.get(bp.LABEL_COMPONENT, "")


class CreatePod(msgspec.Struct, frozen=True, tag=True):
    pod: bp.PodSpec
    start: list[str]  # the containers to start now (the others wait for the API)
    files_written: bool = False  # by a helper for the pass's creations (realize.write_many)


class RemovePod(msgspec.Struct, frozen=True, tag=True):
    sandbox_id: str
    reason: str
    # The component is gone for good: its directory (files, etcd data) goes
    # too, before the sandbox, so that a crash leaves the sandbox to retry.
    directory: str = ""
    # Its running containers, by id: the seconds each gets to exit, before
    # the sandbox goes.
    running: dict[str, int] = msgspec.field(default_factory=dict)


class RestartContainer(msgspec.Struct, frozen=True, tag=True):
    """Start a container of a healthy pod anew: none of its role runs. The
    stale ones of that role (exited, or left by a crash) go first."""

    sandbox_id: str
    old_container_ids: list[str]
    pod: bp.PodSpec
    container: str
    write_files: bool = False  # its files changed since it was started
    after_exit: bool = False  # every container it had in the role exited: a crash


class ReloadContainer(msgspec.Struct, frozen=True, tag=True):
    """Rewrite a running container's files and have it read them anew (its
    blueprint's `reload`, if it does not watch them itself), instead of
    restarting it."""

    sandbox_id: str
    container_id: str
    pod: bp.PodSpec
    container: str
    write_files: bool = True


class RemoveContainer(msgspec.Struct, frozen=True, tag=True):
    sandbox_id: str
    container_id: str
    reason: str
    grace: int = bp.STOP_GRACE  # seconds it gets to exit


Action = CreatePod | RemovePod | RestartContainer | ReloadContainer | RemoveContainer


def startable(pod: bp.PodSpec, api_ready: bool) -> list[bp.ContainerSpec]:
    return [c for c in pod.containers if api_ready or not c.after_api]


def container_actions(current: ObservedPod, pod: bp.PodSpec, api_ready: bool) -> list[Action]:
    """Exactly one running container per role of the blueprint, started with
    the role's current files, and no other. A role that waits for the API
    is not started (nor restarted) until it answers."""
    actions: list[Action] = []
    roles = {c.name for c in pod.containers}
    for container in sorted(current.containers, key=lambda c: c.id):
        if container.role not in roles:
            actions.append(
                RemoveContainer(
                    current.sandbox_id, container.id, "not in the blueprint", container.stop_grace
                )
            )
    for spec in pod.containers:
        role, files = spec.name, pod.files_hash(spec)
        mine = sorted((c for c in current.containers if c.role == role), key=lambda c: c.id)
        live = [c for c in mine if c.running and c.files_hash == files]
        if live:
            keep = live[0]
            actions += [
                RemoveContainer(current.sandbox_id, c.id, f"a stale {role}", c.stop_grace)
                for c in mine
                if c is not keep
            ]
            if keep.live_hash != pod.live_hash(spec):  # written under it, nothing restarted
                actions.append(ReloadContainer(current.sandbox_id, keep.id, pod, role))
        elif spec.after_api and not api_ready:
            continue
        elif spec.reload and (running := [c for c in mine if c.running]):
            actions.append(ReloadContainer(current.sandbox_id, running[-1].id, pod, role))
        else:
            # Rewrite the files unless the newest one ran with these very files.
            write = not mine or mine[-1].files_hash != files
            exited = bool(mine) and not any(c.running for c in mine)
            actions.append(
                RestartContainer(current.sandbox_id, [c.id for c in mine], pod, role, write, exited)
            )
    return actions


def running(pod: ObservedPod) -> dict[str, int]:
    """What a removal stops gracefully first: its running containers."""
    return {c.id: c.stop_grace for c in pod.containers if c.running}


def key_of(pod: bp.PodSpec) -> tuple[str, str]:
    return pod.labels[bp.LABEL_CLUSTER_ID], pod.labels[bp.LABEL_COMPONENT]


def plan(
    desired: Sequence[bp.PodSpec],
    observed: Sequence[ObservedPod],
    protected: Container[tuple[str, str]] = frozenset(),
    api_ready: Container[str] = frozenset(),
) -> list[Action]:
    """Removals first (they free ports), then creations, then restarts.

    A pod no longer desired but `protected` (an etcd member still in its
    cluster) is left alone; a `blocked` pod is not created. `api_ready`
    holds the ids of the clusters whose API answers."""
    wanted = {key_of(pod): pod for pod in desired}
    removals: list[Action] = []
    creations: list[Action] = []
    restarts: list[Action] = []
    kept: set[tuple[str, str]] = set()
    clusters = {cluster_id for cluster_id, _ in wanted}
    for current in sorted(observed, key=lambda p: p.sandbox_id):
        if current.labels.get(LABEL_ROLE) == WRITER_ROLE:
            removals.append(RemovePod(current.sandbox_id, "a file writer left behind"))
            continue
        if current.labels.get(LABEL_ROLE) == BACKUP_ROLE:
            # The backup that made it removes it; a crash's is removed by the next.
            if current.key[0] not in clusters:
                removals.append(RemovePod(current.sandbox_id, "a backup reader left behind"))
            continue
        pod = wanted.get(current.key)
        if pod is None:
            if current.key not in protected:
                directory = current.labels.get(bp.LABEL_DIRECTORY, "")
                removals.append(
                    RemovePod(current.sandbox_id, "no longer desired", directory, running(current))
                )
        elif current.key in kept:
            removals.append(RemovePod(current.sandbox_id, "a duplicate", running=running(current)))
        elif current.labels.get(bp.LABEL_SPEC_HASH) != pod.labels[bp.LABEL_SPEC_HASH]:
            removals.append(
                RemovePod(current.sandbox_id, "its spec changed", running=running(current))
            )
        elif not current.ready:
            removals.append(RemovePod(current.sandbox_id, "its sandbox is not ready"))
        else:
            kept.add(current.key)
            restarts += container_actions(current, pod, key_of(pod)[0] in api_ready)
    for key, pod in sorted(wanted.items()):
        if key not in kept and not pod.blocked:
            start = [c.name for c in startable(pod, key[0] in api_ready)]
            creations.append(CreatePod(pod, start))
    return removals + creations + restarts
