"""Make a blueprint real on a hypervisor, through CRI alone (no SSH).

Files arrive by a short-lived container that mounts the component's
directory and writes them (each atomically, with its mode) from a script
that carries their content; then the pod's sandbox and containers start.
"""

from __future__ import annotations

import base64
import posixpath
import re

import anyio

from . import blueprints as bp
from .api.runtime import v1 as cri
from .cri import Failed, HypervisorClient

WRITER_IMAGE = "docker.io/library/busybox:1.35"
LABEL_ROLE = "oneinfra.io/role"
WRITER_ROLE = "file-writer"
SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
NAMESPACE = "oneinfra"
WRITE_TIMEOUT = 120.0  # seconds for the writer to finish once started


def writer_script(files: list[bp.File]) -> str:
    """A POSIX shell script writing every file under /target."""
    lines = ["set -e", "umask 077"]
    for file in files:
        if not SAFE_PATH.match(file.path) or ".." in file.path.split("/"):
            raise ValueError(f"refusing to write {file.path!r}: not a plain relative path")
        target = f"/target/{file.path}"
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
) -> cri.PodSandboxConfig:
    # Host network: no CNI needed, and no hostname (runc refuses one without a
    # UTS namespace of its own).
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace=NAMESPACE, uid=uid),
        labels=labels,
        log_directory=log_directory,
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NamespaceMode.NODE)
            )
        ),
    )


async def ensure_image(client: HypervisorClient, image: str) -> None:
    if await client.image_status(image) is None:
        await client.pull_image(image)


async def write_files(client: HypervisorClient, pod: bp.PodSpec) -> None:
    """Run the writer to completion; raise Failed if it does not exit 0."""
    await ensure_image(client, WRITER_IMAGE)
    labels = {**pod.labels, LABEL_ROLE: WRITER_ROLE}
    digest = pod.labels[bp.LABEL_SPEC_HASH]
    config = host_network_sandbox(f"{pod.name}-files", digest, labels, f"{pod.directory}/logs")
    sandbox = await client.run_sandbox(config)
    try:
        writer = bp.ContainerSpec(
            name="writer",
            image=WRITER_IMAGE,
            command=["sh", "-c", writer_script(pod.files)],
            mounts=[bp.Mount("/target", pod.directory, readonly=False)],
        )
        container = await client.create_container(sandbox, container_config(writer, labels), config)
        await client.start_container(container)
        with anyio.fail_after(WRITE_TIMEOUT):
            while True:
                status = await client.container_status(container)
                if status.state == cri.ContainerState.CONTAINER_EXITED:
                    break
                await anyio.sleep(0.05)
        if status.exit_code != 0:
            raise Failed(
                client.endpoint, f"writing the files of {pod.name} exited {status.exit_code}"
            )
    finally:
        await client.stop_sandbox(sandbox)
        await client.remove_sandbox(sandbox)


def container_config(spec: bp.ContainerSpec, labels: dict[str, str]) -> cri.ContainerConfig:
    """A blueprint's container as CRI takes it; its log is named after it."""
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=spec.name),
        image=cri.ImageSpec(image=spec.image),
        command=spec.command,
        mounts=[
            cri.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.readonly)
            for m in spec.mounts
        ],
        labels=labels,
        log_path=f"{spec.name}.log",
    )


def pod_sandbox_config(pod: bp.PodSpec) -> cri.PodSandboxConfig:
    digest = pod.labels[bp.LABEL_SPEC_HASH]
    return host_network_sandbox(pod.name, digest, pod.labels, f"{pod.directory}/logs")


async def start_container(
    client: HypervisorClient, sandbox: str, pod: bp.PodSpec, name: str
) -> str:
    """Create and start one of the pod's containers in its sandbox."""
    (container,) = [c for c in pod.containers if c.name == name]
    labels = {**pod.labels, LABEL_ROLE: container.name}
    created = await client.create_container(
        sandbox, container_config(container, labels), pod_sandbox_config(pod)
    )
    await client.start_container(created)
    return created


async def run_pod(client: HypervisorClient, pod: bp.PodSpec) -> str:
    """Start the pod's sandbox and containers; returns the sandbox id."""
    for container in pod.containers:
        await ensure_image(client, container.image)
    sandbox = await client.run_sandbox(pod_sandbox_config(pod))
    for container in pod.containers:
        await start_container(client, sandbox, pod, container.name)
    return sandbox
