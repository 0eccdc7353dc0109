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

from collections.abc import Mapping

import msgspec

from .. import render as bp
from ..model.state import Cluster, Component, Hypervisor
from ..runtime.etcdctl import Member


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


def next_step(desired: Mapping[str, str], founding: set[str], members: list[Member]) -> Step | None:
    """The one change that brings etcd closer to the desired members, if any:
    removals first (never the last voter), then a promotion, then an
    addition (only while no learner is pending, as etcd allows one)."""
    voters = [m for m in members if not m.isLearner]
    for member in members:
        unwanted = not any(is_member(member, n, u) for n, u in desired.items())
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
