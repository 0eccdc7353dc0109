"""The reconciler's loop, in process, against fake CRI hypervisors on real
Unix sockets and a real SQLite log: convergence, no-op passes, drift,
deletion, scaling with etcd membership, a dead hypervisor, and status."""

from __future__ import annotations

import itertools
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventstore import SQLiteEventStore
from oneinfra import render as bp
from oneinfra.api.runtime import v1 as cri
from oneinfra.daemon.service import FleetService
from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.reconcile.controller import Controller, Options
from oneinfra.render.labels import LABEL_ROLE
from oneinfra.storage.keystore import KeyStore
from tests.fakecri import FakeEtcd, FakeRuntime, serve_fake

pytestmark = pytest.mark.anyio

ROLES = {"control-plane": 5, "ingress": 1}  # containers per component (konnectivity-server too)


@dataclass
class Api:
    """What the probe of /readyz through each ingress gets: ok from every
    cluster, unless a test takes control (`everyone = False`)."""

    everyone: bool = True
    answering: set[str] = field(default_factory=set)
    probed: Counter[str] = field(default_factory=Counter)  # probes, by endpoint

    async def probe(self, endpoint: str, tls: ssl.SSLContext) -> str | None:
        self.probed[endpoint] += 1
        return None if self.everyone or endpoint in self.answering else "connection refused"


@dataclass
class World:
    service: FleetService
    controller: Controller
    fakes: dict[str, FakeRuntime]
    etcd: FakeEtcd
    api: Api


async def eventually(check: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Polls: the fakes change under the loop without telling anyone."""
    deadline = anyio.current_time() + seconds
    while not check():
        if anyio.current_time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await anyio.sleep(0.02)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    etcd = FakeEtcd()
    api = Api()

    async with AsyncExitStack() as stack:
        fakes = {}
        for name in ("pub", "priv0", "priv1", "priv2"):
            fakes[name] = await stack.enter_async_context(
                serve_fake(tmp_path / f"{name}.sock", FakeRuntime(etcd=etcd))
            )
        store = await stack.enter_async_context(await SQLiteEventStore.open(tmp_path / "events.db"))
        keys = KeyStore(tmp_path / "keys.db", b"k" * 32)
        stack.callback(keys.close)
        service = await FleetService.open(store, keys)
        options = Options(resync=0.3, quick=0.02, max_backoff=0.2, cri_timeout=0.5, probe=api.probe)
        controller = Controller(service, options)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        await tasks.start(service.run)
        await tasks.start(controller.run)
        for name in fakes:
            await service.execute(cmd.RegisterHypervisor(
                name=name, endpoint=f"unix://{tmp_path}/{name}.sock",
                role="public" if name == "pub" else "private",
                ip_address="192.0.2.1" if name == "pub" else f"198.51.100.{name[-1]}",
                port_range=(30000, 30999), data_dir=f"/data/{name}",
            ))  # fmt: skip
        yield World(service, controller, fakes, etcd, api)
        controller.stop()
        service.stop_accepting()


def pods_of(world: World, cluster: str) -> list[tuple[str, str]]:
    """(hypervisor, component) of every sandbox of the cluster, writers aside."""
    return sorted(
        (hv, s.config.labels[bp.LABEL_COMPONENT])
        for hv, fake in world.fakes.items()
        for s in fake.sandboxes.values()
        if s.config.labels.get(bp.LABEL_CLUSTER) == cluster
        and s.config.labels.get("oneinfra.io/role") != "file-writer"
    )


def running_containers(world: World, cluster: str) -> int:
    return sum(
        1
        for fake in world.fakes.values()
        for c in fake.containers.values()
        if c.config.labels.get(bp.LABEL_CLUSTER) == cluster
        and c.state == cri.ContainerState.CONTAINER_RUNNING
    )


def converged(world: World, name: str) -> bool:
    cluster = world.service.state.clusters[name]
    wanted = sorted((c.hypervisor, c.name) for c in cluster.components.values())
    containers = sum(ROLES[c.role] for c in cluster.components.values())
    return pods_of(world, name) == wanted and running_containers(world, name) == containers


def mutating_calls(world: World) -> int:
    return sum(f.mutating_calls() for f in world.fakes.values())


def phase(world: World, name: str) -> str:
    cluster = world.service.state.clusters[name]
    status = world.controller.board.clusters.get(cluster.cluster_id)
    return status.phase.phase if status else "none"


async def status_events(world: World) -> list[ev.Event]:
    """The status stream, once the transitions seen so far are written."""
    await eventually(lambda: not world.controller.board.outbox, "status written")
    await anyio.sleep(0.05)  # an append under way
    return await world.controller.recorded_status()


def component_phase(world: World, name: str, component: str) -> str:
    """The component's phase on the board, "" before it is seen."""
    cluster = world.service.state.clusters[name]
    status = world.controller.board.clusters.get(cluster.cluster_id)
    found = status.components.get(component) if status else None
    return found.phase if found else ""


def ingress_of(world: World, name: str) -> str:
    ingress = world.service.state.clusters[name].components["ingress"]
    return f"https://192.0.2.1:{ingress.ports['apiserver']}"


async def make_ready(world: World, name: str) -> None:
    await eventually(lambda: converged(world, name), f"{name} runs everything")
    await eventually(lambda: phase(world, name) == "ready", f"{name} is ready")


async def test_converges_from_empty_then_passes_make_no_mutating_call(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await world.service.execute(cmd.CreateCluster(name="b", control_plane_replicas=1))
    await make_ready(world, "a")
    await make_ready(world, "b")
    # Three founding etcd members started together, no membership change.
    members = world.etcd.clusters[world.service.state.clusters["a"].cluster_id]
    assert sorted((m.name, m.learner) for m in members) == [
        (f"a-control-plane-{i}", False) for i in range(3)
    ]
    assert not any(line.startswith(("add", "remove")) for line in world.etcd.journal)
    before, transitions = mutating_calls(world), len(await status_events(world))
    await anyio.sleep(1.0)  # several resyncs of every hypervisor and cluster
    assert mutating_calls(world) == before, "a converged fleet was changed"
    assert len(await status_events(world)) == transitions, "a steady fleet recorded status"
    listed = sum(f.calls["list_pod_sandbox"] for f in world.fakes.values())
    assert listed > 4 * 3  # the passes did run


async def test_drift_is_repaired(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await eventually(lambda: converged(world, "a"), "a converges")
    fake = world.fakes[world.service.state.clusters["a"].components["control-plane-0"].hypervisor]
    apiserver = next(
        c
        for c in fake.containers.values()
        if c.config.labels.get("oneinfra.io/role") == "kube-apiserver"
    )
    fake.exit(apiserver.id, 137)
    public = world.fakes["pub"]
    ingress = next(s for s in public.sandboxes.values())
    public.sandboxes.pop(ingress.id)  # gone behind our back, its containers with it
    for container in [c for c in public.containers.values() if c.sandbox_id == ingress.id]:
        del public.containers[container.id]
    await eventually(lambda: converged(world, "a"), "a is repaired")
    assert apiserver.id not in fake.containers


async def test_status_tells_each_transition_once(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await make_ready(world, "a")
    world.api.everyone = False  # the API server stops answering
    await eventually(lambda: phase(world, "a") != "ready", "a is no longer ready")
    world.api.answering.add(ingress_of(world, "a"))
    await eventually(lambda: phase(world, "a") == "ready", "a is ready again")
    phases = [e.phase for e in await status_events(world) if isinstance(e, ev.ClusterStatusChanged)]
    assert phases.count("ready") == 2
    assert all(a != b for a, b in itertools.pairwise(phases)), phases
    # History has them, with the fleet's events.
    kinds = {type(e).__name__ async for _, e in world.service.history(cluster="a")}
    assert {"ClusterCreated", "ClusterStatusChanged", "ComponentStatusChanged"} <= kinds


async def test_a_deleted_cluster_leaves_nothing(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await world.service.execute(cmd.CreateCluster(name="keep", control_plane_replicas=1))
    await eventually(lambda: converged(world, "a") and converged(world, "keep"), "converged")
    cluster_id = world.service.state.clusters["a"].cluster_id
    await world.service.execute(cmd.DeleteCluster(name="a"))
    await eventually(lambda: pods_of(world, "a") == [], "a's pods are gone")
    assert running_containers(world, "a") == 0
    await eventually(lambda: world.controller.board.remaining("a") == {}, "nothing remains")
    # Every component's directory went with it, on its own hypervisor.
    cleaners = [
        (hv, c.config.command[-1])
        for hv, fake in world.fakes.items()
        for c in fake.removed_containers
        if "rm -rf" in c.config.command[-1] and cluster_id in c.config.command[-1]
    ]
    assert sorted(hv for hv, _ in cleaners) == ["priv0", "priv1", "priv2", "pub"]
    assert converged(world, "keep")
    # The cluster's own worker tells of the deletion on its next wakeup.
    await eventually(
        lambda: world.controller.board.recorded.get(("cluster", cluster_id)) == "deleted",
        "the deletion recorded",
    )
    deleted = [
        e for e in await status_events(world)
        if isinstance(e, ev.ClusterStatusChanged) and e.phase == "deleted"
    ]  # fmt: skip
    assert [e.cluster for e in deleted] == ["a"]


async def test_scaling_1_3_1_keeps_etcd_membership_in_step(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await make_ready(world, "a")
    members = world.etcd.clusters[world.service.state.clusters["a"].cluster_id]
    assert [(m.name, m.learner) for m in members] == [("a-control-plane-0", False)]

    await world.service.execute(cmd.ScaleCluster(name="a", control_plane_replicas=3))
    await eventually(
        lambda: converged(world, "a") and len(members) == 3 and not any(m.learner for m in members),
        "three voting members",
    )
    assert sorted(m.name for m in members) == [f"a-control-plane-{i}" for i in range(3)]
    # One learner at a time: added, then promoted, then the next.
    steps = [line.split()[0] for line in world.etcd.journal if not line.startswith("stop")]
    assert steps == ["add", "promote", "add", "promote"]
    await eventually(lambda: phase(world, "a") == "ready", "ready with three")

    await world.service.execute(cmd.ScaleCluster(name="a", control_plane_replicas=1))
    await eventually(lambda: converged(world, "a") and len(members) == 1, "back to one")
    assert [m.name for m in members] == ["a-control-plane-0"]
    cluster_id = world.service.state.clusters["a"].cluster_id
    for index in (1, 2):
        member = f"a-control-plane-{index}"
        removed = world.etcd.journal.index(f"remove {member}")
        stopped = world.etcd.journal.index(f"stop {cluster_id}-control-plane-{index}")
        assert removed < stopped, f"{member}'s containers stopped before it left etcd"


async def test_a_dead_hypervisor_does_not_hold_up_the_others(world: World) -> None:
    world.fakes["priv0"].hanging = True
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await world.service.execute(cmd.CreateCluster(name="b", control_plane_replicas=1))
    placed = world.service.state.clusters["a"].components.values()
    assert any(c.hypervisor == "priv0" for c in placed)  # three replicas, three hypervisors

    def others_converged() -> bool:
        return all(
            sorted(h for h, _ in pods_of(world, n)).count(hv)
            == sum(
                1 for c in world.service.state.clusters[n].components.values() if c.hypervisor == hv
            )
            for n in ("a", "b")
            for hv in ("pub", "priv1", "priv2")
        )

    await eventually(others_converged, "the live hypervisors converge", seconds=10)
    board = world.controller.board
    await eventually(lambda: board.hypervisors["priv0"].reachable is False, "priv0 is down")
    a = world.service.state.clusters["a"]
    dead = next(name for name, c in a.components.items() if c.hypervisor == "priv0")
    components = board.clusters[a.cluster_id].components
    await eventually(lambda: dead in components, f"{dead} on priv0 has a status")
    assert components[dead].phase == "failed" and "unreachable" in components[dead].reason
    world.fakes["priv0"].hanging = False  # it comes back
    await eventually(lambda: converged(world, "a"), "a converges once priv0 is back")
    await eventually(lambda: board.hypervisors["priv0"].reachable is True, "priv0 is back")
    changes = [
        e.reachable for e in await status_events(world)
        if isinstance(e, ev.HypervisorStatusChanged) and e.name == "priv0"
    ]  # fmt: skip
    assert changes[-2:] == [False, True]  # down once, back once, whatever came before
    assert all(a != b for a, b in itertools.pairwise(changes))


async def test_the_controller_manager_and_scheduler_wait_for_the_api(world: World) -> None:
    world.api.everyone = False
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    cluster = world.service.state.clusters["a"]
    fake = world.fakes[cluster.components["control-plane-0"].hypervisor]

    def roles() -> set[str]:
        return {
            c.config.labels["oneinfra.io/role"]
            for c in fake.containers.values()
            if c.state == cri.ContainerState.CONTAINER_RUNNING
        }

    await eventually(lambda: roles() == {"etcd", "kube-apiserver"}, "etcd and the API server")
    await anyio.sleep(0.3)  # passes go by; nothing else starts while the API is silent
    assert roles() == {"etcd", "kube-apiserver"}
    assert phase(world, "a") == "pending"
    status = world.controller.board.clusters[cluster.cluster_id]
    assert "will start once the API answers" in status.components["control-plane-0"].reason
    world.api.answering.add(ingress_of(world, "a"))
    await eventually(lambda: converged(world, "a"), "all four run once the API answers")
    await eventually(lambda: phase(world, "a") == "ready", "a is ready")


async def test_a_refused_action_fails_its_component_with_the_reason_then_recovers(
    world: World,
) -> None:
    public = world.fakes["pub"]
    public.pullable = set()  # the registry has nothing for this hypervisor
    world.api.everyone = False  # with no ingress, no API answers
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    cluster_id = world.service.state.clusters["a"].cluster_id
    board = world.controller.board
    await eventually(
        lambda: component_phase(world, "a", "ingress") == "failed", "the ingress failed"
    )
    reason = board.clusters[cluster_id].components["ingress"].reason
    assert "not found in any registry" in reason
    await eventually(lambda: phase(world, "a") == "failed", "the cluster failed")
    # Meanwhile the control plane went on, on its own hypervisor.
    cp = world.service.state.clusters["a"].components["control-plane-0"]
    assert any(s.config.labels.get(bp.LABEL_COMPONENT) == "control-plane-0"
               for s in world.fakes[cp.hypervisor].sandboxes.values())  # fmt: skip
    public.pullable = None  # the images arrive
    world.api.everyone = True
    await make_ready(world, "a")


async def test_a_cluster_whose_ingress_is_not_running_is_not_probed_until_it_runs(
    world: World,
) -> None:
    world.fakes["pub"].pullable = set()  # the ingress's hypervisor cannot pull its image
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await eventually(
        lambda: component_phase(world, "a", "ingress") == "failed", "the ingress failed"
    )
    await anyio.sleep(0.1)  # a probe under way as it was seen failing ends
    before = world.api.probed[ingress_of(world, "a")]
    await anyio.sleep(0.3)  # passes go by, 0.02 s apart while it starts
    assert world.api.probed[ingress_of(world, "a")] == before  # none could have succeeded
    world.fakes["pub"].pullable = None
    await make_ready(world, "a")  # its pod, seen running, rang the cluster: probed, ready
    assert world.api.probed[ingress_of(world, "a")] >= 1


async def test_routine_probes_keep_to_the_fleets_budget_and_never_wait_for_it(
    world: World,
) -> None:
    shared = Controller(world.service, Options(probe=world.api.probe, probe_rate=10)).shared
    # 30 clusters' passes at once: 10 may probe (the burst), the others skip
    # their probe at once, to probe at a later pass.
    spent = [await shared.spend_probe() for _ in range(30)]
    assert 10 <= spent.count(True) <= 11  # one more if the loop took 0.1 s
    await anyio.sleep(0.5)  # the budget comes back at 10 a second
    assert sum([await shared.spend_probe() for _ in range(30)]) >= 5


async def test_clusters_whose_probe_was_skipped_wait_their_turn_in_line(world: World) -> None:
    shared = Controller(world.service, Options(probe=world.api.probe, probe_rate=10)).shared
    # Each cluster skipped waits behind the ones skipped before it, a tenth
    # of a second apart at 10 a second, instead of all retrying at once.
    turns = [shared.probe_turn() for _ in range(20)]
    assert turns == sorted(turns)
    assert 1.9 <= turns[-1] <= 2.0
    assert all(0.09 <= later - earlier <= 0.11 for earlier, later in itertools.pairwise(turns))


def apiservers(world: World, name: str) -> dict[str, str]:
    """hypervisor -> the id of the cluster's running kube-apiserver there."""
    return {
        hv: c.id
        for hv, fake in world.fakes.items()
        for c in fake.containers.values()
        if c.config.labels.get(bp.LABEL_CLUSTER) == name
        and c.config.labels.get("oneinfra.io/role") == "kube-apiserver"
        and c.state == cri.ContainerState.CONTAINER_RUNNING
    }


async def test_renewed_certificates_restart_the_replicas_one_at_a_time(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await make_ready(world, "a")
    before = apiservers(world, "a")
    assert len(before) == 3
    # The cluster answers through its ingress; no replica answers on its own yet.
    world.api.everyone = False
    world.api.answering = {ingress_of(world, "a")}
    await world.service.execute(cmd.RenewCertificates(cluster="a"))

    def restarted() -> set[str]:
        now = apiservers(world, "a")
        return {hv for hv, container in now.items() if container != before.get(hv)}

    await eventually(lambda: len(restarted()) == 1, "one replica restarted")
    await anyio.sleep(1.0)
    assert len(restarted()) == 1, "the next went before the first answered again"
    first = next(iter(restarted()))
    cluster = world.service.state.clusters["a"]
    (component,) = [c for c in cluster.control_planes() if c.hypervisor == first]
    world.api.answering.add(f"https://198.51.100.{first[-1]}:{component.ports['apiserver']}")
    await eventually(lambda: len(restarted()) == 2, "the second, once the first answers", 10)
    world.api.everyone = True
    await eventually(lambda: len(restarted()) == 3 and converged(world, "a"), "all three", 10)


def is_etcd_of(container: Any, component: str) -> bool:
    labels = container.config.labels
    return bool(labels.get(bp.LABEL_COMPONENT) == component and labels.get(LABEL_ROLE) == "etcd")


async def test_a_member_that_lost_its_data_is_replaced_while_the_others_keep_quorum(
    world: World,
) -> None:
    """Its etcd crash-loops (a wiped data directory): removed from etcd, added
    again as a learner on an empty directory of its own, promoted; recorded
    with the reason. The other members' pods are never touched."""
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await make_ready(world, "a")
    cluster = world.service.state.clusters["a"]
    members = world.etcd.clusters[cluster.cluster_id]
    victim = "control-plane-1"
    fake = world.fakes[cluster.components[victim].hypervisor]
    others = {
        s.id for f in world.fakes.values() for s in f.sandboxes.values()
        if s.config.labels.get(bp.LABEL_CLUSTER) == "a"
        and s.config.labels.get(bp.LABEL_COMPONENT) not in (victim, "ingress")
    }  # fmt: skip
    world.etcd.lost.add(f"a-{victim}")
    etcd = next(
        c for c in fake.containers.values()
        if is_etcd_of(c, victim)
    )  # fmt: skip
    fake.exit(etcd.id, 137)  # killed: it starts again on its wiped directory, and exits
    await eventually(
        lambda: world.service.state.clusters["a"].components[victim].etcd_generation == 1,
        "the member replaced",
    )
    await eventually(
        lambda: converged(world, "a") and len(members) == 3 and not any(m.learner for m in members),
        "three voting members again",
    )
    steps = [line.split()[0] for line in world.etcd.journal if not line.startswith("stop")]
    assert steps == ["remove", "add", "promote"]
    assert f"a-{victim}" in {m.name for m in members}
    replaced = [
        e async for _, e in world.service.history(cluster="a")
        if isinstance(e, ev.EtcdMemberReplaced)
    ]  # fmt: skip
    assert len(replaced) == 1 and replaced[0].component == victim
    assert "exited 3 times" in replaced[0].reason and "kept quorum" in replaced[0].reason
    mounts = {
        m.host_path for c in fake.containers.values()
        if is_etcd_of(c, victim) and c.state == cri.ContainerState.CONTAINER_RUNNING
        for m in c.config.mounts
    }  # fmt: skip
    assert any(path.endswith(f"/{victim}/etcd-1") for path in mounts), mounts
    still = {s.id for f in world.fakes.values() for s in f.sandboxes.values()}
    assert others <= still  # the members that kept quorum ran on untouched
    await eventually(lambda: phase(world, "a") == "ready", "ready again")


async def test_a_lone_member_is_never_replaced(world: World) -> None:
    """One member that lost its data has no one to rebuild it from: it is
    not replaced (a restore is), and the refusal says so."""
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await make_ready(world, "a")
    with pytest.raises(DomainError, match="cannot be rebuilt from the others"):
        await world.service.execute(cmd.ReplaceEtcdMember(
            cluster="a", component="control-plane-0", member_id=0x1000, reason="lost",
        ))  # fmt: skip


def etcd_data(world: World, cluster: str, component: str) -> tuple[FakeRuntime, str]:
    """The fake hypervisor of the component, and its etcd's data directory."""
    found = world.service.state.clusters[cluster].components[component]
    fake = world.fakes[found.hypervisor]
    etcd = next(c for c in fake.containers.values() if is_etcd_of(c, component))
    path = next(m.host_path for m in etcd.config.mounts if m.container_path == "/var/lib/etcd")
    return fake, path


async def test_a_wiped_member_of_three_is_replaced_without_starting_it_empty(world: World) -> None:
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await make_ready(world, "a")
    victim = "control-plane-2"
    fake, path = etcd_data(world, "a", victim)
    fake.wiped.add(path)
    etcd = next(c for c in fake.containers.values() if is_etcd_of(c, victim))
    fake.exit(etcd.id, 137)
    await eventually(
        lambda: world.service.state.clusters["a"].components[victim].etcd_generation == 1,
        "the member replaced",
    )
    members = world.etcd.clusters[world.service.state.clusters["a"].cluster_id]
    await eventually(
        lambda: converged(world, "a") and len(members) == 3 and not any(m.learner for m in members),
        "three voting members again",
    )
    replaced = [
        e async for _, e in world.service.history(cluster="a")
        if isinstance(e, ev.EtcdMemberReplaced)
    ]  # fmt: skip
    assert "has no member/ any more" in replaced[0].reason
    # Never started again on the wiped directory: found gone, it waited.
    starts = [c for c in fake.containers.values() if is_etcd_of(c, victim)
              and any(m.host_path == path for m in c.config.mounts)]  # fmt: skip
    assert [c.id for c in starts] == [etcd.id] or not starts


async def test_a_wiped_lone_member_is_not_started_empty_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Alone, started on an empty directory, etcd would make a new, empty
    cluster in place of the lost one: it is not started, and its status says why."""
    caplog.set_level(logging.INFO, logger="oneinfra.reconciler")
    await world.service.execute(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await make_ready(world, "a")
    fake, path = etcd_data(world, "a", "control-plane-0")
    fake.wiped.add(path)
    etcd = next(c for c in fake.containers.values() if is_etcd_of(c, "control-plane-0"))
    fake.exit(etcd.id, 137)
    cluster = world.service.state.clusters["a"]
    board = world.controller.board

    def said() -> str:
        status = board.clusters.get(cluster.cluster_id)
        component = status.components.get("control-plane-0") if status else None
        return component.reason if component else ""

    await eventually(lambda: "its data is lost" in said(), "the data loss said")
    assert "restored from a backup" in said()
    await anyio.sleep(0.5)  # passes go on: still not started
    running = [c for c in fake.containers.values() if is_etcd_of(c, "control-plane-0")
               and c.state == cri.ContainerState.CONTAINER_RUNNING]  # fmt: skip
    assert running == []
    assert world.service.state.clusters["a"].components["control-plane-0"].etcd_generation == 0
    # Tried again pass after pass, said once.
    assert sum("its data is lost" in r.getMessage() for r in caplog.records) == 1
