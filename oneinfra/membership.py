"""etcd membership of a control plane, kept in step with its replicas.

A member placed by scaling joins the running cluster as a learner (it does
not count for quorum while it catches up) and is promoted once in sync; a
member scaled away is removed from etcd before its containers go, so the
cluster keeps quorum. One step at a time (etcd allows one learner), each
decided purely from the member list that etcd reports: a crash between
steps is repaired by the next decision.

etcdctl runs inside a running etcd container of the cluster, through CRI's
ExecSync: the management host reaches hypervisors through CRI alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from . import blueprints as bp
from .cri import Failed, HypervisorClient
from .state import Cluster, Component, Hypervisor

ETCDCTL_TIMEOUT = 10  # seconds for one etcdctl call


class Member(msgspec.Struct, frozen=True, rename={"member_id": "ID"}):
    member_id: int
    name: str = ""  # empty until the member has started
    peerURLs: list[str] = msgspec.field(default_factory=list)
    isLearner: bool = False


class MemberList(msgspec.Struct):
    members: list[Member] = msgspec.field(default_factory=list)


class Remove(msgspec.Struct, frozen=True, tag=True):
    member: Member


class Promote(msgspec.Struct, frozen=True, tag=True):
    member: Member


class Add(msgspec.Struct, frozen=True, tag=True):
    name: str
    peer_url: str


Step = Remove | Promote | Add


def parse_members(output: bytes) -> list[Member]:
    return msgspec.json.decode(output, type=MemberList).members


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


# -- etcdctl through CRI ------------------------------------------------------------


def etcdctl(client_port: int, *arguments: str) -> list[str]:
    pki = f"{bp.PKI}/etcd"
    return [
        "etcdctl",
        f"--endpoints=https://127.0.0.1:{client_port}",
        f"--cacert={pki}/ca.crt",
        f"--cert={pki}/server.crt",
        f"--key={pki}/server.key",
        f"--command-timeout={ETCDCTL_TIMEOUT - 2}s",
        "-w",
        "json",
        *arguments,
    ]


class Etcd:
    """etcdctl in one running etcd container of a cluster."""

    def __init__(self, client: HypervisorClient, container_id: str, client_port: int) -> None:
        self.client = client
        self.container_id = container_id
        self.client_port = client_port

    async def run(self, *arguments: str) -> bytes:
        reply = await self.client.exec_sync(
            self.container_id, etcdctl(self.client_port, *arguments), ETCDCTL_TIMEOUT
        )
        if reply.exit_code != 0:
            message = (reply.stderr or reply.stdout).decode(errors="replace").strip()
            raise Failed(self.client.endpoint, f"etcdctl {' '.join(arguments)}: {message}")
        return reply.stdout

    async def members(self) -> list[Member]:
        return parse_members(await self.run("member", "list"))

    async def apply(self, step: Step) -> None:
        match step:
            case Remove():
                await self.run("member", "remove", f"{step.member.member_id:x}")
            case Promote():
                await self.run("member", "promote", f"{step.member.member_id:x}")
            case Add():
                await self.run(
                    "member", "add", step.name, f"--peer-urls={step.peer_url}", "--learner"
                )
