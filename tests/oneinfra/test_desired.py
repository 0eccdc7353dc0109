"""The desired pods of each hypervisor, from a real service's state and log."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from eventstore import InMemoryEventStore, NewEvent
from oneinfra import render as bp
from oneinfra.daemon.service import FleetService
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.reconcile.pods import PodCache, desired_pods
from oneinfra.storage.keystore import KeyStore
from oneinfra.storage.logreader import EventCache

from .harness import Fleet

pytestmark = pytest.mark.anyio


async def test_each_hypervisor_gets_exactly_its_pods(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    service = await FleetService.open(store, keys)
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        await service.execute(
            cmd.RegisterHypervisor(
                name="pub", endpoint="unix:///run/pub.sock", role="public", ip_address="10.0.0.1"
            )
        )
        for i in range(3):
            await service.execute(cmd.RegisterHypervisor(
                name=f"priv{i}", endpoint=f"unix:///run/priv{i}.sock", role="private",
                ip_address=f"10.0.0.{10 + i}"))  # fmt: skip
        await service.execute(cmd.CreateCluster(name="prod", control_plane_replicas=3))
        await service.execute(cmd.CreateCluster(name="dev"))
        service.stop_accepting()

    cache = EventCache(store)
    state = service.state
    public = await desired_pods(state, "pub", cache, keys.get)
    assert sorted(p.labels[bp.LABEL_CLUSTER] for p in public) == ["dev", "prod"]
    assert all(p.labels[bp.LABEL_COMPONENT] == "ingress" for p in public)
    everywhere = [await desired_pods(state, f"priv{i}", cache, keys.get) for i in range(3)]
    prod = [p for pods in everywhere for p in pods if p.labels[bp.LABEL_CLUSTER] == "prod"]
    assert sorted(p.hypervisor for p in prod) == ["priv0", "priv1", "priv2"]
    assert sum(len(pods) for pods in everywhere) == 4  # 3 for prod, 1 for dev
    # The same state and log give the same pods, byte for byte.
    assert everywhere[0] == await desired_pods(state, "priv0", cache, keys.get)
    etcd = next(c for c in prod[0].containers if c.name == "etcd")
    initial = next(a for a in etcd.startup_args if a.startswith("--initial-cluster="))
    assert initial.count("=https://") == 3


async def test_a_position_holding_another_event_is_refused() -> None:
    store = InMemoryEventStore()
    scaled = ev.ClusterScaled(name="x", control_plane_replicas=1)
    event_type, version, data = ev.encode(scaled)
    await store.append(
        ev.FLEET_STREAM, [NewEvent(type=event_type, data=data, schema_version=version)]
    )
    with pytest.raises(RuntimeError, match="holds ClusterScaled, not ClusterCreated"):
        await EventCache(store).get(1, ev.ClusterCreated)


async def test_cached_pods_equal_pods_rendered_afresh_as_the_fleet_changes() -> None:
    """The cache keys a pod by what it depends on: after any change, what it
    hands out is what rendering from scratch gives."""
    fleet = Fleet()
    fleet.hypervisors(public=1, private=5)
    store = InMemoryEventStore()
    cache = PodCache()

    async def compare() -> None:
        for position in range(await store.head_position() + 1, len(fleet.log) + 1):
            event_type, version, data = ev.encode(fleet.at(position))
            await store.append(
                ev.FLEET_STREAM, [NewEvent(type=event_type, data=data, schema_version=version)]
            )
        events = EventCache(store)
        for name in fleet.state.hypervisors:
            cached = await desired_pods(fleet.state, name, events, fleet.keys.get, cache=cache)
            fresh = await desired_pods(fleet.state, name, events, fleet.keys.get)
            assert cached == fresh

    fleet.run(cmd.CreateCluster(name="a", control_plane_replicas=1))
    await compare()
    fleet.run(cmd.ScaleCluster(name="a", control_plane_replicas=3))  # new cert, new members
    await compare()
    fleet.run(cmd.CreateCluster(name="b", control_plane_replicas=3))
    fleet.run(cmd.ScaleCluster(name="a", control_plane_replicas=1))
    await compare()
    fleet.run(cmd.DeleteCluster(name="b"))
    await compare()


async def test_a_restore_makes_every_member_anew_from_the_backup_and_its_end_keeps_the_pods(
    tmp_path: Path,
) -> None:
    store = InMemoryEventStore()
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    service = await FleetService.open(store, keys)
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        public = cmd.RegisterHypervisor(
            name="pub", endpoint="unix:///run/pub.sock", role="public", ip_address="10.0.0.1"
        )
        await service.execute(public)
        for i in range(3):
            await service.execute(cmd.RegisterHypervisor(
                name=f"priv{i}", endpoint=f"unix:///run/priv{i}.sock", role="private",
                ip_address=f"10.0.0.{10 + i}"))  # fmt: skip
        await service.execute(cmd.CreateCluster(name="prod", control_plane_replicas=3))
        cluster = service.state.clusters["prod"]
        backup = ev.Backup(backup_id="20261207T112233Z-abcdef", taken_at=1,
                           member="control-plane-0", revision=500, keys=3, size=10,
                           etcd_hash=7, sha256="0" * 64, location="/backups/x")  # fmt: skip
        cache = EventCache(store)
        before = await desired_pods(service.state, "priv0", cache, keys.get)
        await service.execute(
            cmd.RecordBackup(cluster="prod", cluster_id=cluster.cluster_id, backup=backup)
        )
        await service.execute(cmd.RestoreCluster(cluster="prod", backup_id=backup.backup_id))
        restoring = await desired_pods(service.state, "priv0", cache, keys.get)
        await service.execute(cmd.CompleteEtcdRestore(cluster="prod", backup_id=backup.backup_id))
        after = await desired_pods(service.state, "priv0", cache, keys.get)
        service.stop_accepting()

    (old,), (new,), (done,) = before, restoring, after
    assert new.restore is not None and old.restore is None and done.restore is None
    etcd = new.container("etcd")
    assert any(m.host_path.endswith("/etcd-1") for m in etcd.mounts)  # a data directory anew
    token = cluster.etcd_token
    assert token.startswith(cluster.cluster_id + "-") and f"--initial-cluster-token={token}" in (
        etcd.command
    )
    assert new.restore.data_key == keys.get(cluster.key_id) and new.restore.sha256 == "0" * 64
    assert f"--initial-cluster-token={token}" in new.restore.arguments
    assert "--bump-revision=1000000000" in new.restore.arguments
    # The restore replaces the pod; its end does not.
    assert old.labels[bp.LABEL_SPEC_HASH] != new.labels[bp.LABEL_SPEC_HASH]
    assert done.labels[bp.LABEL_SPEC_HASH] == new.labels[bp.LABEL_SPEC_HASH]
