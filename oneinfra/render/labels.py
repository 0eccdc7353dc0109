"""The labels on oneinfra's pods and containers: how the reconciler finds
its own (and only its own) and tells what each runs. Read by the pure plan
and status code and written by the CRI side, so they live here, with the
rendering, below both."""

from __future__ import annotations

from collections.abc import Mapping

LABEL_MANAGED_BY = "oneinfra.io/managed-by"
LABEL_CLUSTER = "oneinfra.io/cluster"
LABEL_CLUSTER_ID = "oneinfra.io/cluster-id"
LABEL_COMPONENT = "oneinfra.io/component"
LABEL_SPEC_HASH = "oneinfra.io/spec-hash"
LABEL_FILES_HASH = "oneinfra.io/files-hash"  # on containers: the files they read
LABEL_DIRECTORY = "oneinfra.io/directory"  # the component's directory, removed with it
LABEL_FLEET = "oneinfra.io/fleet"  # which daemon's: hypervisors may be shared
LABEL_ROLE = "oneinfra.io/role"  # on containers: its name in the blueprint
LABEL_LIVE_HASH = "oneinfra.io/live-hash"  # on containers: the files they re-read by themselves
LABEL_STOP_GRACE = "oneinfra.io/stop-grace"  # on containers: seconds it gets to exit
# The sandbox a backup is read out through (backup/snapshot.py), its
# component label the member's with this suffix: left alone while it works.
BACKUP_ROLE = "backup-reader"
WRITER_ROLE = "file-writer"  # the role of the short-lived containers that write files
MANAGED = {LABEL_MANAGED_BY: "oneinfra"}


def managed(fleet: str) -> dict[str, str]:
    """The label selector of one fleet's pods (of any oneinfra's, without a fleet)."""
    return {**MANAGED, LABEL_FLEET: fleet} if fleet else dict(MANAGED)


def stop_grace(labels: Mapping[str, str], default: int) -> int:
    """A container's grace from its label; `default` for one started
    before the label, or with a label that is not a small count."""
    found = labels.get(LABEL_STOP_GRACE, "")
    return int(found) if found.isdigit() and len(found) <= 4 else default
