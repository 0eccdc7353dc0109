"""Backups as the daemon takes them: asked for (`cluster backup`) or when a
cluster's schedule says; one at a time per cluster, a few at once across
the fleet. A backup is recorded (BackupTaken) once its sealed file is
whole on disk; a failure is recorded too (BackupFailed), and a scheduled
one is tried again after a backoff. Files the state no longer lists (pruned,
a deleted cluster's, a crash's half-written) are removed."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

import anyio
import anyio.abc

from .. import render as bp
from ..errors import BackupFailed, BackupInvalid, CRIError, DomainError, SecretsError
from ..model import commands as cmd
from ..model import events as ev
from ..model.decider.backups import backup_of, clone_source
from ..model.decider.context import existing_cluster
from ..model.state import Cluster
from ..reconcile.fleet import Fleet
from ..reconcile.shared import Shared
from ..render import etcd
from ..render.labels import managed
from ..runtime.etcdctl import Etcd
from ..storage.sealedfile import Header, SealedWriter, check_file
from .schedule import backup_id, due_at, to_prune
from .snapshot import take_snapshot

log = logging.getLogger("oneinfra.backups")

LOOK_EVERY = 10.0  # seconds between looks at the schedules
AT_ONCE = 4  # backups taken at once across the fleet
SUFFIX = ".etcd.sealed"
PART = ".part"


class Backups:
    def __init__(self, shared: Shared, directory: Path, at_once: int = AT_ONCE) -> None:
        self.shared = shared
        self.fleet = shared.fleet
        self.directory = directory
        self._locks: dict[str, anyio.Lock] = {}  # by cluster id: one backup at a time
        self._limiter = anyio.CapacityLimiter(at_once)
        self._unrecorded: set[Path] = set()  # whole files whose event is on its way
        self._scheduled: set[str] = set()  # cluster ids whose scheduled backup runs now
        self._said: dict[str, str] = {}  # cluster -> the failure last logged
        self._scope = anyio.CancelScope()

    def location(self, cluster_id: str, backup: str) -> Path:
        return self.directory / cluster_id / f"{backup}{SUFFIX}"

    # -- taking one ---------------------------------------------------------------------

    async def take(self, name: str) -> ev.Backup:
        """A backup of the cluster, recorded; BackupFailed (recorded as well)
        says why not."""
        cluster = existing_cluster(self.fleet.state, name)
        if cluster.etcd_restore is not None:
            raise DomainError(
                f"cluster {name}'s etcd is being restored from backup "
                f"{cluster.etcd_restore.backup.backup_id}: back it up once that is done"
            )
        lock = self._locks.setdefault(cluster.cluster_id, anyio.Lock())
        async with lock, self._limiter:
            try:
                return await self._take(cluster)
            except (BackupFailed, CRIError, OSError, SecretsError) as error:
                reason = str(error)
            with contextlib.suppress(DomainError):  # deleted meanwhile: nothing to tell
                await self.fleet.execute(cmd.RecordBackupFailure(
                    cluster=cluster.name, cluster_id=cluster.cluster_id, reason=reason,
                ))  # fmt: skip
            raise BackupFailed(f"no backup of cluster {name}: {reason}")

    async def _take(self, cluster: Cluster) -> ev.Backup:
        running = self.shared.running_etcds(cluster)
        if not running:
            raise BackupFailed(f"no etcd member of cluster {cluster.name} is known to run")
        component, client, container = running[0]
        hypervisor = self.fleet.state.hypervisors[component.hypervisor]
        directory = bp.component_directory(cluster, component, hypervisor.data_dir)
        data = f"{directory}/{etcd.data_directory(component.etcd_generation)}"
        labels = {**managed(self.shared.options.fleet), bp.LABEL_CLUSTER: cluster.name,
                  bp.LABEL_CLUSTER_ID: cluster.cluster_id}  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        backup = backup_id(now, os.urandom(3))
        path = self.location(cluster.cluster_id, backup)
        part = path.with_name(path.name + PART)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        header = Header(cluster=cluster.name, cluster_id=cluster.cluster_id, backup_id=backup,
                        key_id=cluster.key_id, nonce_prefix=os.urandom(7))  # fmt: skip
        key = self.fleet.keys.get(cluster.key_id)
        began = time.monotonic()
        try:
            with os.fdopen(
                os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
            ) as file:
                writer = SealedWriter(file, header, key)

                async def sink(chunk: bytes) -> None:
                    await anyio.to_thread.run_sync(writer.write, chunk)

                etcdctl = Etcd(client, container, component.ports["etcd-client"])
                taken = await take_snapshot(client, etcdctl, data, labels, component.name, sink)
                writer.close()
                file.flush()
                os.fsync(file.fileno())
            os.replace(part, path)
            self._unrecorded.add(path)
            sync_directory(path.parent)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        record = ev.Backup(
            backup_id=backup, taken_at=int(now.timestamp()), member=component.name,
            revision=taken.status.revision, keys=taken.status.total_key, size=taken.size,
            etcd_hash=taken.status.hash, sha256=taken.sha256, location=str(path),
        )  # fmt: skip
        try:
            await self.fleet.execute(
                cmd.RecordBackup(cluster=cluster.name, cluster_id=cluster.cluster_id, backup=record)
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            self._unrecorded.discard(path)
        where = {"cluster": cluster.name, "component": component.name,
                 "hypervisor": component.hypervisor}  # fmt: skip
        log.info("backed up at revision %d: %d keys, %d bytes, in %.1f s", record.revision,
                 record.keys, record.size, time.monotonic() - began, extra=where)  # fmt: skip
        return record

    # -- the schedule -------------------------------------------------------------------

    async def run(self, look_every: float = LOOK_EVERY) -> None:
        """Scheduled backups as they come due, pruning, and the sweep of files
        no backup holds, until stopped."""
        with self._scope:
            async with anyio.create_task_group() as tasks:
                while True:
                    self.start_due(tasks, int(time.time()))
                    await self.prune()
                    await self.sweep()
                    await anyio.sleep(look_every)

    def stop(self) -> None:
        self._scope.cancel()

    def start_due(self, tasks: anyio.abc.TaskGroup, now: int) -> None:
        for cluster in list(self.fleet.state.clusters.values()):
            due = due_at(cluster)
            if due is None or cluster.etcd_restore is not None:  # restoring: after that
                continue
            if due <= now and cluster.cluster_id not in self._scheduled:
                self._scheduled.add(cluster.cluster_id)
                tasks.start_soon(self._scheduled_backup, cluster.name, cluster.cluster_id)

    async def _scheduled_backup(self, name: str, cluster_id: str) -> None:
        try:
            await self.take(name)
            self._said.pop(name, None)
        except (BackupFailed, DomainError) as error:
            if self._said.get(name) != str(error):
                log.warning("%s", error, extra={"cluster": name})
            self._said[name] = str(error)
        except Exception:  # the store full, the daemon stopping: the next look again
            log.exception("scheduled backup of cluster %s", name)
        finally:
            self._scheduled.discard(cluster_id)

    async def prune(self) -> None:
        clusters = list(self.fleet.state.clusters.values())
        restoring = {c.etcd_restore.backup.backup_id for c in clusters if c.etcd_restore}
        for cluster in clusters:
            # A backup a restore (or a clone) is made from stays until it is done.
            old = [b for b in to_prune(cluster) if b not in restoring]
            if not old:
                continue
            try:
                await self.fleet.execute(cmd.PruneBackups(cluster=cluster.name, backup_ids=old))
            except Exception as error:  # deleted meanwhile, the store full: the next look
                log.warning("pruning backups: %s", error, extra={"cluster": cluster.name})
                continue
            for backup in old:
                self.location(cluster.cluster_id, backup).unlink(missing_ok=True)

    async def sweep(self) -> None:
        """Files no backup of the state holds (pruned with a crash after the
        event, half written, a deleted cluster's: its key is gone anyway)
        are removed. What the state holds is read here, on the loop that
        changes it; the files are looked at in a worker thread."""
        clusters = list(self.fleet.state.clusters.values())
        held = {Path(b.location) for c in clusters for b in c.backups}
        held |= {Path(c.etcd_restore.backup.location) for c in clusters if c.etcd_restore}
        ids = {c.cluster_id for c in clusters}
        busy = {i for i, lock in self._locks.items() if lock.locked()} | self._scheduled
        for gone in set(self._locks) - ids - busy:
            del self._locks[gone]
        await anyio.to_thread.run_sync(
            remove_unheld, self.directory, held | self._unrecorded, ids, busy
        )


def remove_unheld(directory: Path, held: set[Path], clusters: set[str], busy: set[str]) -> None:
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        if entry.name not in clusters:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name not in busy:  # no backup is being written there
            for file in entry.iterdir():
                if file not in held:
                    file.unlink(missing_ok=True)


async def check_backup(fleet: Fleet, cluster: str, backup_id: str) -> None:
    """The backup's file opens whole with its cluster's key and holds what
    was recorded: BackupInvalid (a DomainError) says why not, before
    anything is decided from it."""
    source = existing_cluster(fleet.state, cluster)
    await check_source(fleet, source, backup_of(source, backup_id))


async def check_clone_source(fleet: Fleet, from_backup: str) -> None:
    await check_source(fleet, *clone_source(fleet.state, from_backup))


async def check_source(fleet: Fleet, source: Cluster, backup: ev.Backup) -> None:
    key = fleet.keys.get(source.key_id)
    try:
        opened = await anyio.to_thread.run_sync(
            check_file, Path(backup.location), source.name, source.cluster_id, backup.backup_id,
            key,
        )  # fmt: skip
        if (opened.size, opened.sha256) != (backup.size, backup.sha256):
            raise BackupInvalid("it opens, but holds another snapshot than the one recorded")
    except BackupInvalid as error:
        raise BackupInvalid(
            f"backup {backup.backup_id} of cluster {source.name} ({backup.location}) is "
            f"refused: {error}; nothing was changed"
        ) from None


def sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
