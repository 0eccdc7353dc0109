"""Backups of a cluster's etcd: each one taken (or failed) is recorded as
the daemon, which took it; schedules set by people; old ones pruned."""

from __future__ import annotations

import re

from ...errors import DomainError, shown
from .. import commands as cmd
from .. import events as ev
from ..state import Cluster, FleetState
from .context import Context, Decision, existing_cluster, new_id

BACKUP_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")  # 20261207T112233Z-1a2b3c
MAX_BACKUPS = 1000  # kept per cluster: past that, a schedule's keep prunes them
MIN_EVERY = 60  # seconds
MAX_EVERY = 366 * 24 * 3600
MAX_KEEP = 1000
MAX_REASON = 500  # characters of a failure's reason
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def same_cluster(state: FleetState, name: str, cluster_id: str) -> Cluster:
    """The cluster a backup was taken of: gone, or made again under its
    name since, it is refused."""
    cluster = existing_cluster(state, name)
    if cluster.cluster_id != cluster_id:
        raise DomainError(f"cluster {cluster.name} was deleted and made again since")
    return cluster


def record_backup(state: FleetState, command: cmd.RecordBackup, context: Context) -> Decision:
    cluster = same_cluster(state, command.cluster, command.cluster_id)
    backup = command.backup
    if not BACKUP_ID.match(backup.backup_id):
        raise DomainError(f"{shown(backup.backup_id)} is not a backup id")
    if any(b.backup_id == backup.backup_id for b in cluster.backups):
        return Decision(events=[])  # recorded already
    if len(cluster.backups) >= MAX_BACKUPS:
        raise DomainError(
            f"cluster {cluster.name} has {MAX_BACKUPS} backups; schedule backups with "
            "a number to keep, and the older ones are pruned"
        )
    if backup.member not in cluster.components:
        raise DomainError(f"cluster {cluster.name} has no component {shown(backup.member)}")
    if not SHA256.match(backup.sha256) or min(backup.size, backup.revision, backup.keys) < 0:
        raise DomainError("a backup's figures are not an etcd snapshot's")
    return Decision(events=[ev.BackupTaken(cluster=cluster.name, backup=backup)])


def record_backup_failure(
    state: FleetState, command: cmd.RecordBackupFailure, context: Context
) -> Decision:
    cluster = same_cluster(state, command.cluster, command.cluster_id)
    reason = command.reason.strip()[:MAX_REASON] or "no reason given"
    at = int(context.now.timestamp())
    return Decision(events=[ev.BackupFailed(cluster=cluster.name, at=at, reason=reason)])


def prune_backups(state: FleetState, command: cmd.PruneBackups, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    known = {b.backup_id for b in cluster.backups}
    pruned = sorted(set(command.backup_ids) & known)
    if not pruned:
        return Decision(events=[])
    return Decision(events=[ev.BackupsPruned(cluster=cluster.name, backup_ids=pruned)])


def schedule_backups(state: FleetState, command: cmd.ScheduleBackups, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    if command.every and not MIN_EVERY <= command.every <= MAX_EVERY:
        raise DomainError(
            f"backups every {command.every} s: take {MIN_EVERY} s to {MAX_EVERY // 86400} days, "
            "or 0 for none"
        )
    if command.every and not 1 <= command.keep <= MAX_KEEP:
        raise DomainError(f"keep {command.keep} backups: take 1 to {MAX_KEEP}")
    keep = command.keep if command.every else 0
    current = cluster.backup_schedule
    if ((current.every, current.keep) if current else (0, 0)) == (command.every, keep):
        return Decision(events=[])
    return Decision(
        events=[ev.BackupScheduleSet(cluster=cluster.name, every=command.every, keep=keep)]
    )


def backup_of(cluster: Cluster, backup_id: str) -> ev.Backup:
    found = next((b for b in cluster.backups if b.backup_id == backup_id), None)
    if found is None:
        raise DomainError(
            f"cluster {cluster.name} has no backup {shown(backup_id)}; "
            f"'oneinfra cluster backups {cluster.name}' lists them"
        )
    return found


def restore_started(
    name: str, cluster_id: str, source: Cluster, backup: ev.Backup, context: Context
) -> ev.EtcdRestoreStarted:
    return ev.EtcdRestoreStarted(
        cluster=name, backup=backup, source_cluster=source.name,
        source_cluster_id=source.cluster_id, source_key_id=source.key_id,
        token=f"{cluster_id}-{new_id(context)[:8]}",
    )  # fmt: skip


def restore_cluster(state: FleetState, command: cmd.RestoreCluster, context: Context) -> Decision:
    """Every member rebuilt from the backup (a restore under way is
    superseded); the PKI stays, so workers and kubeconfigs go on working."""
    cluster = existing_cluster(state, command.cluster)
    backup = backup_of(cluster, command.backup_id)
    started = restore_started(cluster.name, cluster.cluster_id, cluster, backup, context)
    return Decision(events=[started])


def complete_etcd_restore(
    state: FleetState, command: cmd.CompleteEtcdRestore, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    restore = cluster.etcd_restore
    if restore is None or restore.backup.backup_id != command.backup_id:
        return Decision(events=[])  # completed already, or superseded
    return Decision(
        events=[ev.EtcdRestoreCompleted(cluster=cluster.name, backup_id=command.backup_id)]
    )


def clone_source(state: FleetState, from_backup: str) -> tuple[Cluster, ev.Backup]:
    """CLUSTER/BACKUP: the cluster whose backup a clone starts from."""
    name, slash, backup_id = from_backup.partition("/")
    if not slash or not name or not backup_id:
        raise DomainError(f"{shown(from_backup)} is not CLUSTER/BACKUP (a cluster's backup id)")
    source = existing_cluster(state, name)
    return source, backup_of(source, backup_id)
