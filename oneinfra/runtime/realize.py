"""Make a blueprint real on a hypervisor, through CRI alone (no SSH).

Files arrive by a short-lived container, in the pod's own sandbox, that
mounts the component's directory and writes them (each atomically, with its
mode) from a script that carries their content; then the pod's containers
start, all at once. Several pods created at once have their files written
by one helper in a sandbox of its own instead (write_many): a writer per
pod costs four CRI calls a pod. Removing a directory takes a helper sandbox
of its own too, since the component's sandbox is gone or going by then.
"""

from __future__ import annotations

import base64
import posixpath
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from functools import partial
from typing import Any

import anyio

from .. import render as bp
from ..api.pb.runtime.v1 import api_pb2 as pb
from ..render import etcd
from ..render.labels import LABEL_LIVE_HASH, LABEL_ROLE, LABEL_STOP_GRACE, WRITER_ROLE
from .cri import Failed, HypervisorClient

WRITER_IMAGE = "docker.io/library/busybox:1.35"
SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
NAMESPACE = "oneinfra"
WRITE_TIMEOUT = 120.0  # seconds for the writer to finish once started
POLL = 0.02  # seconds between looks at a running writer
# A helper's arguments: Linux refuses one argument over 128 KiB, and all of
# them together over ARG_MAX (2 MiB by default).
ARGUMENT_BYTES = 120 * 1024
ARGUMENTS_BYTES = 1024 * 1024
# Each argument a script of its own, run in turn: the first that fails ends it.
RUN_EACH = 'for script in "$@"; do sh -c "$script" || exit $?; done'


def plain_relative(path: str, what: str) -> str:
    if not SAFE_PATH.match(path) or ".." in path.split("/"):
        raise ValueError(f"refusing to {what} {path!r}: not a plain relative path")
    return path


def writer_script(files: list[bp.File], under: str = "") -> str:
    """A POSIX shell script writing every file under /target (or under
    /target/`under`, a plain relative directory)."""
    lines = ["set -e", "umask 077"]
    base = f"/target/{plain_relative(under, 'write under')}" if under else "/target"
    for file in files:
        target = f"{base}/{plain_relative(file.path, 'write')}"
        content = base64.b64encode(file.content).decode()
        lines += [
            f"mkdir -p {posixpath.dirname(target)}",
            f"printf %s {content} | base64 -d > {target}.new",
            f"chmod {file.mode:o} {target}.new",
            f"mv {target}.new {target}",
        ]
    return "\n".join(lines) + "\n"


def host_network_sandbox(
    name: str, uid: str, labels: dict[str, str], log_directory: str
) -> pb.PodSandboxConfig:
    # Host network: no CNI needed, and no hostname (runc refuses one without a
    # UTS namespace of its own).
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=NAMESPACE, uid=uid),
        labels=labels,
        log_directory=log_directory,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )


async def ensure_image(client: HypervisorClient, image: str) -> None:
    """The image present on the hypervisor, pulled if it is missing: checked
    once however many pods ask for it at once (runtime/images.py)."""
    if client.images.present(image):
        return
    async with client.images.lock(image):
        if client.images.present(image):
            return
        if await client.image_status(image) is None:
            await client.pull_image(image)
        client.images.saw(image)


async def run_script(
    client: HypervisorClient,
    sandbox: str,
    sandbox_config: pb.PodSandboxConfig,
    labels: dict[str, str],
    host_directory: str,
    script: str,
    what: str,
    arguments: Sequence[str] = (),
) -> None:
    """Run a shell script to completion in a short-lived container of a
    sandbox, with a host directory at /target; the container is removed
    after. Raises Failed unless the script exits 0."""
    code = await script_exit(
        client, sandbox, sandbox_config, labels, host_directory, script, arguments=arguments
    )
    if code != 0:
        raise Failed(client.endpoint, f"{what} exited {code}")


async def script_exit(
    client: HypervisorClient,
    sandbox: str,
    sandbox_config: pb.PodSandboxConfig,
    labels: dict[str, str],
    host_directory: str,
    script: str,
    readonly: bool = False,
    arguments: Sequence[str] = (),
) -> int:
    """The exit code of a shell script run to completion in a short-lived
    container of the sandbox, a host directory at /target; `arguments` are
    its $@."""
    helper = bp.ContainerSpec(
        name="writer",
        image=WRITER_IMAGE,
        command=["sh", "-c", script, *(["sh", *arguments] if arguments else [])],
        mounts=[bp.Mount("/target", host_directory, readonly=readonly)],
    )
    return await exit_code(client, sandbox, sandbox_config, labels, helper)


async def exit_code(
    client: HypervisorClient,
    sandbox: str,
    sandbox_config: pb.PodSandboxConfig,
    labels: dict[str, str],
    helper: bp.ContainerSpec,
    seconds: float = WRITE_TIMEOUT,
) -> int:
    """A helper container run to completion in the sandbox, then removed:
    its exit code."""
    labels = {**labels, LABEL_ROLE: WRITER_ROLE}
    # A fresh attempt number: a writer left by a crash keeps its name reserved.
    config = container_config(helper, labels, attempt=time.time_ns() // 1_000_000 % 2**31)
    container = await client.create_container(sandbox, config, sandbox_config)
    try:
        await client.start_container(container)
        with anyio.fail_after(seconds):
            while True:
                status = await client.container_status(container)
                if status.state == pb.CONTAINER_EXITED:
                    break
                await anyio.sleep(POLL)
        return int(status.exit_code)
    finally:
        await client.remove_container(container)


async def checked_exec(
    client: HypervisorClient, container: str, argv: list[str], seconds: int, what: str
) -> bytes:
    """A command run in a running container; its output, or Failed saying
    what exited how."""
    reply = await client.exec_sync(container, argv, seconds)
    if reply.exit_code != 0:
        said = (reply.stderr or reply.stdout).decode(errors="replace").strip()[-300:]
        raise Failed(client.endpoint, f"{what} exited {reply.exit_code}: {said}")
    return reply.stdout


async def start_shell(
    client: HypervisorClient,
    sandbox: str,
    sandbox_config: pb.PodSandboxConfig,
    labels: dict[str, str],
    name: str,
    host_directory: str,
    seconds: int,
) -> str:
    """A busybox container of the sandbox that sleeps `seconds` (gone by
    then, whatever happens), a host directory at /target, for commands run
    in it by ExecSync; its id."""
    spec = bp.ContainerSpec(
        name=name, image=WRITER_IMAGE, command=["sleep", str(seconds)],
        mounts=[bp.Mount("/target", host_directory, readonly=False)],
    )  # fmt: skip
    # A fresh attempt number: one left by a crash keeps its name reserved.
    config = container_config(spec, labels, attempt=time.time_ns() // 1_000_000 % 2**31)
    container = await client.create_container(sandbox, config, sandbox_config)
    try:
        await client.start_container(container)
    except BaseException:
        await client.remove_container(container)
        raise
    return container


async def run_helper(
    client: HypervisorClient,
    name: str,
    labels: dict[str, str],
    host_directory: str,
    script: str,
    what: str,
    arguments: Sequence[str] = (),
) -> None:
    """Run a script in a sandbox of its own, removed after."""
    await ensure_image(client, WRITER_IMAGE)
    labels = {**labels, LABEL_ROLE: WRITER_ROLE}
    config = host_network_sandbox(name, labels.get(bp.LABEL_SPEC_HASH, "helper"), labels, "")
    sandbox = await client.run_sandbox(config)
    try:
        await run_script(client, sandbox, config, labels, host_directory, script, what, arguments)
    finally:
        await client.stop_sandbox(sandbox)
        await client.remove_sandbox(sandbox)


async def write_files(client: HypervisorClient, sandbox: str, pod: bp.PodSpec) -> None:
    """Write the pod's files into its directory, each atomically, from a
    container in the pod's sandbox."""
    await ensure_image(client, WRITER_IMAGE)
    await run_script(
        client,
        sandbox,
        pod_sandbox_config(pod),
        pod.labels,
        pod.directory,
        writer_script(pod.files),
        f"writing the files of {pod.name}",
    )


def write_root(pods: Sequence[bp.PodSpec]) -> str | None:
    """The directory holding every pod's directory, mounted by the helper
    that writes their files; None when that is too near the root of the
    host's filesystem to be mounted writable (not a data directory's)."""
    root = posixpath.commonpath([pod.directory for pod in pods])
    return root if root.startswith("/") and root.count("/") >= 2 else None


def argument_batches(scripts: Sequence[str]) -> Iterator[list[str]]:
    """The scripts in turn, as few helpers' arguments as the kernel allows."""
    batch: list[str] = []
    size = 0
    for script in scripts:
        if len(script) > ARGUMENT_BYTES:
            raise ValueError(f"a pod's files take {len(script)} bytes to write: too many")
        if batch and size + len(script) > ARGUMENTS_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(script)
        size += len(script)
    if batch:
        yield batch


async def write_many(
    client: HypervisorClient, pods: Sequence[bp.PodSpec], labels: dict[str, str]
) -> None:
    """The files of pods about to be created, written by a helper in a
    sandbox of its own: two pods' writers in their own sandboxes already cost
    more CRI calls. Raises ValueError when their directories have no common
    root that may be mounted, Failed when a script fails (which pod's is not
    told: each writes its own then, and fails on its own)."""
    root = write_root(pods)
    if root is None:
        raise ValueError("the pods' directories share no data directory")
    scripts = [
        writer_script(
            pod.files, "" if pod.directory == root else posixpath.relpath(pod.directory, root)
        )
        for pod in pods
    ]
    for batch in argument_batches(scripts):
        # A name of its own: one left by a crash keeps its name reserved.
        await run_helper(client, f"files-{secrets.token_hex(4)}", labels, root, RUN_EACH,
                         f"writing the files of {len(batch)} pods", batch)  # fmt: skip


HAS_DATA = "test -d /target/member"  # etcd's member/ (its WAL and snapshots): there once started


async def etcd_data_present(client: HypervisorClient, sandbox: str, pod: bp.PodSpec) -> bool:
    """Whether the pod's etcd member still has its data directory's member/."""
    spec = pod.container("etcd")
    data = next((m.host_path for m in spec.mounts if m.container_path == etcd.DATA_DIR), None)
    if data is None:
        return True  # no data directory of its own: nothing to lose
    await ensure_image(client, WRITER_IMAGE)
    code = await script_exit(
        client, sandbox, pod_sandbox_config(pod), pod.labels, data, HAS_DATA, readonly=True
    )
    return code == 0


def removal_script(relative: str) -> str:
    plain_relative(relative, "remove")
    parent = posixpath.dirname(relative)
    lines = ["set -e", f"rm -rf /target/{relative}"]
    if parent:
        lines.append(f"rmdir /target/{parent} 2>/dev/null || true")  # the last one out
    return "\n".join(lines) + "\n"


async def remove_directory(
    client: HypervisorClient, directory: str, labels: dict[str, str]
) -> None:
    """Remove a component's directory (its files and etcd data), and its
    cluster's directory when it was the last one there."""
    if not directory.startswith("/") or directory.count("/") < 3:
        raise ValueError(f"refusing to remove {directory!r}: not a component's directory")
    cluster_dir = posixpath.dirname(directory)
    root = posixpath.dirname(cluster_dir)
    relative = posixpath.relpath(directory, root)
    name = labels.get(bp.LABEL_CLUSTER_ID, "x") + "-" + labels.get(bp.LABEL_COMPONENT, "x")
    await run_helper(
        client,
        f"{name}-cleanup",
        labels,
        root,
        removal_script(relative),
        f"removing {directory}",
    )


def container_config(
    spec: bp.ContainerSpec, labels: dict[str, str], attempt: int = 0
) -> pb.ContainerConfig:
    """A blueprint's container as CRI takes it; its log is named after it."""
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=spec.name, attempt=attempt),
        image=pb.ImageSpec(image=spec.image),
        command=spec.command + spec.startup_args,
        mounts=[
            pb.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.readonly)
            for m in spec.mounts
        ],
        devices=[pb.Device(container_path=d, host_path=d, permissions="rwm") for d in spec.devices],
        labels=labels,
        log_path=f"{spec.name}.log",
    )
    if spec.capabilities:
        config.linux.security_context.capabilities.add_capabilities.extend(spec.capabilities)
    return config


PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP}


def own_network_sandbox(
    name: str, uid: str, labels: dict[str, str], log_directory: str, network: bp.Network
) -> pb.PodSandboxConfig:
    """A network namespace of the pod's own, made by the hypervisor's CNI,
    with the host ports mapped into it (CNI's portmap)."""
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=NAMESPACE, uid=uid),
        hostname=name[:63],
        labels=labels,
        log_directory=log_directory,
        port_mappings=[
            pb.PortMapping(
                protocol=PROTOCOLS[p.protocol],
                container_port=p.container_port,
                host_port=p.host_port,
            )
            for p in network.ports
        ],
        linux=pb.LinuxPodSandboxConfig(
            sysctls=dict(network.sysctls),
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD)
            ),
        ),
    )


def pod_sandbox_config(pod: bp.PodSpec) -> pb.PodSandboxConfig:
    digest = pod.labels[bp.LABEL_SPEC_HASH]
    if pod.network is not None:
        return own_network_sandbox(pod.name, digest, pod.labels, f"{pod.directory}/logs",
                                   pod.network)  # fmt: skip
    return host_network_sandbox(pod.name, digest, pod.labels, f"{pod.directory}/logs")


async def start_container(
    client: HypervisorClient, sandbox: str, pod: bp.PodSpec, name: str
) -> str:
    """Create and start one of the pod's containers in its sandbox (its
    image made present first: a restart may come long after it was seen)."""
    container = pod.container(name)
    await ensure_image(client, container.image)
    labels = {
        **pod.labels,
        LABEL_ROLE: container.name,
        bp.LABEL_FILES_HASH: pod.files_hash(container),
        LABEL_STOP_GRACE: str(container.stop_grace),
        **({LABEL_LIVE_HASH: live} if (live := pod.live_hash(container)) else {}),
    }
    created = await client.create_container(
        sandbox, container_config(container, labels), pod_sandbox_config(pod)
    )
    await client.start_container(created)
    return created


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a task group ended with, out of its group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def all_at_once(*calls: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run the calls concurrently; the first error, as itself, if any fails."""
    try:
        async with anyio.create_task_group() as tasks:
            for call in calls:
                tasks.start_soon(call)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


Prepare = Callable[[HypervisorClient, str, bp.PodSpec], Coroutine[Any, Any, None]]


async def run_pod(
    client: HypervisorClient,
    pod: bp.PodSpec,
    start: list[str] | None = None,
    prepare: Prepare | None = None,
    write: bool = True,
) -> str:
    """Start the pod's sandbox, write its files, start its containers (those
    named in `start`, default all); returns the sandbox id. A crash half way
    leaves a sandbox that the next plan completes (its files are rewritten
    as its containers start). Every image is made present, started or not."""
    images = sorted({c.image for c in pod.containers} | {WRITER_IMAGE})
    await all_at_once(*(partial(ensure_image, client, image) for image in images))
    sandbox = await client.run_sandbox(pod_sandbox_config(pod))
    if write:  # unless written already (write_many)
        await write_files(client, sandbox, pod)
    if prepare is not None:  # what must be there before the containers start (etcd's data)
        await prepare(client, sandbox, pod)
    names = [c.name for c in pod.containers] if start is None else start
    await all_at_once(*(partial(start_container, client, sandbox, pod, n) for n in names))
    return sandbox
