"""A fake CRI runtime: in memory, over a real grpclib Unix socket, with faults.

For unit tests, fault injection and scale benchmarks, beside the real
containerd of tests/e2e, never instead of it. It behaves as containerd does
where oneinfra can tell: sandbox and container names are reserved, a status
of something missing is NOT_FOUND, removing what is gone succeeds, and list
calls filter by labels.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.const import Status
from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from oneinfra.api.runtime import v1 as cri
from oneinfra.runtime.realize import HAS_DATA

ROLE_LABEL, WRITER = "oneinfra.io/role", "file-writer"  # how oneinfra labels its file writers

MUTATING = frozenset(
    {
        "run_pod_sandbox",
        "stop_pod_sandbox",
        "remove_pod_sandbox",
        "create_container",
        "start_container",
        "stop_container",
        "remove_container",
        "pull_image",
        "exec_sync",
    }
)


@dataclass
class Sandbox:
    id: str
    config: cri.PodSandboxConfig
    state: cri.PodSandboxState = cri.PodSandboxState.SANDBOX_READY
    created_at: int = field(default_factory=time.time_ns)


@dataclass
class Container:
    id: str
    sandbox_id: str
    config: cri.ContainerConfig
    state: cri.ContainerState = cri.ContainerState.CONTAINER_CREATED
    created_at: int = field(default_factory=time.time_ns)
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0


@dataclass
class FakeMember:
    member_id: int
    peer_url: str
    name: str = ""  # set when it starts
    learner: bool = False
    refusals: int = 0  # promotions refused so far


@dataclass
class FakeEtcd:
    """etcd clusters as etcdctl reports them, shared by the fake hypervisors:
    founding members join when their container starts; learners are added
    by `member add`, named when they start, promoted after catching up
    (`promote_refusals` refusals first)."""

    promote_refusals: int = 1
    clusters: dict[str, list[FakeMember]] = field(default_factory=dict)  # by cluster token
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(0x1000))
    # What happened, in order, across hypervisors: "add URL", "promote NAME",
    # "remove NAME", "stop SANDBOX" (stop_pod_sandbox of any fake sharing it).
    journal: list[str] = field(default_factory=list)
    # Members (by name) whose data directory was wiped: started as founding
    # members again ('new'), they exit at once, as etcd's raft panics
    # ("tocommit is out of range"); added again as learners they run.
    lost: set[str] = field(default_factory=set)

    def started(self, command: list[str]) -> int:
        """An etcd container starts; its exit code if it cannot (0: it runs)."""
        flags = dict(a.split("=", 1) for a in command if a.startswith("--") and "=" in a)
        if "--initial-cluster-token" not in flags:
            return 0  # a bare test pod, not a blueprint's etcd
        members = self.clusters.setdefault(flags["--initial-cluster-token"], [])
        me, url = flags["--name"], flags["--initial-advertise-peer-urls"]
        if flags["--initial-cluster-state"] == "new":
            if me in self.lost:
                return 2
            for pair in flags["--initial-cluster"].split(","):
                name, peer = pair.split("=", 1)
                if not any(m.peer_url == peer for m in members):
                    members.append(FakeMember(next(self.ids), peer, name))
            return 0
        mine = next((m for m in members if m.peer_url == url), None)
        listed = {pair.split("=", 1)[1] for pair in flags["--initial-cluster"].split(",")}
        if mine is None or listed != {m.peer_url for m in members}:
            return 1  # etcd: member count is unequal / not a member
        mine.name = me
        return 0

    def etcdctl(self, etcd_command: list[str], argv: list[str]) -> tuple[int, bytes]:
        flags = dict(a.split("=", 1) for a in etcd_command if a.startswith("--") and "=" in a)
        members = self.clusters.get(flags["--initial-cluster-token"], [])
        if "endpoint" in argv:  # a restored cluster's, bumped
            return 0, json.dumps([{"Status": {"header": {"revision": 2 * 10**9}}}]).encode()
        verb, rest = argv[argv.index("member") + 1], argv[argv.index("member") + 2 :]
        if verb == "add":
            _name, url = rest[0], next(a.split("=", 1)[1] for a in rest if a.startswith("--peer"))
            if any(m.learner for m in members):
                return 1, b"etcdserver: too many learner members in cluster"
            members.append(FakeMember(next(self.ids), url, learner="--learner" in rest))
            self.journal.append(f"add {url}")
        elif verb in ("remove", "promote"):
            member = next((m for m in members if f"{m.member_id:x}" == rest[0]), None)
            if member is None:
                return 1, b"etcdserver: member not found"
            if verb == "remove":
                members.remove(member)
                self.journal.append(f"remove {member.name or member.peer_url}")
            elif member.refusals < self.promote_refusals or not member.name:
                member.refusals += 1
                return 1, b"etcdserver: can only promote a learner member which is in sync"
            else:
                member.learner = False
                self.journal.append(f"promote {member.name}")
        listed = [
            {"ID": m.member_id, "name": m.name, "peerURLs": [m.peer_url], "isLearner": m.learner}
            for m in members
        ]
        return 0, json.dumps({"members": listed}).encode()


@dataclass
class FakeRuntime:
    """The state, and the knobs tests turn."""

    latency: float = 0.0  # seconds added to every call
    failures: dict[str, Status] = field(default_factory=dict)  # method -> status to raise
    hanging: bool = False  # the hypervisor stops answering
    pullable: set[str] | None = None  # None: any image pulls
    writer_exit_code: int = 0  # oneinfra's file writers end at once, with this code
    # Host directories whose etcd data (member/) is gone: a helper that
    # looks for it there exits 1.
    wiped: set[str] = field(default_factory=set)
    exec_result: cri.ExecSyncResponse = field(default_factory=lambda: cri.ExecSyncResponse())
    # Files on the hypervisor, by host path, as etcdctl's snapshots write them
    # and a backup's reader reads them (its dd, sha256sum, stat, rm).
    files: dict[str, bytes] = field(default_factory=dict)
    snapshot: bytes = b"bbolt " * 1000  # what `etcdctl snapshot save` writes
    snapshot_error: str = ""  # set: `etcdctl snapshot save` fails with it
    calls: Counter[str] = field(default_factory=Counter)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)
    etcd: FakeEtcd = field(default_factory=FakeEtcd)  # share one between hypervisors
    removed_containers: list[Container] = field(default_factory=list)
    # (role, grace) of each running container stopped, and the roles a
    # sandbox's stop killed outright.
    stopped: list[tuple[str, int]] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    timeline: list[tuple[float, str]] | None = None  # (when, method), if a test wants it

    async def enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.timeline is not None:
            self.timeline.append((time.monotonic(), method))
        if self.hanging:
            await asyncio.Event().wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        status = self.failures.get(method)
        if status is not None:
            raise GRPCError(status, f"injected failure of {method}")

    def mutating_calls(self) -> int:
        return sum(n for method, n in self.calls.items() if method in MUTATING)

    def exit(self, container_id: str, code: int = 1) -> None:
        """The container's process ends, as a crash would end it."""
        container = self.containers[container_id]
        container.state = cri.ContainerState.CONTAINER_EXITED
        container.finished_at, container.exit_code = time.time_ns(), code


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_name(config: cri.ContainerConfig) -> tuple[str, int]:
    m = config.metadata or cri.ContainerMetadata()
    return m.name, m.attempt


def sandbox_name(config: cri.PodSandboxConfig) -> str:
    m = config.metadata or cri.PodSandboxMetadata()
    return f"{m.name}_{m.namespace}_{m.uid}_{m.attempt}"


class FakeRuntimeService(cri.RuntimeServiceBase):
    def __init__(self, fake: FakeRuntime) -> None:
        self.fake = fake

    async def version(self, message: cri.VersionRequest) -> cri.VersionResponse:
        await self.fake.enter("version")
        return cri.VersionResponse(
            version="0.1.0",
            runtime_name="fakecri",
            runtime_version="0.0.1",
            runtime_api_version="v1",
        )

    async def run_pod_sandbox(self, message: cri.RunPodSandboxRequest) -> cri.RunPodSandboxResponse:
        await self.fake.enter("run_pod_sandbox")
        config = message.config or cri.PodSandboxConfig()
        name = sandbox_name(config)
        if any(sandbox_name(s.config) == name for s in self.fake.sandboxes.values()):
            raise GRPCError(Status.UNKNOWN, f'failed to reserve sandbox name "{name}": reserved')
        sandbox = Sandbox(uuid.uuid4().hex, config)
        self.fake.sandboxes[sandbox.id] = sandbox
        return cri.RunPodSandboxResponse(pod_sandbox_id=sandbox.id)

    def sandbox(self, sandbox_id: str) -> Sandbox:
        sandbox = self.fake.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"sandbox {sandbox_id} not found")
        return sandbox

    async def stop_pod_sandbox(
        self, message: cri.StopPodSandboxRequest
    ) -> cri.StopPodSandboxResponse:
        await self.fake.enter("stop_pod_sandbox")
        sandbox = self.sandbox(message.pod_sandbox_id)
        sandbox.state = cri.PodSandboxState.SANDBOX_NOTREADY
        self.fake.etcd.journal.append(f"stop {sandbox.config.metadata.name}")  # type: ignore[union-attr]
        for container in self.fake.containers.values():
            running = container.state != cri.ContainerState.CONTAINER_EXITED
            if container.sandbox_id == sandbox.id and running:
                self.fake.killed.append(container.config.labels.get(ROLE_LABEL, ""))
                self.fake.exit(container.id, 137)
        return cri.StopPodSandboxResponse()

    async def remove_pod_sandbox(
        self, message: cri.RemovePodSandboxRequest
    ) -> cri.RemovePodSandboxResponse:
        await self.fake.enter("remove_pod_sandbox")
        self.fake.sandboxes.pop(message.pod_sandbox_id, None)
        for container_id in [
            c.id for c in self.fake.containers.values() if c.sandbox_id == message.pod_sandbox_id
        ]:
            self.fake.removed_containers.append(self.fake.containers.pop(container_id))
        return cri.RemovePodSandboxResponse()

    async def pod_sandbox_status(
        self, message: cri.PodSandboxStatusRequest
    ) -> cri.PodSandboxStatusResponse:
        await self.fake.enter("pod_sandbox_status")
        s = self.sandbox(message.pod_sandbox_id)
        return cri.PodSandboxStatusResponse(
            status=cri.PodSandboxStatus(
                id=s.id,
                metadata=s.config.metadata,
                state=s.state,
                created_at=s.created_at,
                labels=dict(s.config.labels),
                annotations=dict(s.config.annotations),
            )
        )

    async def list_pod_sandbox(
        self, message: cri.ListPodSandboxRequest
    ) -> cri.ListPodSandboxResponse:
        await self.fake.enter("list_pod_sandbox")
        wanted = message.filter or cri.PodSandboxFilter()
        items = [
            cri.PodSandbox(
                id=s.id,
                metadata=s.config.metadata,
                state=s.state,
                created_at=s.created_at,
                labels=dict(s.config.labels),
                annotations=dict(s.config.annotations),
            )
            for s in self.fake.sandboxes.values()
            if matches(s.config.labels, wanted.label_selector)
            and (not wanted.id or s.id == wanted.id)
            and (wanted.state is None or s.state == wanted.state.state)
        ]
        return cri.ListPodSandboxResponse(items=items)

    async def create_container(
        self, message: cri.CreateContainerRequest
    ) -> cri.CreateContainerResponse:
        await self.fake.enter("create_container")
        sandbox = self.sandbox(message.pod_sandbox_id)
        if sandbox.state != cri.PodSandboxState.SANDBOX_READY:
            raise GRPCError(Status.UNKNOWN, f"sandbox {sandbox.id} is not ready")
        config = message.config or cri.ContainerConfig()
        image = config.image.image if config.image else ""
        if image not in self.fake.images:
            raise GRPCError(Status.NOT_FOUND, f"image {image!r} not found")
        name = container_name(config)
        for other in self.fake.containers.values():
            if other.sandbox_id == sandbox.id and container_name(other.config) == name:
                raise GRPCError(Status.UNKNOWN, f"failed to reserve container name {name[0]}")
        container = Container(uuid.uuid4().hex, sandbox.id, config)
        self.fake.containers[container.id] = container
        return cri.CreateContainerResponse(container_id=container.id)

    def container(self, container_id: str) -> Container:
        container = self.fake.containers.get(container_id)
        if container is None:
            raise GRPCError(Status.NOT_FOUND, f"container {container_id} not found")
        return container

    async def start_container(
        self, message: cri.StartContainerRequest
    ) -> cri.StartContainerResponse:
        await self.fake.enter("start_container")
        container = self.container(message.container_id)
        if container.state != cri.ContainerState.CONTAINER_CREATED:
            raise GRPCError(Status.UNKNOWN, f"container {container.id} is not in created state")
        container.state, container.started_at = cri.ContainerState.CONTAINER_RUNNING, time.time_ns()
        if container.config.labels.get(ROLE_LABEL) == WRITER:
            looks = container.config.command[-1:] == [HAS_DATA] and any(
                m.host_path in self.fake.wiped for m in container.config.mounts
            )
            code = 1 if looks else self.fake.writer_exit_code
            self.fake.exit(container.id, code)  # a writer runs to its end
        elif container.config.command[:1] == ["etcd"]:
            code = self.fake.etcd.started(list(container.config.command))
            if code:
                self.fake.exit(container.id, code)
        return cri.StartContainerResponse()

    async def stop_container(self, message: cri.StopContainerRequest) -> cri.StopContainerResponse:
        await self.fake.enter("stop_container")
        container = self.container(message.container_id)
        if container.state == cri.ContainerState.CONTAINER_RUNNING:
            role = container.config.labels.get(ROLE_LABEL, "")
            self.fake.stopped.append((role, message.timeout))
            self.fake.exit(container.id, 0)
        return cri.StopContainerResponse()

    async def remove_container(
        self, message: cri.RemoveContainerRequest
    ) -> cri.RemoveContainerResponse:
        await self.fake.enter("remove_container")
        removed = self.fake.containers.pop(message.container_id, None)
        if removed is not None:
            self.fake.removed_containers.append(removed)
        return cri.RemoveContainerResponse()

    async def list_containers(
        self, message: cri.ListContainersRequest
    ) -> cri.ListContainersResponse:
        await self.fake.enter("list_containers")
        wanted = message.filter or cri.ContainerFilter()
        containers = [
            cri.Container(
                id=c.id,
                pod_sandbox_id=c.sandbox_id,
                metadata=c.config.metadata,
                image=c.config.image,
                state=c.state,
                created_at=c.created_at,
                labels=dict(c.config.labels),
                annotations=dict(c.config.annotations),
            )
            for c in self.fake.containers.values()
            if matches(c.config.labels, wanted.label_selector)
            and (not wanted.id or c.id == wanted.id)
            and (not wanted.pod_sandbox_id or c.sandbox_id == wanted.pod_sandbox_id)
            and (wanted.state is None or c.state == wanted.state.state)
        ]
        return cri.ListContainersResponse(containers=containers)

    async def container_status(
        self, message: cri.ContainerStatusRequest
    ) -> cri.ContainerStatusResponse:
        await self.fake.enter("container_status")
        c = self.container(message.container_id)
        return cri.ContainerStatusResponse(
            status=cri.ContainerStatus(
                id=c.id,
                metadata=c.config.metadata,
                state=c.state,
                created_at=c.created_at,
                started_at=c.started_at,
                finished_at=c.finished_at,
                exit_code=c.exit_code,
                image=c.config.image,
                labels=dict(c.config.labels),
                annotations=dict(c.config.annotations),
                log_path=c.config.log_path,
            )
        )

    async def exec_sync(self, message: cri.ExecSyncRequest) -> cri.ExecSyncResponse:
        await self.fake.enter("exec_sync")
        container = self.container(message.container_id)
        if container.state != cri.ContainerState.CONTAINER_RUNNING:
            raise GRPCError(Status.UNKNOWN, "container is not running")
        files = FakeFiles(self.fake, container.config)
        if "snapshot" in message.cmd and container.config.command[:1] == ["etcd"]:
            return files.snapshot(list(message.cmd))
        if message.cmd[:1] in (["sha256sum"], ["stat"], ["dd"], ["rm"]):
            return files.run(list(message.cmd))
        if message.cmd[:1] == ["etcdctl"] and container.config.command[:1] == ["etcd"]:
            code, output = self.fake.etcd.etcdctl(list(container.config.command), message.cmd)
            if code:
                return cri.ExecSyncResponse(stderr=output, exit_code=code)
            return cri.ExecSyncResponse(stdout=output)
        return self.fake.exec_result


@dataclass
class FakeFiles:
    """A container's view of the hypervisor's files, through its mounts."""

    fake: FakeRuntime
    config: cri.ContainerConfig

    def host(self, path: str) -> str:
        for mount in self.config.mounts:
            if path.startswith(mount.container_path + "/"):
                return mount.host_path + path[len(mount.container_path) :]
        return f"/container{path}"

    def snapshot(self, argv: list[str]) -> cri.ExecSyncResponse:
        if argv[0] == "etcdctl":
            if self.fake.snapshot_error:
                return cri.ExecSyncResponse(stderr=self.fake.snapshot_error.encode(), exit_code=1)
            self.fake.files[self.host(argv[-1])] = self.fake.snapshot
            return cri.ExecSyncResponse(stdout=b"Snapshot saved")
        data = self.fake.files.get(self.host(argv[3]))
        if data is None:
            return cri.ExecSyncResponse(stderr=b"no such file", exit_code=1)
        status = {"hash": zlib.crc32(data), "revision": 42, "totalKey": 7, "totalSize": len(data)}
        return cri.ExecSyncResponse(stdout=json.dumps(status).encode())

    def run(self, argv: list[str]) -> cri.ExecSyncResponse:
        arguments = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
        path = self.host(arguments.get("if", argv[-1]))
        if argv[0] == "rm":
            self.fake.files.pop(path, None)
            return cri.ExecSyncResponse()
        data = self.fake.files.get(path)
        if data is None:
            return cri.ExecSyncResponse(stderr=b"no such file", exit_code=1)
        if argv[0] == "sha256sum":
            out = f"{hashlib.sha256(data).hexdigest()}  {argv[-1]}\n".encode()
        elif argv[0] == "stat":
            out = f"{len(data)}\n".encode()
        else:
            size, skip = int(arguments["bs"]), int(arguments.get("skip", "0"))
            out = data[skip * size : (skip + 1) * size]
        return cri.ExecSyncResponse(stdout=out)


class FakeImageService(cri.ImageServiceBase):
    def __init__(self, fake: FakeRuntime) -> None:
        self.fake = fake

    async def image_status(self, message: cri.ImageStatusRequest) -> cri.ImageStatusResponse:
        await self.fake.enter("image_status")
        name = message.image.image if message.image else ""
        if name not in self.fake.images:
            return cri.ImageStatusResponse()
        return cri.ImageStatusResponse(
            image=cri.Image(id=f"sha256:{abs(hash(name)):x}", repo_tags=[name])
        )

    async def pull_image(self, message: cri.PullImageRequest) -> cri.PullImageResponse:
        await self.fake.enter("pull_image")
        name = message.image.image if message.image else ""
        if self.fake.pullable is not None and name not in self.fake.pullable:
            raise GRPCError(Status.NOT_FOUND, f"{name}: not found in any registry")
        self.fake.images.add(name)
        return cri.PullImageResponse(image_ref=f"sha256:{abs(hash(name)):x}")


@asynccontextmanager
async def serve_fake(
    path: Path,
    fake: FakeRuntime | None = None,
    on_request: Callable[[RecvRequest], Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[FakeRuntime]:
    """A fake hypervisor answering on a Unix socket while the block runs;
    on_request sees each call as it arrives (its method, its peer)."""
    fake = fake or FakeRuntime()
    server = Server([FakeRuntimeService(fake), FakeImageService(fake)])
    if on_request is not None:
        listen(server, RecvRequest, on_request)
    await server.start(path=str(path))
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()
