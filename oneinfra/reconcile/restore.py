"""A restored etcd member's data directory, made on its hypervisor through
CRI alone before its etcd first starts: the backup's snapshot, opened on the
management host, is carried in by ExecSync (CRI has no other way in: no
stdin, so base64 in arguments, each under Linux's 128 KiB), checked against
the backup's digest, and `etcdutl snapshot restore` (from the etcd image)
makes the member's data from it. Done once: a member with its data is left
alone, and a half-made directory is made again."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import anyio

from .. import render as bp
from ..errors import BackupInvalid, Failed
from ..render.labels import LABEL_ROLE, WRITER_ROLE
from ..runtime.cri import HypervisorClient
from ..runtime.realize import (
    WRITER_IMAGE,
    checked_exec,
    ensure_image,
    exit_code,
    pod_sandbox_config,
    start_shell,
)
from ..storage.sealedfile import read_sealed

log = logging.getLogger("oneinfra.reconciler")

SNAPSHOT = "restore.db"  # in the component's directory, while the member is made
ARGUMENT = 96 * 1024  # base64 characters an argument carries (a multiple of 4)
ARGUMENTS = 16  # arguments an ExecSync carries: 1.5 MiB, well under ARG_MAX
APPEND = 'printf %s "$@" | base64 -d >> /target/' + SNAPSHOT
CALL_TIMEOUT = 60  # seconds for one ExecSync
RESTORE_TIMEOUT = 900.0  # seconds for etcdutl to make the data directory
LOADER_LIFE = 3600  # seconds the loader sleeps: gone by then, crash or not


def argument_groups(data: bytes) -> Iterator[list[str]]:
    """The data in base64, cut in arguments and grouped by call: each piece
    decodes alone, so the pieces' concatenation does too."""
    encoded = base64.b64encode(data).decode()
    pieces = [encoded[i : i + ARGUMENT] for i in range(0, len(encoded), ARGUMENT)]
    for start in range(0, len(pieces), ARGUMENTS):
        yield pieces[start : start + ARGUMENTS]


async def run(client: HypervisorClient, container: str, argv: list[str], what: str) -> bytes:
    return await checked_exec(client, container, argv, CALL_TIMEOUT, what)


async def restore_member(client: HypervisorClient, sandbox: str, pod: bp.PodSpec) -> None:
    """Make the pod's etcd data directory from its restore's backup, unless
    it is made already."""
    spec = pod.restore
    assert spec is not None, "only a restoring member's pod"
    if not spec.data_key:
        raise Failed(client.endpoint, f"backup {spec.backup_id} cannot be opened: cluster "
                     f"{spec.cluster} was deleted, and its key with it")  # fmt: skip
    config = pod_sandbox_config(pod)
    labels = {**pod.labels, LABEL_ROLE: WRITER_ROLE}
    await ensure_image(client, WRITER_IMAGE)
    container = await start_shell(client, sandbox, config, labels, "restore-loader",
                                  pod.directory, LOADER_LIFE)  # fmt: skip
    data = f"/target/{spec.data_directory}"
    try:
        made = await client.exec_sync(container, ["test", "-d", f"{data}/member"], CALL_TIMEOUT)
        if made.exit_code == 0:
            return  # restored before (a crash came after)
        await run(client, container, ["rm", "-rf", data, f"/target/{SNAPSHOT}"], "clearing")
        began = time.monotonic()
        await carry_in(client, container, spec)
        carried = time.monotonic() - began
        said = await run(client, container, ["sha256sum", f"/target/{SNAPSHOT}"], "sha256sum")
        if said.split()[:1] != [spec.sha256.encode()]:
            raise Failed(client.endpoint, f"backup {spec.backup_id} arrived changed")
        await ensure_image(client, spec.image)
        etcdutl = bp.ContainerSpec(
            name="etcd-restore", image=spec.image,
            command=["etcdutl", "snapshot", "restore", f"/target/{SNAPSHOT}",
                     f"--data-dir={data}", *spec.arguments],
            mounts=[bp.Mount("/target", pod.directory, readonly=False)],
        )  # fmt: skip
        began = time.monotonic()
        code = await exit_code(client, sandbox, config, pod.labels, etcdutl, RESTORE_TIMEOUT)
        if code != 0:
            await run(client, container, ["rm", "-rf", data], "clearing")
            raise Failed(client.endpoint, f"etcdutl snapshot restore exited {code}")
        await run(client, container, ["rm", "-f", f"/target/{SNAPSHOT}"], "clearing")
        where = {"cluster": pod.labels.get(bp.LABEL_CLUSTER, ""), "hypervisor": pod.hypervisor,
                 "component": pod.labels.get(bp.LABEL_COMPONENT, "")}  # fmt: skip
        log.info("etcd's data made from backup %s: %d bytes carried in in %.1f s, "
                 "etcdutl snapshot restore in %.1f s", spec.backup_id, spec.size, carried,
                 time.monotonic() - began, extra=where)  # fmt: skip
    finally:
        await client.remove_container(container)


async def carry_in(client: HypervisorClient, container: str, spec: bp.EtcdRestoreSpec) -> None:
    """The snapshot's plain bytes, opened chunk by chunk (in a worker
    thread: decrypting is work), appended to the snapshot file."""
    chunks = read_sealed(Path(spec.location), spec.cluster, spec.cluster_id, spec.backup_id,
                         spec.data_key)  # fmt: skip
    try:
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            for group in argument_groups(chunk):
                await run(client, container, ["sh", "-c", APPEND, "sh", *group], "appending")
    except BackupInvalid as error:
        raise Failed(client.endpoint, f"backup {spec.backup_id}: {error}") from None
