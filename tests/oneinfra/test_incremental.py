"""What the fleet-scale work made incremental gives what computing from
scratch gives, over random fleets and random commands (hypothesis):

- the rendered-pod cache (desired.PodCache) hands out, on every hypervisor
  after every command, the pods a fresh render gives;
- an event wakes only the workers it concerns (controller.concerned_by):
  every hypervisor whose desired pods a command changed is woken. A
  hypervisor left asleep would keep running the old pods until its resync.
"""

from __future__ import annotations

import anyio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eventstore import InMemoryEventStore, NewEvent
from oneinfra import render as bp
from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.reconcile.pods import PodCache, desired_pods
from oneinfra.reconcile.triggers import concerned_by
from oneinfra.storage.logreader import EventCache

from .harness import Fleet
from .test_fleet_properties import commands as any_command

clusters = st.sampled_from(["a", "b"])
# Mostly changes to clusters, on a fleet roomy enough for most to be accepted.
commands = st.one_of(
    st.builds(cmd.CreateCluster, name=clusters, control_plane_replicas=st.sampled_from([1, 3])),
    st.builds(
        cmd.ScaleCluster, name=clusters, control_plane_replicas=st.sampled_from([1, 2, 3, 5])
    ),
    st.builds(cmd.DeleteCluster, name=clusters),
    any_command,
)

Pods = dict[str, list[bp.PodSpec]]  # by hypervisor


class Incremental:
    """The fleet's log in a store, and its pods rendered both ways."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.store = InMemoryEventStore()
        self.cache = PodCache()

    async def catch_up(self) -> None:
        for position in range(await self.store.head_position() + 1, len(self.fleet.log) + 1):
            kind, version, data = ev.encode(self.fleet.at(position))
            await self.store.append(
                ev.FLEET_STREAM, [NewEvent(type=kind, data=data, schema_version=version)]
            )

    async def pods(self) -> tuple[Pods, Pods]:
        """Every hypervisor's pods: through the cache, and rendered afresh."""
        await self.catch_up()
        events, state, keys = EventCache(self.store), self.fleet.state, self.fleet.keys.get
        cached = {
            h: await desired_pods(state, h, events, keys, cache=self.cache)
            for h in state.hypervisors
        }
        fresh = {h: await desired_pods(state, h, events, keys) for h in state.hypervisors}
        return cached, fresh


def woken(events: list[ev.Event], fleet: Fleet, before: Pods) -> set[str]:
    """The hypervisors the controller wakes for a command's events, read
    against the state after the command, as its log follower does; for a
    removed component, also where its cluster's pods ran (the controller asks
    its status board what each hypervisor still runs)."""
    found: set[str] = set()
    for change in events:
        concerned = concerned_by(change, fleet.state)
        if concerned.everywhere:
            return set(fleet.state.hypervisors) | set(before)
        found |= concerned.hypervisors
        if isinstance(change, ev.ComponentRemoved):
            found |= {
                h
                for h, pods in before.items()
                if any(p.labels[bp.LABEL_CLUSTER] == change.cluster for p in pods)
            }
    return found


async def run_incrementally(public: int, sizes: list[int], sequence: list[cmd.Command]) -> None:
    fleet = Fleet()
    for index, width in enumerate(sizes):
        fleet.run(cmd.RegisterHypervisor(
            name=f"start-{index}", endpoint=f"unix:///run/start-{index}.sock",
            role="public" if index < public else "private", ip_address=f"10.1.0.{index + 1}",
            port_range=(31000, 31000 + width),
        ))  # fmt: skip
    incremental = Incremental(fleet)
    _, before = await incremental.pods()
    for command in sequence:
        try:
            decision = fleet.run(command)
        except DomainError:
            continue
        cached, after = await incremental.pods()
        assert cached == after, "the cache handed out stale pods"
        changed = {
            h for h in set(before) | set(after) if before.get(h, []) != after.get(h, [])
        } & set(after)  # a removed hypervisor's worker just ends
        asleep = changed - woken(decision.events, fleet, before)
        assert not asleep, f"{type(command).__name__} changed pods on {asleep}, not woken"
        event(f"pods changed by {type(command).__name__}" if changed else "no pod changed")
        event(f"accepted {type(command).__name__}")
        before = after


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    public=st.integers(1, 2),
    sizes=st.lists(st.integers(6, 40), min_size=4, max_size=8),
    sequence=st.lists(commands, min_size=6, max_size=20),
)
def test_incremental_pods_and_wakeups_equal_a_computation_from_scratch(
    public: int, sizes: list[int], sequence: list[cmd.Command]
) -> None:
    anyio.run(run_incrementally, public, sizes, sequence)
