"""One reconcile pass against the fake CRI runtime: convergence from empty,
no mutating call on a converged hypervisor, drift repaired, deletion, and
nothing touched that oneinfra did not create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from oneinfra import render as bp
from oneinfra.api.pb.runtime.v1 import api_pb2 as pb
from oneinfra.api.runtime import v1 as api
from oneinfra.reconcile import hypervisor_pass as reconciler
from oneinfra.reconcile import plan as pl
from oneinfra.render.labels import LABEL_ROLE, WRITER_ROLE
from oneinfra.runtime import cri, realize
from oneinfra.runtime.realize import WRITER_IMAGE
from tests.fakecri import FakeRuntime, serve_fake

from .pods import pod_spec

pytestmark = pytest.mark.anyio


DESIRED = [
    pod_spec("a", "control-plane-0", ("etcd", "kube-apiserver")),
    pod_spec("a", "ingress", ("haproxy",)),
]


@pytest.fixture
async def hypervisor(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, cri.HypervisorClient]]:
    async with serve_fake(tmp_path / "cri.sock") as fake:
        client = cri.HypervisorClient(f"unix://{tmp_path}/cri.sock")
        yield fake, client
        client.close()


def running_roles(fake: FakeRuntime) -> list[str]:
    return sorted(
        c.config.labels["oneinfra.io/role"]
        for c in fake.containers.values()
        if c.state == api.ContainerState.CONTAINER_RUNNING
    )


async def test_converges_from_empty_then_makes_no_mutating_call(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    done = (await reconciler.reconcile(client, DESIRED)).actions
    assert sorted(type(a).__name__ for a in done) == ["CreatePod", "CreatePod"]
    assert running_roles(fake) == ["etcd", "haproxy", "kube-apiserver"]
    assert len(fake.sandboxes) == 2  # the file writers are gone
    before = fake.mutating_calls()
    assert (await reconciler.reconcile(client, DESIRED)).actions == []
    assert fake.mutating_calls() == before
    assert {m for m in fake.calls if fake.calls[m]} >= {"list_pod_sandbox", "list_containers"}


async def test_an_exited_container_is_restarted(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED)
    etcd = next(
        c for c in fake.containers.values() if c.config.labels["oneinfra.io/role"] == "etcd"
    )
    fake.exit(etcd.id, 137)
    done = (await reconciler.reconcile(client, DESIRED)).actions
    assert [type(a).__name__ for a in done] == ["RestartContainer"]
    assert running_roles(fake) == ["etcd", "haproxy", "kube-apiserver"]
    assert etcd.id not in fake.containers
    assert (await reconciler.reconcile(client, DESIRED)).actions == []


async def test_a_removed_sandbox_is_recreated_and_a_changed_spec_replaced(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED)
    ingress = next(s for s in fake.sandboxes.values() if "ingress" in s.config.metadata.name)  # type: ignore[union-attr]
    await client.stop_sandbox(ingress.id)  # someone removes it behind our back
    await client.remove_sandbox(ingress.id)
    await reconciler.reconcile(client, DESIRED)
    assert running_roles(fake) == ["etcd", "haproxy", "kube-apiserver"]
    changed = [DESIRED[0], pod_spec("a", "ingress", ("haproxy",), version=2)]
    done = (await reconciler.reconcile(client, changed)).actions
    assert [type(a).__name__ for a in done] == ["RemovePod", "CreatePod"]
    hashes = sorted(s.config.labels[bp.LABEL_SPEC_HASH] for s in fake.sandboxes.values())
    assert hashes == ["v1", "v2"]


def with_grace(pod: bp.PodSpec, role: str, grace: int, version: int) -> bp.PodSpec:
    """The pod with `role` given `grace`, every container reading pki/."""
    pki = [bp.Mount(bp.PKI, f"{pod.directory}/pki")]
    containers = [
        msgspec.structs.replace(c, mounts=pki, stop_grace=grace if c.name == role else c.stop_grace)
        for c in pod.containers
    ]
    labels = {**pod.labels, bp.LABEL_SPEC_HASH: f"v{version}"}
    return msgspec.structs.replace(pod, containers=containers, labels=labels)


async def test_running_containers_get_their_grace_before_their_pod_goes(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    """An API server told to stop serves on until the ingress drops it: a
    replaced or removed pod stops each container with the grace its
    blueprint gave it, none is killed by the sandbox's stop."""
    fake, client = hypervisor
    graceful = with_grace(DESIRED[0], "kube-apiserver", 15, version=1)
    await reconciler.reconcile(client, [graceful, DESIRED[1]])
    replaced = with_grace(DESIRED[0], "kube-apiserver", 15, version=2)
    done = (await reconciler.reconcile(client, [replaced, DESIRED[1]])).actions
    assert [type(a).__name__ for a in done] == ["RemovePod", "CreatePod"]
    assert sorted(fake.stopped) == [("etcd", bp.STOP_GRACE), ("kube-apiserver", 15)]
    fake.stopped.clear()
    await reconciler.reconcile(client, [DESIRED[1]])  # the replica is gone
    assert sorted(fake.stopped) == [("etcd", bp.STOP_GRACE), ("kube-apiserver", 15)]
    assert fake.killed == []


async def test_a_container_restarted_for_new_files_gets_its_grace(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    graceful = with_grace(DESIRED[0], "kube-apiserver", 15, version=1)
    await reconciler.reconcile(client, [graceful])
    renewed = new_files(graceful, b"new")
    done = (await reconciler.reconcile(client, [renewed])).actions
    assert [type(a).__name__ for a in done] == ["RestartContainer", "RestartContainer"]
    assert sorted(fake.stopped) == [("etcd", bp.STOP_GRACE), ("kube-apiserver", 15)]


def new_files(pod: bp.PodSpec, content: bytes, files: list[bp.File] | None = None) -> bp.PodSpec:
    written = files if files is not None else [bp.File("pki/ca.crt", content)]
    fields = msgspec.structs.asdict(pod) | {"files": written}
    return bp.PodSpec(**{k: v for k, v in fields.items() if k != "files_hashes"})


def reloading_ingress() -> bp.PodSpec:
    pod = with_grace(DESIRED[1], "haproxy", bp.STOP_GRACE, version=1)
    (haproxy,) = pod.containers
    return msgspec.structs.replace(
        pod, containers=[msgspec.structs.replace(haproxy, reload=["sh", "-c", "kill -USR2 1"])]
    )


async def test_new_files_are_reloaded_by_a_container_that_can_and_it_keeps_running(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    """A scale rewrites the ingress's configuration: haproxy reads it anew,
    its connections kept, and the next passes leave it be."""
    fake, client = hypervisor
    reloaded: reconciler.Reloaded = {}
    await reconciler.reconcile(client, [reloading_ingress()], reloaded=reloaded)
    (running,) = fake.containers.values()
    scaled = new_files(reloading_ingress(), b"three replicas")
    done = (await reconciler.reconcile(client, [scaled], reloaded=reloaded)).actions
    assert [type(a).__name__ for a in done] == ["ReloadContainer"]
    assert list(fake.containers) == [running.id] and fake.stopped == []
    assert fake.calls["exec_sync"] == 1
    assert reloaded == {running.id: (scaled.files_hash(scaled.containers[0]), "")}
    again = (await reconciler.reconcile(client, [scaled], reloaded=reloaded)).actions
    assert again == [] and fake.calls["exec_sync"] == 1


async def test_a_new_live_file_is_written_under_its_container_restarting_nothing(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    """An API server serves a new serving certificate once it is written."""
    fake, client = hypervisor
    pod = with_grace(DESIRED[0], "kube-apiserver", 15, version=1)
    pod = msgspec.structs.replace(pod, containers=[
        msgspec.structs.replace(c, live_files=["pki/apiserver.crt"])
        if c.name == "kube-apiserver" else msgspec.structs.replace(c, mounts=[])
        for c in pod.containers
    ])  # fmt: skip
    serving = [bp.File("pki/ca.crt", b"ca"), bp.File("pki/apiserver.crt", b"old")]
    pod = new_files(pod, b"ca", serving)
    reloaded: reconciler.Reloaded = {}
    await reconciler.reconcile(client, [pod], reloaded=reloaded)
    running, writes = set(fake.containers), fake.calls["create_container"]
    reissued = new_files(pod, b"ca", [serving[0], bp.File("pki/apiserver.crt", b"new")])
    done = (await reconciler.reconcile(client, [reissued], reloaded=reloaded)).actions
    assert [type(a).__name__ for a in done] == ["ReloadContainer"]
    assert fake.stopped == [] and running <= set(fake.containers)
    assert fake.calls["exec_sync"] == 0  # it watches its files: nothing to tell it
    assert fake.calls["create_container"] == writes + 1  # the file writer, once
    assert (await reconciler.reconcile(client, [reissued], reloaded=reloaded)).actions == []
    # Its other files change: it restarts.
    renewed = new_files(reissued, b"new ca", [bp.File("pki/ca.crt", b"new ca"), serving[1]])
    done = (await reconciler.reconcile(client, [renewed], reloaded=reloaded)).actions
    assert [type(a).__name__ for a in done] == ["RestartContainer"]
    assert fake.stopped == [("kube-apiserver", 15)]


async def test_a_reload_that_fails_is_a_restart(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    reloaded: reconciler.Reloaded = {}
    await reconciler.reconcile(client, [reloading_ingress()], reloaded=reloaded)
    (old,) = fake.containers
    fake.exec_result = api.ExecSyncResponse(exit_code=127, stderr=b"sh: not found")
    scaled = new_files(reloading_ingress(), b"three replicas")
    result = await reconciler.reconcile(client, [scaled], reloaded=reloaded)
    assert result.failures == {}
    assert old not in fake.containers and running_roles(fake) == ["haproxy"]
    assert (await reconciler.reconcile(client, [scaled], reloaded=reloaded)).actions == []


async def test_deleting_everything_leaves_only_what_is_not_ours(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    theirs = await client.run_sandbox(
        pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="kubelet-pod", uid="x"),
            labels={"io.kubernetes.pod.name": "coredns"},
        )
    )
    await reconciler.reconcile(client, DESIRED)
    await reconciler.reconcile(client, [])
    assert list(fake.sandboxes) == [theirs]


async def test_pods_created_together_have_their_files_written_by_one_helper(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED)
    # One writer for both pods, in a sandbox of its own, gone after: three
    # sandboxes made (two pods and the helper's), four containers created.
    assert fake.calls["run_pod_sandbox"] == 3 and fake.calls["create_container"] == 4
    assert len(fake.sandboxes) == 2
    (writer,) = [c for c in fake.removed_containers if c.config.labels[LABEL_ROLE] == WRITER_ROLE]
    (mount,) = writer.config.mounts
    assert mount.host_path == "/data/a" and mount.container_path == "/target"
    command = writer.config.command
    assert command[:3] == ["sh", "-c", realize.RUN_EACH] and len(command) == 6
    assert "/target/control-plane-0/pki/ca.crt" in command[4]
    assert "/target/ingress/pki/ca.crt" in command[5]


async def test_a_pod_created_alone_writes_its_files_in_its_own_sandbox(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED[1:])
    # A helper's own sandbox would cost more calls than the pod's writer.
    assert fake.calls["run_pod_sandbox"] == 1 and fake.calls["create_container"] == 2


async def test_a_failing_writer_stops_the_pod_from_starting(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    fake.writer_exit_code = 1
    result = await reconciler.reconcile(client, DESIRED)
    # Each pod failed on its own, and says why; the writers are gone, and no
    # container started without its files.
    assert set(result.failures) == {pl.key_of(p) for p in DESIRED}
    assert all("exited 1" in why for why in result.failures.values())
    assert fake.containers == {}
    fake.writer_exit_code = 0  # the next pass finishes the job
    await reconciler.reconcile(client, DESIRED)
    assert running_roles(fake) == ["etcd", "haproxy", "kube-apiserver"]
    assert (await reconciler.reconcile(client, DESIRED)).actions == []


async def test_a_removed_component_takes_its_directory_with_it(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED)
    fake.calls.clear()
    result = await reconciler.reconcile(client, DESIRED[1:])
    assert [type(a).__name__ for a in result.actions] == ["RemovePod"]
    cleaner = [c for c in fake.removed_containers if "rm -rf" in " ".join(c.config.command)]
    assert len(cleaner) == 1
    script = cleaner[0].config.command[-1]
    assert "rm -rf /target/a/control-plane-0" in script
    assert cleaner[0].config.mounts[0].host_path == "/data"
    assert len(fake.sandboxes) == 1


async def test_pods_started_together_check_and_pull_each_image_once(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    desired = [pod_spec(c, "control-plane-0", ("etcd", "kube-apiserver")) for c in "abcdef"]
    await reconciler.reconcile(client, desired)
    images = {c.image for pod in desired for c in pod.containers} | {WRITER_IMAGE}
    assert fake.calls["image_status"] == len(images)  # not once per pod, nor per file writer
    assert fake.calls["pull_image"] == len(images)
    assert running_roles(fake).count("etcd") == 6


async def test_an_image_gone_since_it_was_seen_is_pulled_again(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    await reconciler.reconcile(client, DESIRED)
    etcd_image = DESIRED[0].container("etcd").image
    fake.images.discard(etcd_image)  # someone's `crictl rmi`
    (etcd,) = [c for c in fake.containers.values() if c.config.labels[LABEL_ROLE] == "etcd"]
    fake.exit(etcd.id, 1)
    failed = await reconciler.reconcile(client, DESIRED)  # remembered present: the create fails
    assert failed.failures and etcd_image not in fake.images
    await reconciler.reconcile(client, DESIRED)  # checked again after the failure: pulled
    assert etcd_image in fake.images and running_roles(fake).count("etcd") == 1
