"""A hypervisor's CRI endpoint: unix:///path, or tcp://host:port with mutual TLS.

Every call has a deadline, and every failure is one of three kinds the
reconciler acts on: Unreachable (retry later, back off), NotFound (it is
gone already), Failed (the runtime refused). List calls filter by labels on
the runtime's side: betterproto2 parses in pure Python, so parsing only our
own pods keeps a pass cheap on a busy hypervisor.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from ..api.pb.runtime.v1 import api_pb2 as pb
from ..api.runtime import v1 as cri
from ..errors import CRIError, Failed, NotFound, Unreachable
from .images import KnownImages
from .tls import client_context

__all__ = ["CRIError", "Failed", "HypervisorClient", "NotFound", "Unreachable", "mutual_tls"]

T = TypeVar("T")
Request = TypeVar("Request")
Reply = TypeVar("Reply")

DEFAULT_TIMEOUT = 10.0
PULL_TIMEOUT = 600.0  # image pulls move bytes; everything else is quick


def mutual_tls(ca_pem: str, certificate_pem: str, key_pem: bytes) -> ssl.SSLContext:
    """The client TLS of a tcp:// endpoint: gRPC needs HTTP/2 by ALPN."""
    return client_context(ca_pem, certificate_pem, key_pem, alpn=("h2",))


def open_channel(endpoint: str, tls: ssl.SSLContext | None) -> Channel:
    parsed = urlsplit(endpoint)
    if parsed.scheme == "unix":
        return Channel(path=parsed.path)
    if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
        if tls is None:
            raise ValueError(f"{endpoint}: a tcp endpoint needs mutual TLS")
        return Channel(parsed.hostname, parsed.port, ssl=tls)
    raise ValueError(f"{endpoint}: not unix:///path or tcp://host:port")


def sandboxes_labelled(labels: Mapping[str, str]) -> cri.ListPodSandboxRequest:
    return cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=dict(labels)))


def containers_labelled(labels: Mapping[str, str]) -> cri.ListContainersRequest:
    return cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=dict(labels)))


CallObserver = Callable[[str, str, float], None]


class HypervisorClient:
    def __init__(
        self,
        endpoint: str,
        *,
        tls: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        observe: CallObserver | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        # Told of every call: its method, its result (ok, or why not), seconds.
        self.observe: CallObserver = observe or (lambda method, result, seconds: None)
        self._channel = open_channel(endpoint, tls)
        self.images = KnownImages()  # what realize.ensure_image found there
        self._runtime = cri.RuntimeServiceStub(self._channel)
        self._images = cri.ImageServiceStub(self._channel)
        # What a pass lists, decoded by protobuf's C parser (upb): decoding
        # them in pure Python (betterproto2) was a quarter of the daemon's
        # time at 1,000 clusters. Their requests stay betterproto2 messages.
        self._scan_sandboxes = self._method(
            "ListPodSandbox", cri.ListPodSandboxRequest, pb.ListPodSandboxResponse
        )
        self._scan_containers = self._method(
            "ListContainers", cri.ListContainersRequest, pb.ListContainersResponse
        )
        # The requests that carry a whole pod or container, encoded by upb
        # too: betterproto2 took 0.3 ms to encode one container's request,
        # a fifth of the daemon's time creating 1,000 clusters at once.
        self._run_sandbox = self._method(
            "RunPodSandbox", pb.RunPodSandboxRequest, pb.RunPodSandboxResponse
        )
        self._create_container = self._method(
            "CreateContainer", pb.CreateContainerRequest, pb.CreateContainerResponse
        )
        # And the calls every pod's file writer makes (start, status, remove).
        self._start_container = self._method(
            "StartContainer", pb.StartContainerRequest, pb.StartContainerResponse
        )
        self._remove_container = self._method(
            "RemoveContainer", pb.RemoveContainerRequest, pb.RemoveContainerResponse
        )
        self._container_status = self._method(
            "ContainerStatus", pb.ContainerStatusRequest, pb.ContainerStatusResponse
        )
        # And ExecSync: a backup's snapshot comes out in 4 MiB replies, a
        # restore's goes in as arguments of as much; betterproto2 copies
        # and walks them in Python.
        self._exec_sync = self._method("ExecSync", pb.ExecSyncRequest, pb.ExecSyncResponse)

    def _method(
        self, name: str, request: type[Request], reply: type[Reply]
    ) -> UnaryUnaryMethod[Request, Reply]:
        """A RuntimeService call with these message classes on the wire."""
        return UnaryUnaryMethod(self._channel, f"/runtime.v1.RuntimeService/{name}", request, reply)

    def close(self) -> None:
        self._channel.close()

    async def _call(self, method: str, call: Awaitable[T]) -> T:
        began, result = time.perf_counter(), "ok"
        try:
            return await call
        except GRPCError as error:
            message = error.message or error.status.name
            result = error.status.name.lower()
            if error.status is Status.NOT_FOUND:
                raise NotFound(self.endpoint, message) from None
            if error.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED):
                raise Unreachable(self.endpoint, message) from None
            raise Failed(self.endpoint, message) from None
        except TimeoutError:
            result = "timeout"
            raise Unreachable(self.endpoint, f"no answer within {self.timeout:g} s") from None
        except (OSError, StreamTerminatedError) as error:
            result = "unreachable"
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise Unreachable(self.endpoint, reason) from None
        finally:
            self.observe(method, result, time.perf_counter() - began)

    # -- runtime ------------------------------------------------------------------------

    async def version(self) -> cri.VersionResponse:
        request = cri.VersionRequest(version="v1")
        return await self._call("version", self._runtime.version(request, timeout=self.timeout))

    async def list_sandboxes(self, labels: Mapping[str, str]) -> list[cri.PodSandbox]:
        request = sandboxes_labelled(labels)
        reply = await self._call(
            "list_pod_sandbox", self._runtime.list_pod_sandbox(request, timeout=self.timeout)
        )
        return list(reply.items)

    async def list_containers(self, labels: Mapping[str, str]) -> list[cri.Container]:
        request = containers_labelled(labels)
        reply = await self._call(
            "list_containers", self._runtime.list_containers(request, timeout=self.timeout)
        )
        return list(reply.containers)

    async def scan_sandboxes(self, labels: Mapping[str, str]) -> list[pb.PodSandbox]:
        """list_sandboxes, as protobuf messages (same fields, parsed in C)."""
        request = sandboxes_labelled(labels)
        reply = await self._call(
            "list_pod_sandbox", self._scan_sandboxes(request, timeout=self.timeout)
        )
        return list(reply.items)

    async def scan_containers(self, labels: Mapping[str, str]) -> list[pb.Container]:
        """list_containers, as protobuf messages (same fields, parsed in C)."""
        request = containers_labelled(labels)
        reply = await self._call(
            "list_containers", self._scan_containers(request, timeout=self.timeout)
        )
        return list(reply.containers)

    async def run_sandbox(self, config: pb.PodSandboxConfig) -> str:
        request = pb.RunPodSandboxRequest(config=config)
        reply = await self._call(
            "run_pod_sandbox", self._run_sandbox(request, timeout=self.timeout)
        )
        return reply.pod_sandbox_id

    async def stop_sandbox(self, sandbox_id: str) -> None:
        request = cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(
            "stop_pod_sandbox", self._runtime.stop_pod_sandbox(request, timeout=self.timeout)
        )

    async def remove_sandbox(self, sandbox_id: str) -> None:
        request = cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(
            "remove_pod_sandbox", self._runtime.remove_pod_sandbox(request, timeout=self.timeout)
        )

    async def sandbox_status(self, sandbox_id: str) -> cri.PodSandboxStatus:
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        reply = await self._call(
            "pod_sandbox_status", self._runtime.pod_sandbox_status(request, timeout=self.timeout)
        )
        if reply.status is None:
            raise NotFound(self.endpoint, f"sandbox {sandbox_id} has no status")
        return reply.status

    async def create_container(
        self, sandbox_id: str, config: pb.ContainerConfig, sandbox: pb.PodSandboxConfig
    ) -> str:
        request = pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox
        )
        try:
            reply = await self._call(
                "create_container", self._create_container(request, timeout=self.timeout)
            )
        except CRIError:
            self.images.forget()  # its image may be gone: checked again next time
            raise
        return reply.container_id

    async def start_container(self, container_id: str) -> None:
        request = pb.StartContainerRequest(container_id=container_id)
        await self._call("start_container", self._start_container(request, timeout=self.timeout))

    async def stop_container(self, container_id: str, grace_seconds: int = 10) -> None:
        request = cri.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        deadline = self.timeout + grace_seconds  # the runtime waits out the grace period
        await self._call("stop_container", self._runtime.stop_container(request, timeout=deadline))

    async def remove_container(self, container_id: str) -> None:
        request = pb.RemoveContainerRequest(container_id=container_id)
        await self._call("remove_container", self._remove_container(request, timeout=self.timeout))

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        request = pb.ContainerStatusRequest(container_id=container_id)
        reply = await self._call(
            "container_status", self._container_status(request, timeout=self.timeout)
        )
        if not reply.HasField("status"):
            raise NotFound(self.endpoint, f"container {container_id} has no status")
        return reply.status

    async def exec_sync(
        self, container_id: str, command: list[str], timeout_seconds: int = 10
    ) -> pb.ExecSyncResponse:
        request = pb.ExecSyncRequest(
            container_id=container_id, cmd=command, timeout=timeout_seconds
        )
        deadline = self.timeout + timeout_seconds
        return await self._call("exec_sync", self._exec_sync(request, timeout=deadline))

    # -- images ---------------------------------------------------------------------------

    async def image_status(self, image: str) -> cri.Image | None:
        """The image if the hypervisor has it, None if not."""
        request = cri.ImageStatusRequest(image=cri.ImageSpec(image=image))
        reply = await self._call(
            "image_status", self._images.image_status(request, timeout=self.timeout)
        )
        return reply.image if reply.image and reply.image.id else None

    async def pull_image(self, image: str) -> str:
        request = cri.PullImageRequest(image=cri.ImageSpec(image=image))
        reply = await self._call(
            "pull_image", self._images.pull_image(request, timeout=PULL_TIMEOUT)
        )
        return reply.image_ref
