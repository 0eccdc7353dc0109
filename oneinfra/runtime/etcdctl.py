"""etcdctl inside a running etcd container of a cluster, through CRI's
ExecSync: the management host reaches hypervisors through CRI alone. It
carries out the membership steps the reconciler decides (reconcile/membership.py).
"""

from __future__ import annotations

import msgspec

from .. import render as bp
from .cri import Failed, HypervisorClient

ETCDCTL_TIMEOUT = 10  # seconds for one etcdctl call


class Member(msgspec.Struct, frozen=True, rename={"member_id": "ID"}):
    """A member as `etcdctl member list -w json` reports it."""

    member_id: int
    name: str = ""  # empty until the member has started
    peerURLs: list[str] = msgspec.field(default_factory=list)
    isLearner: bool = False


class MemberList(msgspec.Struct):
    members: list[Member] = msgspec.field(default_factory=list)


class Header(msgspec.Struct):
    revision: int = 0


class Status(msgspec.Struct):
    header: Header = msgspec.field(default_factory=Header)


class EndpointStatus(msgspec.Struct, rename={"status": "Status"}):
    """One endpoint of `etcdctl endpoint status -w json`."""

    status: Status = msgspec.field(default_factory=Status)


def parse_revision(output: bytes) -> int:
    statuses = msgspec.json.decode(output, type=list[EndpointStatus])
    return max((s.status.header.revision for s in statuses), default=0)


def parse_members(output: bytes) -> list[Member]:
    return msgspec.json.decode(output, type=MemberList).members


def etcdctl(client_port: int, *arguments: str, timeout: int = ETCDCTL_TIMEOUT) -> list[str]:
    pki = f"{bp.PKI}/etcd"
    return [
        "etcdctl",
        f"--endpoints=https://127.0.0.1:{client_port}",
        f"--cacert={pki}/ca.crt",
        f"--cert={pki}/server.crt",
        f"--key={pki}/server.key",
        f"--command-timeout={timeout - 2}s",
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
        return await self.run_long(ETCDCTL_TIMEOUT, *arguments)

    async def run_long(self, seconds: int, *arguments: str) -> bytes:
        """etcdctl with time for a long job (a snapshot of gigabytes)."""
        reply = await self.client.exec_sync(
            self.container_id, etcdctl(self.client_port, *arguments, timeout=seconds), seconds
        )
        if reply.exit_code != 0:
            message = (reply.stderr or reply.stdout).decode(errors="replace").strip()
            raise Failed(self.client.endpoint, f"etcdctl {' '.join(arguments)}: {message[-400:]}")
        return reply.stdout

    async def revision(self) -> int:
        """The revision of this member's store."""
        return parse_revision(await self.run("endpoint", "status"))

    async def members(self) -> list[Member]:
        return parse_members(await self.run("member", "list"))

    async def remove(self, member_id: int) -> None:
        await self.run("member", "remove", f"{member_id:x}")

    async def promote(self, member_id: int) -> None:
        await self.run("member", "promote", f"{member_id:x}")

    async def add_learner(self, name: str, peer_url: str) -> None:
        await self.run("member", "add", name, f"--peer-urls={peer_url}", "--learner")
