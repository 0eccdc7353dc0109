"""FleetService: conflicts, crash leftovers, snapshots and replay, in process."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import msgspec
import pytest

from eventstore import InMemoryEventStore, NewEvent
from oneinfra.daemon.service import SNAPSHOT_NAME, FleetService, rebuild
from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.storage.keystore import KeyStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[FleetService]:
    store = InMemoryEventStore()
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    service = await FleetService.open(store, keys)
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        yield service
        service.stop_accepting()
    keys.close()


async def register(service: FleetService, name: str, role: str = "private") -> None:
    await service.execute(
        cmd.RegisterHypervisor(
            name=name, endpoint=f"unix:///run/{name}.sock", role=role, ip_address="10.0.0.1"
        )
    )


async def fleet(service: FleetService) -> None:
    await register(service, "pub", "public")
    for i in range(3):
        await register(service, f"priv{i}")


def foreign_event(event: ev.Event) -> NewEvent:
    event_type, version, data = ev.encode(event)
    return NewEvent(type=event_type, data=data, schema_version=version)


async def test_a_conflicting_writer_makes_the_command_decide_again(service: FleetService) -> None:
    await fleet(service)
    # Another writer slips an event into the fleet stream behind the service's back.
    intruder = ev.HypervisorRegistered(
        name="sneaky", endpoint="unix:///run/sneaky.sock", role="private",
        ip_address="10.9.9.9", port_range=(30000, 32767), labels={},
    )  # fmt: skip
    await service.store.append(ev.FLEET_STREAM, [foreign_event(intruder)])
    outcome = await service.execute(cmd.CreateCluster(name="prod"))
    assert outcome.position > 0
    assert "sneaky" in service.state.hypervisors  # caught up before deciding again
    with pytest.raises(DomainError, match="already registered"):
        await register(service, "sneaky")


async def test_opening_destroys_keys_nothing_owns(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    keys.put("cluster-gone-1234", os.urandom(32))  # a crash left it behind
    await FleetService.open(store, keys)
    assert "cluster-gone-1234" not in keys


async def test_a_rebuild_from_a_snapshot_equals_a_full_fold(service: FleetService) -> None:
    await fleet(service)
    await service.execute(cmd.CreateCluster(name="a", control_plane_replicas=3))
    await service.snapshot()
    await service.execute(cmd.CreateCluster(name="b"))
    await service.execute(cmd.ScaleCluster(name="a", control_plane_replicas=1))
    from_snapshot = await rebuild(service.store)
    assert await service.store.delete_snapshots(SNAPSHOT_NAME) == 1
    from_scratch = await rebuild(service.store)
    assert msgspec.to_builtins(from_snapshot) == msgspec.to_builtins(from_scratch)
    assert msgspec.to_builtins(from_scratch) == msgspec.to_builtins(service.state)


async def test_a_snapshot_this_code_cannot_read_is_ignored(service: FleetService) -> None:
    await fleet(service)
    await service.store.save_snapshot(SNAPSHOT_NAME, service.state.position, b"\xc1garbage")
    rebuilt = await rebuild(service.store)
    assert msgspec.to_builtins(rebuilt) == msgspec.to_builtins(service.state)


async def test_replay_at_a_time_and_at_a_position(tmp_path: Path) -> None:
    clock = iter(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(100))
    store = InMemoryEventStore(clock=lambda: int(next(clock).timestamp() * 1_000_000))
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    service = await FleetService.open(store, keys)
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        await fleet(service)  # recorded at 00:00, 01:00, 02:00, 03:00
        await service.execute(cmd.CreateCluster(name="prod"))  # 04:00
        state, last = await service.replay(at=dt.datetime(2026, 1, 1, 2, 30, tzinfo=dt.UTC))
        assert sorted(state.hypervisors) == ["priv0", "priv1", "pub"] and not state.clusters
        assert last is not None and last.position == 3
        state, _ = await service.replay(position=4)
        assert len(state.hypervisors) == 4 and not state.clusters
        state, _ = await service.replay()
        assert "prod" in state.clusters
        service.stop_accepting()
    keys.close()


async def test_commands_after_shutdown_are_refused(service: FleetService) -> None:
    from oneinfra.errors import ServiceClosed

    service.stop_accepting()
    with pytest.raises(ServiceClosed):
        await register(service, "late")
