"""The plan: from any observed state, one plan converges a hypervisor to its
desired pods, and the plan after that is empty (a converged hypervisor
gets no mutating call)."""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st

from oneinfra import render as bp
from oneinfra.reconcile import plan as pl
from oneinfra.render.labels import BACKUP_ROLE, LABEL_ROLE, WRITER_ROLE

from .pods import pod_spec

ids = itertools.count()


def running(pod: bp.PodSpec) -> pl.ObservedPod:
    return pl.ObservedPod(
        sandbox_id=f"s{next(ids)}",
        labels=dict(pod.labels),
        ready=True,
        containers=[
            pl.ObservedContainer(f"c{next(ids)}", c.name, True, pod.files_hash(c))
            for c in pod.containers
        ],
    )


def apply(actions: list[pl.Action], world: list[pl.ObservedPod]) -> list[pl.ObservedPod]:
    """What the hypervisor looks like after the actions, in the model."""
    pods = {p.sandbox_id: p for p in world}
    for action in actions:
        match action:
            case pl.RemovePod():
                assert action.sandbox_id in pods, "removing a sandbox that is not there"
                del pods[action.sandbox_id]
            case pl.CreatePod():
                fresh = running(action.pod)
                pods[fresh.sandbox_id] = fresh
            case pl.RestartContainer():
                current = pods[action.sandbox_id]
                containers = [c for c in current.containers if c.id not in action.old_container_ids]
                (spec,) = [c for c in action.pod.containers if c.name == action.container]
                started = pl.ObservedContainer(
                    f"c{next(ids)}", action.container, True, action.pod.files_hash(spec)
                )
                containers.append(started)
                pods[action.sandbox_id] = pl.ObservedPod(
                    current.sandbox_id, current.labels, current.ready, containers
                )
            case pl.RemoveContainer():
                current = pods[action.sandbox_id]
                assert any(c.id == action.container_id for c in current.containers)
                containers = [c for c in current.containers if c.id != action.container_id]
                pods[action.sandbox_id] = pl.ObservedPod(
                    current.sandbox_id, current.labels, current.ready, containers
                )
    return list(pods.values())


clusters = st.sampled_from(["a", "b", "c"])
components = st.sampled_from(["control-plane-0", "control-plane-1", "ingress"])
container_sets = st.sampled_from([("etcd", "kube-apiserver"), ("haproxy",), ("etcd",)])
specs = st.builds(
    lambda c, k, v, cs: pod_spec(c, k, cs, v),
    clusters,
    components,
    st.integers(1, 2),
    container_sets,
)


DAMAGE = ("intact", "exited", "missing", "twice", "twice, one exited", "old files")


@st.composite
def drifted(draw: st.DrawFn, pool: list[bp.PodSpec]) -> list[pl.ObservedPod]:
    """An observed world: pods that are, were or never were wanted, damaged:
    containers vanished, exited, or doubled by a crash in mid-restart;
    sandboxes not ready; file writers left behind."""
    world = []
    for pod in draw(st.lists(st.sampled_from(pool) if pool else specs, max_size=6)):
        observed = running(pod)
        containers: list[pl.ObservedContainer] = []
        for c in observed.containers:
            damage = draw(st.sampled_from(DAMAGE))
            if damage in ("intact", "twice"):
                containers.append(c)
            if damage == "exited":
                containers.append(pl.ObservedContainer(c.id, c.role, False, c.files_hash))
            if damage in ("twice", "twice, one exited"):
                containers.append(pl.ObservedContainer(f"c{next(ids)}", c.role, True, c.files_hash))
            if damage == "twice, one exited":
                containers.append(
                    pl.ObservedContainer(f"c{next(ids)}", c.role, False, c.files_hash)
                )
            if damage == "old files":  # started before its files changed
                containers.append(pl.ObservedContainer(c.id, c.role, True, "old"))
        labels = dict(observed.labels)
        if draw(st.integers(0, 9)) == 0:
            labels[LABEL_ROLE] = WRITER_ROLE
        ready = draw(st.sampled_from([True, True, False]))
        world.append(pl.ObservedPod(observed.sandbox_id, labels, ready, containers))
    return world


@settings(max_examples=600, deadline=None)
@given(desired=st.lists(specs, max_size=6), data=st.data())
def test_one_plan_converges_and_the_next_is_empty(
    desired: list[bp.PodSpec], data: st.DataObject
) -> None:
    desired = list({pl.key_of(p): p for p in desired}.values())  # one pod per component
    pool = desired + data.draw(st.lists(specs, max_size=4))
    world = data.draw(drifted(pool))
    actions = pl.plan(desired, world)
    for kind in {type(a).__name__ for a in actions}:
        event(kind)
    after = apply(actions, world)
    assert pl.plan(desired, after) == [], "a converged hypervisor was planned to change"
    assert sorted(p.key for p in after) == sorted(pl.key_of(p) for p in desired)
    by_key = {p.key: p for p in after}
    for pod in desired:
        seen = by_key[pl.key_of(pod)]
        assert seen.ready and seen.labels[bp.LABEL_SPEC_HASH] == pod.labels[bp.LABEL_SPEC_HASH]
        assert LABEL_ROLE not in seen.labels
        assert sorted(c.role for c in seen.containers) == sorted(c.name for c in pod.containers)
        assert all(c.running for c in seen.containers)


def test_a_converged_hypervisor_gets_no_action() -> None:
    desired = [
        pod_spec("a", "ingress", ("haproxy",), 1),
        pod_spec("a", "control-plane-0", ("etcd",), 1),
    ]
    assert pl.plan(desired, [running(p) for p in desired]) == []


def test_an_exited_container_is_restarted_in_place() -> None:
    pod = pod_spec("a", "control-plane-0", ("etcd", "kube-apiserver"), 1)
    observed = running(pod)
    etcd = observed.containers[0]
    crashed = pl.ObservedPod(
        observed.sandbox_id, observed.labels, True,
        [pl.ObservedContainer(etcd.id, "etcd", False, etcd.files_hash), observed.containers[1]],
    )  # fmt: skip
    assert pl.plan([pod], [crashed]) == [
        pl.RestartContainer(observed.sandbox_id, [etcd.id], pod, "etcd", after_exit=True)
    ]


def test_a_crash_mid_restart_leaves_one_container_per_role() -> None:
    """Two etcd containers (the old one exited, the new one running) and a
    container of no role: the stale ones go, nothing is restarted."""
    pod = pod_spec("a", "control-plane-0", ("etcd",), 1)
    observed = running(pod)
    old, new = pl.ObservedContainer("c-old", "etcd", False), observed.containers[0]
    stray = pl.ObservedContainer("c-stray", "debug", True)
    messy = pl.ObservedPod(observed.sandbox_id, observed.labels, True, [old, new, stray])
    assert pl.plan([pod], [messy]) == [
        pl.RemoveContainer(observed.sandbox_id, "c-stray", "not in the blueprint"),
        pl.RemoveContainer(observed.sandbox_id, "c-old", "a stale etcd"),
    ]


def running_graces(pod: pl.ObservedPod) -> dict[str, int]:
    return {c.id: bp.STOP_GRACE for c in pod.containers if c.running}


def test_a_removal_stops_what_runs_with_the_grace_on_its_label() -> None:
    pod = running(pod_spec("a", "control-plane-0", ("etcd", "kube-apiserver"), 1))
    etcd, apiserver = pod.containers
    graceful = msgspec.structs.replace(apiserver, stop_grace=15)
    exited = msgspec.structs.replace(etcd, running=False)
    world = msgspec.structs.replace(pod, containers=[exited, graceful])
    assert pl.plan([], [world]) == [
        pl.RemovePod(pod.sandbox_id, "no longer desired", "/data/a/control-plane-0",
                     {apiserver.id: 15}),
    ]  # fmt: skip


def test_a_changed_spec_replaces_the_pod_removing_first() -> None:
    old, new = pod_spec("a", "ingress", ("haproxy",), 1), pod_spec("a", "ingress", ("haproxy",), 2)
    observed = running(old)
    assert pl.plan([new], [observed]) == [
        pl.RemovePod(observed.sandbox_id, "its spec changed", running=running_graces(observed)),
        pl.CreatePod(new, ["haproxy"]),
    ]


def test_pods_of_a_deleted_cluster_are_removed() -> None:
    gone = running(pod_spec("a", "ingress", ("haproxy",), 1))
    assert pl.plan([], [gone]) == [
        pl.RemovePod(gone.sandbox_id, "no longer desired", "/data/a/ingress", running_graces(gone))
    ]


def test_changed_files_restart_only_the_containers_reading_them() -> None:
    pod = pod_spec("a", "control-plane-0", ("etcd", "kube-apiserver"), 1)
    observed = running(pod)
    etcd, apiserver = observed.containers
    stale = pl.ObservedContainer(apiserver.id, apiserver.role, True, "files of before")
    world = pl.ObservedPod(observed.sandbox_id, observed.labels, True, [etcd, stale])
    assert pl.plan([pod], [world]) == [
        pl.RestartContainer(observed.sandbox_id, [apiserver.id], pod, "kube-apiserver", True)
    ]


def test_changed_files_are_reloaded_where_the_blueprint_says_how() -> None:
    pod = pod_spec("a", "ingress", ("haproxy",), 1)
    (haproxy,) = pod.containers
    reloading = msgspec.structs.replace(
        pod, containers=[msgspec.structs.replace(haproxy, reload=["reload"])]
    )
    observed = running(reloading)
    (current,) = observed.containers
    stale = msgspec.structs.replace(current, files_hash="files of before")
    world = msgspec.structs.replace(observed, containers=[stale])
    assert pl.plan([reloading], [world]) == [
        pl.ReloadContainer(observed.sandbox_id, current.id, reloading, "haproxy")
    ]
    # Nothing runs to reload: it is started.
    exited = msgspec.structs.replace(stale, running=False)
    gone = msgspec.structs.replace(observed, containers=[exited])
    assert pl.plan([reloading], [gone]) == [
        pl.RestartContainer(observed.sandbox_id, [current.id], reloading, "haproxy", True, True)
    ]


def test_a_protected_pod_stays_and_a_blocked_pod_waits() -> None:
    leaving = running(pod_spec("a", "control-plane-2", ("etcd",), 1))
    joining = msgspec.structs.replace(
        pod_spec("a", "control-plane-3", ("etcd",), 1), blocked="waiting to join etcd"
    )
    assert pl.plan([joining], [leaving], protected={leaving.key}) == []
    # Once its member is out of etcd, it goes, directory and all.
    assert pl.plan([joining], [leaving]) == [
        pl.RemovePod(
            leaving.sandbox_id,
            "no longer desired",
            "/data/a/control-plane-2",
            running_graces(leaving),
        )
    ]
    # A blocked pod that runs already is kept as it is.
    running_joiner = running(joining)
    assert pl.plan([joining], [running_joiner]) == []


def test_a_backup_reader_is_left_to_its_backup_while_its_cluster_is_here() -> None:
    desired = [pod_spec("a", "control-plane-0", ("etcd",), 1)]
    reader = pl.ObservedPod(
        "sb-reader",
        {**bp.MANAGED, bp.LABEL_CLUSTER_ID: "a", bp.LABEL_COMPONENT: "control-plane-0-backup",
         LABEL_ROLE: BACKUP_ROLE},
        True,
        [pl.ObservedContainer("c-reader", "reader", True, "")],
    )  # fmt: skip
    assert pl.plan(desired, [running(desired[0]), reader]) == []
    # A crash's reader of a cluster gone from here goes.
    (removal,) = pl.plan([], [reader])
    assert isinstance(removal, pl.RemovePod) and removal.sandbox_id == "sb-reader"
    assert removal.reason == "a backup reader left behind" and not removal.directory
