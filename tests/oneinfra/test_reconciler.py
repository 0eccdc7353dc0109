"""One reconcile pass against the fake CRI runtime: convergence from empty,
no mutating call on a converged hypervisor, drift repaired, deletion, and
nothing touched that oneinfra did not create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oneinfra import render as bp
from oneinfra.api.runtime import v1 as api
from oneinfra.reconcile import hypervisor_pass as reconciler
from oneinfra.reconcile import plan as pl
from oneinfra.runtime import cri
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


async def test_deleting_everything_leaves_only_what_is_not_ours(
    hypervisor: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    fake, client = hypervisor
    theirs = await client.run_sandbox(
        api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name="kubelet-pod", uid="x"),
            labels={"io.kubernetes.pod.name": "coredns"},
        )
    )
    await reconciler.reconcile(client, DESIRED)
    await reconciler.reconcile(client, [])
    assert list(fake.sandboxes) == [theirs]


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
