"""The daemon killed with SIGKILL at random moments of a 10-cluster
creation, 20 times: it always converges, and never runs a component twice.

The daemon is a real child process with its SQLite log; the hypervisors are
fake CRI runtimes served by this test process on Unix sockets, so that they
outlive every kill and show exactly what was left behind.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import anyio
import pytest

from oneinfra import render as bp
from oneinfra.api.runtime import v1 as cri
from tests.fakecri import FakeEtcd, FakeRuntime, serve_fake

from .daemon import Daemon

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLUSTERS = {f"c{i}": 3 if i in (0, 5) else 1 for i in range(10)}  # name -> replicas
KILLS = 20
# The probe of /readyz gets no answer from the fakes' addresses, so the
# controller manager and scheduler, which wait for the API, never start.
CONTAINERS = {"control-plane": 2, "ingress": 1}
WRITER = {"oneinfra.io/role": "file-writer"}


def add_fakes(daemon: Daemon, fakes: dict[str, FakeRuntime], directory: Path) -> None:
    """Register the fakes served at DIRECTORY/NAME.sock: "pub" public, the rest private."""
    for name in fakes:
        role = "--public" if name == "pub" else "--private"
        address = "192.0.2.1" if name == "pub" else f"198.51.100.{name[-1]}"
        daemon.cli("hypervisor", "add", name, "--endpoint", f"unix://{directory}/{name}.sock",
                   "--ip-address", address, role, "--data-dir", "/data")  # fmt: skip


def components(fakes: dict[str, FakeRuntime]) -> Counter[tuple[str, str]]:
    """How many live sandboxes each (cluster, component) has, writers aside."""
    return Counter(
        (s.config.labels[bp.LABEL_CLUSTER], s.config.labels[bp.LABEL_COMPONENT])
        for fake in fakes.values()
        for s in fake.sandboxes.values()
        if s.state == cri.PodSandboxState.SANDBOX_READY
        and s.config.labels.get("oneinfra.io/role") != "file-writer"
    )


def converged(fakes: dict[str, FakeRuntime], expected: dict[tuple[str, str], int]) -> bool:
    """Exactly the expected pods, each with one running container per role,
    and nothing else: no writer, no stale or doubled container."""
    sandboxes = [s for f in fakes.values() for s in f.sandboxes.values()]
    if len(sandboxes) != len(expected):
        return False
    containers = [c for f in fakes.values() for c in f.containers.values()]
    running = Counter(
        (c.config.labels[bp.LABEL_CLUSTER], c.config.labels[bp.LABEL_COMPONENT])
        for c in containers
        if c.state == cri.ContainerState.CONTAINER_RUNNING
    )
    return (
        all(s.state == cri.PodSandboxState.SANDBOX_READY for s in sandboxes)
        and len(containers) == sum(expected.values())
        and dict(running) == expected
    )


async def test_sigkill_at_random_moments_always_converges_without_duplicates(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261124)
    etcd = FakeEtcd()
    async with AsyncExitStack() as stack:
        fakes = {
            name: await stack.enter_async_context(
                serve_fake(tmp_path / f"{name}.sock", FakeRuntime(latency=0.002, etcd=etcd))
            )
            for name in ("pub", "priv0", "priv1", "priv2")
        }
        daemon = Daemon(tmp_path, "--resync", "1", reconcile=True)
        await anyio.to_thread.run_sync(daemon.start)
        await anyio.to_thread.run_sync(add_fakes, daemon, fakes, tmp_path)

        async def create_all() -> None:
            for name, replicas in CLUSTERS.items():
                await anyio.to_thread.run_sync(partial(
                    daemon.cli, "cluster", "create", name, "--control-plane-replicas",
                    str(replicas), check=False,
                ))  # fmt: skip

        kills_while_busy = 0
        for _ in range(KILLS):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(create_all)  # refused for those that exist: harmless
                await anyio.sleep(rng.uniform(0.05, 1.2))
                busy = any(f.calls for f in fakes.values())
                for fake in fakes.values():
                    fake.calls.clear()
                kills_while_busy += busy
                assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
                tasks.cancel_scope.cancel()
            doubled = {k: n for k, n in components(fakes).items() if n > 1}
            assert not doubled, f"components running twice: {doubled}"
            await anyio.to_thread.run_sync(daemon.start)
        assert kills_while_busy >= KILLS // 2, "the kills did not land in the middle of work"

        await create_all()
        listed = await anyio.to_thread.run_sync(lambda: daemon.json("cluster", "list"))
        assert sorted(c["name"] for c in listed) == sorted(CLUSTERS)
        expected = {
            (c["name"], x["name"]): CONTAINERS[x["role"]] for c in listed for x in c["components"]
        }
        deadline = anyio.current_time() + 60
        while not converged(fakes, expected):  # the fakes change without telling anyone
            assert anyio.current_time() < deadline, "no convergence within 60 s"
            await anyio.sleep(0.1)
        await anyio.to_thread.run_sync(daemon.stop)
