"""etcd membership of a control plane, kept in step with its replicas.

A member placed by scaling joins the running cluster as a learner (it does
not count for quorum while it catches up) and is promoted once in sync; a
member scaled away is removed from etcd before its containers go, so the
cluster keeps quorum. One step at a time (etcd allows one learner), each
decided purely from the member list that etcd reports: a crash between
steps is repaired by the next decision.

Pure: the member list comes from etcdctl (runtime/etcdctl.py), which also
carries the steps out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from .. import render as bp
from ..model.kinds import CONTROL_PLANE
from ..model.state import Cluster, Component, FleetState, Hypervisor, etcd_member_name
from ..runtime.etcdctl import Member
from . import plan as pl
from .plan import Key


class Remove(msgspec.Struct, frozen=True, tag=True):
    member: Member


class Promote(msgspec.Struct, frozen=True, tag=True):
    member: Member


class Add(msgspec.Struct, frozen=True, tag=True):
    name: str
    peer_url: str


Step = Remove | Promote | Add


def desired_members(cluster: Cluster, hypervisors: Mapping[str, Hypervisor]) -> dict[str, str]:
    """Member name -> peer URL, for every control plane of the desired state."""
    return {bp.member_name(cluster, c): peer_url(c, hypervisors) for c in cluster.control_planes()}


def peer_url(component: Component, hypervisors: Mapping[str, Hypervisor]) -> str:
    return bp.host_url(hypervisors[component.hypervisor].ip_address, component.ports["etcd-peer"])


def is_member(member: Member, name: str, url: str) -> bool:
    """The member for a desired one: its peer URL, and its name once started."""
    return url in member.peerURLs and member.name in ("", name)


def find(members: list[Member], name: str, url: str) -> Member | None:
    return next((m for m in members if is_member(m, name, url)), None)


def next_step(
    desired: Mapping[str, str],
    founding: set[str],
    members: list[Member],
    replaced: Collection[int] = (),
) -> Step | None:
    """The one change that brings etcd closer to the desired members, if any:
    removals first (never the last voter), then a promotion, then an
    addition (only while no learner is pending, as etcd allows one).
    `replaced`: members whose data was lost, removed to be added again."""
    voters = [m for m in members if not m.isLearner]
    for member in members:
        unwanted = member.member_id in replaced or not any(
            is_member(member, n, u) for n, u in desired.items()
        )
        if unwanted and (member.isLearner or len(voters) > 1):
            return Remove(member)
    for member in members:
        if member.isLearner and member.name:
            return Promote(member)
    if any(m.isLearner for m in members):
        return None  # the learner has not started yet
    for name, url in sorted(desired.items()):
        if name not in founding and find(members, name, url) is None:
            return Add(name, url)
    return None


def joining_membership(members: list[Member], name: str, url: str) -> bp.EtcdMembership | None:
    """How a member added as a learner starts: with the whole current member
    list (etcd checks it), itself included. None until it has been added."""
    if find(members, name, url) is None:
        return None
    listed: dict[str, str] = {}
    for member in members:
        member_name = member.name or (name if url in member.peerURLs else "")
        if member_name and member.peerURLs:
            listed[member_name] = member.peerURLs[0]
    return bp.EtcdMembership(members=listed, state="existing")


def unanswered(answers: Mapping[str, str | None]) -> str:
    """Why etcd could not be asked, member by member (component -> None when
    its etcd does not run, or what asking it said): a cluster whose members
    all stopped says so, one whose running members do not answer says it
    has no quorum, and how many it needs."""
    if not answers:
        return "etcd: the cluster has no control plane"
    said = "; ".join(
        f"{component}: {'not running' if why is None else why[:160]}"
        for component, why in sorted(answers.items())
    )
    if all(why is None for why in answers.values()):
        return f"etcd: no member runs ({said})"
    return (
        f"etcd: no member answers; quorum needs {len(answers) // 2 + 1} of {len(answers)} ({said})"
    )


# -- a member whose data is lost ------------------------------------------------------

EXITS_TO_REPLACE = 3  # etcd containers of one member seen exited...
EXIT_WINDOW = 600.0  # ...within this many seconds: it crash-loops


def replaced_members(cluster: Cluster) -> set[int]:
    return {c.replaced_member for c in cluster.control_planes() if c.replaced_member}


def lost_member(
    cluster: Cluster,
    hypervisors: Mapping[str, Hypervisor],
    members: list[Member],
    looping: Collection[str],
) -> tuple[Component, Member] | None:
    """The member to replace, if any: the one of a crash-looping control
    plane (its data lost or corrupted, it exits again and again) while the
    others answered for the cluster (a member list is linearizable since
    etcd 3.5: it fails without a quorum). One at
    a time: none while a learner catches up or a replaced member is listed;
    never in a cluster of fewer than three."""
    if len(cluster.control_planes()) < 3 or any(m.isLearner for m in members):
        return None
    if replaced_members(cluster) & {m.member_id for m in members}:
        return None
    for component in cluster.control_planes():
        if component.name in looping:
            found = find(
                members, bp.member_name(cluster, component), peer_url(component, hypervisors)
            )
            if found is not None:
                return component, found
    return None


@dataclass
class EtcdExits:
    """The etcd containers seen exited, by pod, and when first seen: what
    tells a member that crash-loops from one stopped once."""

    seen: dict[Key, dict[str, float]] = field(default_factory=dict)
    lost: dict[Key, float] = field(default_factory=dict)  # data found gone, when last

    def saw(self, key: Key, container_id: str, now: float) -> None:
        self.seen.setdefault(key, {}).setdefault(container_id, now)

    def data_lost(self, key: Key, now: float) -> None:
        """Its data directory was found gone (it was not started again)."""
        self.lost[key] = now

    def looping(self, cluster_id: str, now: float) -> set[str]:
        """The cluster's components whose etcd exited EXITS_TO_REPLACE times
        within the window (older sightings forgotten)."""
        found = set()
        for key in [k for k in self.seen if k[0] == cluster_id]:
            recent = {i: t for i, t in self.seen[key].items() if now - t <= EXIT_WINDOW}
            if recent:
                self.seen[key] = recent
            else:
                del self.seen[key]
            if len(recent) >= EXITS_TO_REPLACE:
                found.add(key[1])
        for key, when in list(self.lost.items()):
            if key[0] == cluster_id and now - when <= EXIT_WINDOW:
                found.add(key[1])
            elif now - when > EXIT_WINDOW:
                del self.lost[key]
        return found

    def forget(self, cluster_id: str, component: str | None = None) -> None:
        for found in (self.seen, self.lost):
            for key in [k for k in found if k[0] == cluster_id]:
                if component is None or key[1] == component:
                    del found[key]


# -- what the cluster workers learned, for the hypervisor workers -------------------


@dataclass
class ClusterMembers:
    members: list[Member] | None = None  # as etcd last listed them; None: unknown
    settled: bool = True  # nothing left to add, promote or remove
    note: str = ""  # what the membership waits for, or why it is stuck


@dataclass
class Memberships:
    """What the cluster workers learned of etcd, which the hypervisor
    workers act on: who may start (admissions) and who must stay."""

    admissions: dict[Key, bp.EtcdMembership] = field(default_factory=dict)
    records: dict[str, ClusterMembers] = field(default_factory=dict)  # by cluster id
    exits: EtcdExits = field(default_factory=EtcdExits)  # told by the hypervisor workers

    def record(self, cluster_id: str) -> ClusterMembers:
        return self.records.get(cluster_id, ClusterMembers())

    def protected(self, state: FleetState, observed: Iterable[pl.ObservedPod]) -> set[Key]:
        """Pods of control planes scaled away whose etcd member is still in
        their cluster (or may be: the member list is unknown): they stay
        until the member is removed, so etcd keeps quorum."""
        keep: set[Key] = set()
        for pod in observed:
            cluster_id, component = pod.key
            # By the name on its labels: no index of the whole fleet on every pass.
            cluster = state.clusters.get(pod.labels.get(bp.LABEL_CLUSTER, ""))
            if cluster is None or cluster.cluster_id != cluster_id:
                continue  # deleted (a new cluster may have its name)
            if component in cluster.components:
                continue
            if not component.startswith(CONTROL_PLANE):
                continue
            members = self.record(cluster_id).members
            name = etcd_member_name(cluster.name, component)
            if members is None or any(m.name == name for m in members):
                keep.add(pod.key)
        return keep

    def forget(self, cluster_id: str) -> None:
        self.records.pop(cluster_id, None)
        self.exits.forget(cluster_id)
        for key in [k for k in self.admissions if k[0] == cluster_id]:
            del self.admissions[key]
