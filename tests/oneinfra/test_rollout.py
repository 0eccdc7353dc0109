"""Rolling changes, the pure part: which actions disrupt a running replica,
and one replica of a cluster at a time, released once it answers again."""

from __future__ import annotations

from oneinfra.reconcile import plan as pl
from oneinfra.reconcile.rollout import HOLD_AT_MOST, SETTLE, Rollouts, disruptive

LABELS = {"oneinfra.io/cluster-id": "c1", "oneinfra.io/component": "control-plane-0"}


def pod(running: bool) -> pl.ObservedPod:
    return pl.ObservedPod("sb", LABELS, True, [pl.ObservedContainer("old", "etcd", running)])


def test_replacing_a_running_container_or_pod_disrupts_and_repairing_a_dead_one_does_not() -> None:
    key = ("c1", "control-plane-0")
    restart = pl.RestartContainer("sb", ["old"], None, "etcd", True)  # type: ignore[arg-type]
    assert disruptive([restart], [pod(running=True)]) == {key}
    assert disruptive([restart], [pod(running=False)]) == set()  # crashed: nothing to disrupt
    changed = pl.RemovePod("sb", "its spec changed")
    assert disruptive([changed], [pod(running=True)]) == {key}
    assert disruptive([pl.RemovePod("sb", "its sandbox is not ready")], [pod(True)]) == set()


def test_one_replica_at_a_time_the_next_once_the_first_answers_and_settles() -> None:
    rollouts = Rollouts()
    first, second = ("c1", "control-plane-0"), ("c1", "control-plane-1")
    assert rollouts.admit(first, 3, now=0)
    assert not rollouts.admit(second, 3, now=1)
    assert rollouts.admit(("c2", "control-plane-1"), 3, now=1)  # another cluster: its own turn
    assert rollouts.admit(("c1", "ingress"), 1, now=1)  # one replica: nobody to wait for
    assert not rollouts.ready(first, answers=False, now=2)
    assert not rollouts.ready(first, answers=True, now=3)  # the ingress has not sent it traffic
    assert not rollouts.ready(first, answers=True, now=3 + SETTLE / 2)
    assert rollouts.ready(first, answers=True, now=3 + SETTLE)
    assert rollouts.admit(second, 3, now=6)


def test_a_holder_that_never_comes_back_gives_up_its_slot() -> None:
    rollouts = Rollouts()
    rollouts.admit(("c1", "control-plane-0"), 3, now=0)
    assert not rollouts.admit(("c1", "control-plane-1"), 3, now=HOLD_AT_MOST - 1)
    assert rollouts.admit(("c1", "control-plane-1"), 3, now=HOLD_AT_MOST + 1)
