"""The daemon's garbage-collection policy: full collections on a timer free
cycles that died, and the frozen ones at each thaw."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import anyio
import pytest

from oneinfra.daemon import gc as pauses

pytestmark = pytest.mark.anyio


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def dead_cycle() -> weakref.ref[Node]:
    """A cycle nobody refers to: only the cyclic collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def policy() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.disable()  # only the policy's own collections in these tests
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()


@pytest.mark.usefixtures("policy")
def test_a_full_collection_frees_dead_cycles_and_freezes_the_living() -> None:
    dead = dead_cycle()
    living = Node()
    living.other = living
    pauses.full_collection(thaw=False)
    assert dead() is None
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(living)


@pytest.mark.usefixtures("policy")
def test_a_cycle_that_dies_frozen_is_freed_only_when_thawed() -> None:
    a = Node()
    a.other = a
    frozen = weakref.ref(a)
    pauses.full_collection(thaw=False)  # a is frozen now
    del a
    pauses.full_collection(thaw=False)
    assert frozen() is not None, "frozen objects are not walked"
    pauses.full_collection(thaw=True)
    assert frozen() is None


@pytest.mark.usefixtures("policy")
async def test_the_collector_runs_on_its_timer_and_stops() -> None:
    collector = pauses.Collector(every=0.01, thaw_every=2)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(collector.run)
        with anyio.fail_after(5):
            while collector.rounds < 3:  # noqa: ASYNC110 (polling the collector's count)
                await anyio.sleep(0.01)
        collector.stop()
    assert collector.rounds >= 3
