"""A snapshot of a cluster's etcd, taken through CRI alone: `etcdctl
snapshot save` in a running member's container writes it into the member's
data directory, `etcdutl snapshot status` checks it there, and a reader (a
busybox container in a sandbox of its own, mounting that directory) hands
it over in chunks by ExecSync, which carries bytes as they are. The
snapshot's file is removed after, whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable

import msgspec

from .. import render as bp
from ..errors import BackupFailed, CRIError
from ..render import etcd
from ..render.labels import BACKUP_ROLE, LABEL_ROLE
from ..runtime.cri import HypervisorClient
from ..runtime.etcdctl import Etcd
from ..runtime.realize import (
    WRITER_IMAGE,
    checked_exec,
    ensure_image,
    host_network_sandbox,
    start_shell,
)

SNAPSHOT_FILE = "oneinfra-snapshot.db"  # in the member's data directory, beside member/
SAVE_TIMEOUT = 600  # seconds for etcdctl to write a snapshot (etcd may hold gigabytes)
READ_CHUNK = 4 * 1024 * 1024  # bytes an ExecSync hands over (CRI's messages stop at 16 MiB)
READ_TIMEOUT = 60  # seconds for one chunk
READER_LIFE = 3600  # seconds the reader sleeps: it is gone by then, crash or not


class SnapshotStatus(msgspec.Struct, frozen=True, rename="camel"):
    """`etcdutl snapshot status -w json`."""

    hash: int
    revision: int
    total_key: int
    total_size: int


Sink = Callable[[bytes], Awaitable[None]]


class Taken(msgspec.Struct, frozen=True):
    status: SnapshotStatus
    size: int
    sha256: str


def reader_labels(labels: dict[str, str], component: str) -> dict[str, str]:
    """The member's pod labels, under a component of its own: the reconciler
    tells it from the member's pod, and leaves it to the backup."""
    return {
        **{k: v for k, v in labels.items() if k in (bp.LABEL_MANAGED_BY, bp.LABEL_FLEET,
                                                    bp.LABEL_CLUSTER, bp.LABEL_CLUSTER_ID)},
        bp.LABEL_COMPONENT: f"{component}-backup",
        LABEL_ROLE: BACKUP_ROLE,
    }  # fmt: skip


async def run(client: HypervisorClient, container: str, argv: list[str], seconds: int) -> bytes:
    return await checked_exec(client, container, argv, seconds, " ".join(argv[:3]))


async def take_snapshot(
    client: HypervisorClient,
    member: Etcd,
    data_directory: str,
    labels: dict[str, str],
    component: str,
    sink: Sink,
) -> Taken:
    """Snapshot the member's etcd and hand its bytes to `sink`, in order.
    `data_directory` is the member's data on its hypervisor; `labels`, its
    pod's. Raises BackupFailed (or CRIError) at the step that failed."""
    inside = f"{etcd.DATA_DIR}/{SNAPSHOT_FILE}"
    await member.run_long(SAVE_TIMEOUT, "snapshot", "save", inside)
    status_argv = ["etcdutl", "snapshot", "status", inside, "-w", "json"]
    raw = await run(client, member.container_id, status_argv, READ_TIMEOUT)
    try:
        status = msgspec.json.decode(raw, type=SnapshotStatus)
    except msgspec.DecodeError as error:
        raise BackupFailed(f"etcdutl's status of the snapshot is unclear: {error}") from None
    await ensure_image(client, WRITER_IMAGE)
    tagged = reader_labels(labels, component)
    uid = f"{time.time_ns()}"  # a crash's reader may still hold the last name
    config = host_network_sandbox(f"{tagged[bp.LABEL_CLUSTER_ID]}-{component}-backup", uid,
                                  tagged, "")  # fmt: skip
    sandbox = await client.run_sandbox(config)
    try:
        container = await start_shell(client, sandbox, config, tagged, "reader", data_directory,
                                      READER_LIFE)  # fmt: skip
        try:
            return await read_out(client, container, status, sink)
        finally:
            with contextlib.suppress(CRIError):  # the next snapshot writes over it
                await client.exec_sync(container, ["rm", "-f", f"/target/{SNAPSHOT_FILE}"], 30)
    finally:
        await client.stop_sandbox(sandbox)
        await client.remove_sandbox(sandbox)


async def read_out(
    client: HypervisorClient, container: str, status: SnapshotStatus, sink: Sink
) -> Taken:
    """The snapshot's bytes, chunk by chunk, checked against the reader's
    own digest of the file: what arrived is what etcdctl wrote."""
    path = f"/target/{SNAPSHOT_FILE}"
    said = (await run(client, container, ["sha256sum", path], READ_TIMEOUT)).split()
    size = int((await run(client, container, ["stat", "-c", "%s", path], READ_TIMEOUT)).strip())
    digest, received = hashlib.sha256(), 0
    index = 0
    while received < size:
        chunk = await run(client, container, [
            "dd", f"if={path}", f"bs={READ_CHUNK}", f"skip={index}", "count=1",
        ], READ_TIMEOUT)  # fmt: skip
        if not chunk:
            raise BackupFailed(f"the snapshot ended at {received} of its {size} bytes")
        digest.update(chunk)
        received += len(chunk)
        index += 1
        await sink(chunk)
    if received != size or not said or digest.hexdigest() != said[0].decode():
        raise BackupFailed("the snapshot's bytes changed on their way to the management host")
    return Taken(status=status, size=size, sha256=digest.hexdigest())
