"""etcd membership steps, pure: from any member list, one step at a time,
etcd reaches the desired members, never without a voter, never with two
learners; and a member added as a learner starts with the list etcd checks."""

from __future__ import annotations

import itertools

from hypothesis import event, given, settings
from hypothesis import strategies as st

from oneinfra.model import commands as cmd
from oneinfra.reconcile import membership as mb
from oneinfra.runtime import etcdctl

from .harness import Fleet

ids = itertools.count(1)
NAMES = [f"c-control-plane-{i}" for i in range(5)]
URL = {name: f"https://10.0.0.{i}:2380" for i, name in enumerate(NAMES)}


def member(name: str, learner: bool = False, started: bool = True) -> etcdctl.Member:
    return etcdctl.Member(next(ids), name if started else "", [URL[name]], learner)


def apply(step: mb.Step, members: list[etcdctl.Member]) -> list[etcdctl.Member]:
    """etcd after the step; an added learner's pod then starts (its name shows)."""
    match step:
        case mb.Remove():
            return [m for m in members if m.member_id != step.member.member_id]
        case mb.Promote():
            return [
                etcdctl.Member(m.member_id, m.name, m.peerURLs, False)
                if m.member_id == step.member.member_id
                else m
                for m in members
            ]
        case mb.Add():
            return [*members, etcdctl.Member(next(ids), "", [step.peer_url], True)]


@st.composite
def situations(draw: st.DrawFn) -> tuple[dict[str, str], set[str], list[etcdctl.Member]]:
    """Desired members (founding ones among them) and what etcd lists now:
    some of them, some scaled away, a learner maybe, started or not."""
    founding = NAMES[: draw(st.integers(1, 3))]
    extra = draw(st.lists(st.sampled_from(NAMES[1:]), unique=True, max_size=3))
    desired = {n: URL[n] for n in sorted(set(founding) | set(extra))}
    voters = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1, max_size=4))
    members = [member(n) for n in voters]
    if draw(st.booleans()):
        spare = [n for n in NAMES if n not in voters]
        if spare:
            name = draw(st.sampled_from(spare))
            members.append(member(name, learner=True, started=draw(st.booleans())))
    # Founding members started with the cluster: they are in etcd's list.
    return desired, {n for n in desired if n in voters}, members


def start_learners(desired: dict[str, str], members: list[etcdctl.Member]) -> list[etcdctl.Member]:
    """An admitted learner's pod starts: its name shows in the list."""
    named = []
    for m in members:
        name = next((n for n, u in desired.items() if u in m.peerURLs), "")
        named.append(etcdctl.Member(m.member_id, m.name or name, m.peerURLs, m.isLearner))
    return named


@settings(max_examples=400, deadline=None)
@given(situations(), st.data())
def test_steps_reach_the_desired_members_safely(
    situation: tuple[dict[str, str], set[str], list[etcdctl.Member]], data: st.DataObject
) -> None:
    desired, founding, members = situation
    # Members whose data was lost (replaced: founding no more), maybe.
    lost = data.draw(st.sets(st.sampled_from(sorted(founding))) if founding else st.just(set()))
    replaced = {m.member_id for m in members if m.name in lost}
    founding = founding - lost
    for _ in range(40):
        assert sum(not m.isLearner for m in members) >= 1, "no voter left"
        assert sum(m.isLearner for m in members) <= 1, "two learners"
        if data.draw(st.booleans()):  # a pod starts, or not yet, between two passes
            members = start_learners(desired, members)
        step = mb.next_step(desired, founding, members, replaced)
        if step is None:
            started = start_learners(desired, members)
            if started == members:
                break
            members = started  # waiting for a learner's pod: it starts
            continue
        event(type(step).__name__)
        members = apply(step, members)
    else:
        raise AssertionError("no convergence in 40 steps")
    assert sorted(m.name for m in members) == sorted(desired)
    assert not any(m.isLearner for m in members)
    kept = replaced & {m.member_id for m in members}
    # Gone, unless it is the last voter (never removed: the decider replaces
    # none in a cluster of fewer than three).
    assert not kept or [m.member_id for m in members] == list(kept), "a lost member left in"


def test_a_learner_waits_for_its_start_before_promotion() -> None:
    members = [member(NAMES[0]), member(NAMES[1], learner=True, started=False)]
    desired = {n: URL[n] for n in NAMES[:2]}
    assert mb.next_step(desired, {NAMES[0]}, members) is None


def test_the_last_voter_is_never_removed() -> None:
    only = member(NAMES[3])
    assert mb.next_step({NAMES[0]: URL[NAMES[0]]}, set(), [only]) == mb.Add(NAMES[0], URL[NAMES[0]])


def test_a_joining_member_starts_with_the_whole_list_itself_included() -> None:
    members = [member(NAMES[0]), member(NAMES[1], learner=True, started=False)]
    joining = mb.joining_membership(members, NAMES[1], URL[NAMES[1]])
    assert joining is not None and joining.state == "existing"
    assert joining.members == {NAMES[0]: URL[NAMES[0]], NAMES[1]: URL[NAMES[1]]}
    assert mb.joining_membership(members, NAMES[2], URL[NAMES[2]]) is None


def test_etcdctl_json_is_read() -> None:
    output = (
        b'{"header":{"cluster_id":1},"members":[{"ID":12345678901234567890,"name":"a",'
        b'"peerURLs":["https://x:2380"],"clientURLs":[]},{"ID":2,"peerURLs":["https://y:2380"],'
        b'"isLearner":true}]}'
    )
    first, second = etcdctl.parse_members(output)
    assert first.member_id == 12345678901234567890 and not first.isLearner
    assert second.name == "" and second.isLearner


def test_a_cluster_whose_etcd_all_stopped_says_so_member_by_member() -> None:
    note = mb.unanswered({"control-plane-1": None, "control-plane-0": None})
    assert (
        note == "etcd: no member runs (control-plane-0: not running; control-plane-1: not running)"
    )


def test_running_members_that_do_not_answer_are_a_quorum_lost_with_what_they_said() -> None:
    note = mb.unanswered(
        {"control-plane-0": None, "control-plane-1": "context deadline exceeded" * 20,
         "control-plane-2": "etcdserver: request timed out"}
    )  # fmt: skip
    assert note.startswith("etcd: no member answers; quorum needs 2 of 3 (control-plane-0: not ")
    assert "control-plane-2: etcdserver: request timed out)" in note
    assert len(note) < 500  # what each said, cut short


def test_a_replaced_member_is_removed_first_then_added_again_as_a_learner() -> None:
    desired = {n: URL[n] for n in NAMES[:3]}
    members = [member(n) for n in NAMES[:3]]
    lost = members[1]
    founding = {NAMES[0], NAMES[2]}  # the replaced one is founding no more
    step = mb.next_step(desired, founding, members, replaced={lost.member_id})
    assert step == mb.Remove(lost)
    members = apply(step, members)
    step = mb.next_step(desired, founding, members, replaced={lost.member_id})
    assert step == mb.Add(NAMES[1], URL[NAMES[1]])  # the same name and peer URL, a new id


def test_exits_seen_three_times_in_the_window_make_a_crash_loop() -> None:
    exits = mb.EtcdExits()
    key = ("c1", "control-plane-1")
    exits.saw(key, "a", 0.0)
    exits.saw(key, "a", 1.0)  # the same container seen twice is one exit
    exits.saw(key, "b", 2.0)
    assert exits.looping("c1", 3.0) == set()
    exits.saw(key, "c", 3.0)
    assert exits.looping("c1", 3.0) == {"control-plane-1"}
    assert exits.looping("c2", 3.0) == set()
    assert exits.looping("c1", 601.0) == set()  # the first sighting has aged out
    assert exits.looping("c1", 10_000.0) == set() and not exits.seen  # all forgotten


def lost_of(
    members: list[etcdctl.Member], looping: set[str], replicas: int = 3
) -> tuple[str, int] | None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="c", control_plane_replicas=replicas))
    cluster = fleet.state.clusters["c"]
    urls = {
        f"c-{c.name}": mb.peer_url(c, fleet.state.hypervisors) for c in cluster.control_planes()
    }
    listed = [etcdctl.Member(m.member_id, m.name, [urls[m.name]], m.isLearner) for m in members]
    found = mb.lost_member(cluster, fleet.state.hypervisors, listed, looping)
    return None if found is None else (found[0].name, found[1].member_id)


def test_only_a_looping_member_of_three_with_nothing_pending_is_lost() -> None:
    names = [f"c-control-plane-{i}" for i in range(3)]
    three = [etcdctl.Member(i + 1, n) for i, n in enumerate(names)]
    assert lost_of(three, {"control-plane-1"}) == ("control-plane-1", 2)
    assert lost_of(three, set()) is None
    learning = [*three[:2], etcdctl.Member(3, names[2], isLearner=True)]
    assert lost_of(learning, {"control-plane-1"}) is None  # one at a time
    assert lost_of(three[:1], {"control-plane-0"}, replicas=1) is None  # no one to rebuild from
