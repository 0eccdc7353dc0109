"""A control plane's etcd member replaced (its data lost or corrupted):
decided by the daemon, from what it observed, as itself."""

from __future__ import annotations

from ...errors import DomainError
from .. import commands as cmd
from .. import events as ev
from ..kinds import CONTROL_PLANE
from ..state import FleetState
from .context import Context, Decision, existing_cluster

MIN_MEMBERS = 3  # fewer: the others are no quorum to rebuild it from
MAX_REASON = 500  # characters: what the daemon saw, cut short


def replace_etcd_member(
    state: FleetState, command: cmd.ReplaceEtcdMember, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    component = cluster.components.get(command.component)
    if component is None or component.role != CONTROL_PLANE:
        raise DomainError(f"cluster {cluster.name} has no control plane {command.component[:80]!r}")
    members = len(cluster.control_planes())
    if members < MIN_MEMBERS:
        raise DomainError(
            f"cluster {cluster.name} has {members} etcd member(s): a lost one cannot be "
            f"rebuilt from the others (it takes {MIN_MEMBERS}); restore it from a backup"
        )
    if not 0 < command.member_id < 2**64:
        raise DomainError(f"{command.member_id} is not an etcd member id")
    if component.replaced_member == command.member_id:
        return Decision(events=[])  # decided already: asked twice, replaced once
    reason = command.reason.strip()[:MAX_REASON]
    if not reason:
        raise DomainError("a replacement says why")
    return Decision(
        events=[
            ev.EtcdMemberReplaced(
                cluster=cluster.name,
                component=component.name,
                member_id=command.member_id,
                reason=reason,
            )
        ]
    )
