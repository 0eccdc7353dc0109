"""When a cluster's next backup is due, which backups its schedule no longer
keeps, and a new backup's id. Pure."""

from __future__ import annotations

import datetime as dt

from ..model.state import Cluster

RETRY_FIRST = 30  # seconds after a failed scheduled backup; doubled each time, up to `every`


def last_taken(cluster: Cluster) -> int | None:
    return cluster.backups[-1].taken_at if cluster.backups else None


def due_at(cluster: Cluster) -> int | None:
    """When the cluster's next scheduled backup is due (Unix seconds); None
    without a schedule. A failure puts it off by a backoff."""
    schedule = cluster.backup_schedule
    if schedule is None:
        return None
    last = last_taken(cluster)
    due = 0 if last is None else last + schedule.every
    failure = cluster.backup_failure
    if failure is not None:
        wait = min(schedule.every, RETRY_FIRST * 2 ** min(failure.attempts - 1, 20))
        due = max(due, failure.at + wait)
    return due


def to_prune(cluster: Cluster) -> list[str]:
    """The backups past the newest `keep` of the cluster's schedule, in the
    order they were recorded (several may share a second)."""
    schedule = cluster.backup_schedule
    if schedule is None or len(cluster.backups) <= schedule.keep:
        return []
    return [b.backup_id for b in cluster.backups[: len(cluster.backups) - schedule.keep]]


def backup_id(now: dt.datetime, entropy: bytes) -> str:
    """20261207T112233Z-1a2b3c: sorts by time, and two in a second differ."""
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + entropy[:3].hex()
