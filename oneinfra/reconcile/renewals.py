"""Certificates renewed when due: the daemon looks at every cluster's leaves
(in memory: the state knows what each is good for) and, for a cluster with
any past 2/3 of its life, decides a renewal as itself. The decider renews
only what is due at its own time, so a look made twice renews once. A
daemon that was down over a renewal time catches up at its first look.

What is renewed reaches the hypervisors as any change of the desired state
does: the pods that carry the certificates are rendered again."""

from __future__ import annotations

import logging
import time

import anyio

from ..errors import DomainError
from ..model import commands as cmd
from ..model.decider.certificates import due, key_retirement, key_retirement_due, leaf_ids
from ..model.state import Cluster, FleetState
from .fleet import Fleet

log = logging.getLogger(__name__)

LOOK_EVERY = 10.0  # seconds at most between looks; sooner when a renewal is due sooner
SOONEST = 0.5  # seconds: no busier than this, whatever is due


def next_renewal(state: FleetState) -> float | None:
    """When the first leaf of the fleet comes due, or a rotation's old
    service-account key may go (Unix seconds)."""
    clusters = state.clusters.values()
    leaves = (c.certificates[i].validity.renew_at for c in clusters for i in leaf_ids(c))
    keys = (at for c in clusters if (at := key_retirement(c)) is not None)
    return min((*leaves, *keys), default=None)


def due_commands(state: FleetState, now: int) -> list[tuple[Cluster, cmd.Command]]:
    """What the daemon decides now, as itself: due renewals, due key retirements."""
    found: list[tuple[Cluster, cmd.Command]] = []
    for cluster in state.clusters.values():
        if due(cluster, now):
            found.append((cluster, cmd.RenewCertificates(cluster=cluster.name, due_only=True)))
        if key_retirement_due(cluster, now):
            found.append((cluster, cmd.RetireServiceAccountKey(cluster=cluster.name)))
    return found


async def renew_when_due(fleet: Fleet, look_every: float = LOOK_EVERY) -> None:
    failed: dict[str, str] = {}  # cluster -> the refusal last logged, so that it is logged once
    while True:
        now = int(time.time())
        failed = {name: said for name, said in failed.items() if name in fleet.state.clusters}
        for cluster, command in due_commands(fleet.state, now):
            try:
                await fleet.execute(command)
                failed.pop(cluster.name, None)
            except Exception as error:  # deleted meanwhile, the store full: tried again later
                said = str(error) if isinstance(error, DomainError) else repr(error)
                if failed.get(cluster.name) != said:
                    log.warning("renewing cluster %s's certificates: %s", cluster.name, said)
                failed[cluster.name] = said
        upcoming = next_renewal(fleet.state)
        # After a failure, the next look is a full interval away: no retry storm.
        wait = look_every if upcoming is None or failed else upcoming - time.time()
        await anyio.sleep(min(max(wait, SOONEST), look_every))
