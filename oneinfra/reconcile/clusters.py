"""One worker per cluster: its etcd membership while it scales (pure steps
in membership.py, carried out by etcdctl through CRI) and its readiness,
`/readyz` through the ingress (runtime/probe.py).

Quick while the cluster may be starting, then less and less often, so that
a fleet of clusters that do not answer costs little.
"""

from __future__ import annotations

import logging
import ssl
import time

import anyio
import anyio.abc

from .. import render as bp
from ..errors import CRIError, DomainError, KubeError
from ..model import commands as cmd
from ..model.kinds import FAILED, READY
from ..model.state import Cluster, api_server_endpoint
from ..render.etcd import BUMP_REVISION
from ..runtime.etcdctl import Etcd, Member
from . import membership as mb
from .in_cluster import InCluster
from .phases import Phase
from .shared import Shared
from .vpn import VpnPeers
from .workqueue import Wakeup

log = logging.getLogger("oneinfra.reconciler")

MEMBERSHIP_STEPS = 4  # etcd changes per cluster pass, at most
QUICK_PROBES = 60  # quick probes of a cluster after a change (15 s at 0.25 s)
BACKOFF = 1.5  # then each wait this much longer, up to the resync


async def apply_step(etcd: Etcd, step: mb.Step) -> None:
    match step:
        case mb.Remove():
            await etcd.remove(step.member.member_id)
        case mb.Promote():
            await etcd.promote(step.member.member_id)
        case mb.Add():
            await etcd.add_learner(step.name, step.peer_url)


class ClusterLoop:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.fleet = shared.fleet
        self.options = shared.options
        self.board = shared.board
        self.doorbells = shared.doorbells
        self.connections = shared.connections
        self.memberships = shared.memberships
        self.events = shared.events
        self.in_cluster = InCluster(shared)
        self.vpn = VpnPeers(shared)

    async def run(self, name: str, cluster_id: str, wakeup: Wakeup) -> None:
        """Passes over the cluster until it is deleted; once it is ready, a
        watch over its nodes and CSRs rings for a pass as they change."""
        async with anyio.create_task_group() as watching:
            await self.passes(name, cluster_id, wakeup, watching)
            watching.cancel_scope.cancel()

    async def passes(
        self, name: str, cluster_id: str, wakeup: Wakeup, watching: anyio.abc.TaskGroup
    ) -> None:
        quiet = 0  # passes since the last ring that found it not ready
        watched = False
        try:
            while True:
                cluster = self.fleet.state.clusters.get(name)
                if cluster is None or cluster.cluster_id != cluster_id:
                    self.board.cluster_deleted(name, cluster_id)
                    return
                delay = min(self.options.quick * BACKOFF ** max(0, quiet - QUICK_PROBES),
                            self.options.resync)  # fmt: skip
                try:
                    watch_membership = self.membership_to_watch(cluster)
                    if watch_membership:
                        await self.reconcile_membership(cluster)
                    ready = await self.check_ready(cluster)
                    if ready is None:  # the probe budget was spent: as last seen, in turn
                        ready = cluster.cluster_id in self.board.answering
                        delay = min(max(delay, self.shared.probe_turn()), self.options.resync)
                    if not ready and not watch_membership and self.cannot_answer(cluster):
                        # Nothing to look at until its pods change, and its
                        # hypervisors ring when they do: a thousand clusters
                        # being created at once cost nothing meanwhile.
                        delay = self.options.resync
                    if cluster.vpn is not None:
                        await self.vpn.reconcile(cluster)
                    if ready and cluster.etcd_restore is not None:
                        await self.complete_restore(cluster)
                    if ready and self.memberships.record(cluster_id).settled:
                        delay = self.options.resync
                    if ready and not await self.apply_inside(cluster):
                        delay = min(delay, self.options.quick * 4)  # soon again
                    if ready and not watched:
                        watching.start_soon(self.in_cluster.watch, cluster_id, wakeup.ring)
                        watched = True
                except Exception:
                    log.exception("checking cluster %s", name)
                quiet = 0 if await wakeup.wait(delay) else quiet + 1
        finally:
            self.shared.forget_cluster(cluster_id)
            self.memberships.forget(cluster_id)
            with anyio.CancelScope(shield=True):
                await self.in_cluster.forget(cluster_id)

    async def apply_inside(self, cluster: Cluster) -> bool:
        """What workers need, applied in the cluster; told on the board.
        False when the next pass should come soon: it failed, or nodes are
        on their way in."""
        try:
            done, busy = await self.in_cluster.reconcile(cluster, await self.probe_tls(cluster))
        except KubeError as error:
            self.board.inside(cluster.cluster_id, Phase(FAILED, str(error)))
            return False
        self.board.inside(cluster.cluster_id, Phase(READY, done))
        return not busy

    async def check_ready(self, cluster: Cluster) -> bool | None:
        """Whether the cluster answers, told on the board; None when its
        probe was skipped because the fleet's budget of probes is spent."""
        endpoint = api_server_endpoint(cluster, self.fleet.state.hypervisors)
        if endpoint is None:
            probe = Phase(FAILED, "the cluster has no ingress")
        elif why_not := self.cannot_answer(cluster):
            probe = Phase(FAILED, why_not)  # not probed: its pods will ring when they change
        elif not await self.shared.spend_probe():
            return None
        else:
            why = await self.shared.probe(endpoint, cluster)
            probe = Phase(READY, "") if why is None else Phase(FAILED, why)
        note = self.memberships.record(cluster.cluster_id).note
        answered_before = cluster.cluster_id in self.board.answering
        phase = self.board.probed(cluster.name, cluster.cluster_id, cluster.components, probe, note)
        if probe.phase == READY and not answered_before:
            # What waits for the API (controller manager, scheduler) starts now.
            self.doorbells.ring_hypervisors({c.hypervisor for c in cluster.control_planes()})
        return phase.phase == READY

    def cannot_answer(self, cluster: Cluster) -> str:
        """Why a probe of the cluster could not succeed, as its hypervisors
        were last seen: its ingress, or every API server, not running. Empty
        when it could, or when it is not known."""
        ingress = cluster.ingress()
        if ingress is not None and self.board.seen_stopped(
            ingress.hypervisor, (cluster.cluster_id, ingress.name), "haproxy"
        ):
            return "not probed: its ingress is not running"
        planes = cluster.control_planes()
        if planes and all(
            self.board.seen_stopped(c.hypervisor, (cluster.cluster_id, c.name), "kube-apiserver")
            for c in planes
        ):
            return "not probed: no API server is running"
        return ""

    async def probe_tls(self, cluster: Cluster) -> ssl.SSLContext:
        return await self.shared.probe_tls(cluster)

    def etcd_endpoints(self, cluster: Cluster) -> list[tuple[str, Etcd]]:
        """Running etcd containers of the cluster's desired members, founding
        members first, by component: where etcdctl can run."""
        return [
            (component.name, Etcd(client, container, component.ports["etcd-client"]))
            for component, client, container in self.shared.running_etcds(cluster)
        ]

    def membership_to_watch(self, cluster: Cluster) -> bool:
        """Whether etcd's members may differ from the control planes: the
        cluster was scaled, a member replaced, or one crash-loops. Other
        clusters cost no etcdctl call."""
        if cluster.scaled or mb.replaced_members(cluster):
            return True
        return bool(self.memberships.exits.looping(cluster.cluster_id, time.monotonic()))

    async def complete_restore(self, cluster: Cluster) -> None:
        """A restore is complete once every member runs on the restored data
        (its revision is the backup's, bumped: not an old member's) and the
        API answers: recorded. (What oneinfra applies inside the cluster is
        applied at every pass, so what the backup lacks comes back.)"""
        restore = cluster.etcd_restore
        assert restore is not None
        target = restore.backup.revision + BUMP_REVISION
        for component in cluster.control_planes():
            running = self.shared.running_container(cluster, component, "etcd")
            if running is None:
                return
            try:
                if await Etcd(*running, component.ports["etcd-client"]).revision() < target:
                    return
            except (CRIError, ValueError):
                return  # not answering yet
        backup = restore.backup.backup_id
        await self.fleet.execute(cmd.CompleteEtcdRestore(cluster=cluster.name, backup_id=backup))
        log.info("etcd restored from backup %s (revision %d, bumped)", backup,
                 restore.backup.revision, extra={"cluster": cluster.name})  # fmt: skip

    async def replace_lost_member(self, cluster: Cluster, members: list[Member]) -> None:
        """A member that crash-loops while the others keep quorum: replaced
        (EtcdMemberReplaced, decided as the daemon), so that it is removed
        and added again as a learner on an empty data directory."""
        if cluster.etcd_restore is not None:
            return  # every member is being made anew
        looping = self.memberships.exits.looping(cluster.cluster_id, time.monotonic())
        lost = (
            mb.lost_member(cluster, self.fleet.state.hypervisors, members, looping)
            if looping
            else None
        )
        if lost is None:
            return
        component, member = lost
        where = {"cluster": cluster.name, "component": component.name,
                 "hypervisor": component.hypervisor}  # fmt: skip
        others = f"{len(members) - 1} other members kept quorum"
        if (cluster.cluster_id, component.name) in self.memberships.exits.lost:
            reason = f"its data directory has no member/ any more while {others}: its data is lost"
        else:
            reason = (
                f"its etcd exited {mb.EXITS_TO_REPLACE} times within {mb.EXIT_WINDOW:g} s while "
                f"{others}: its data is lost or corrupted"
            )
        try:
            await self.fleet.execute(cmd.ReplaceEtcdMember(
                cluster=cluster.name, component=component.name,
                member_id=member.member_id, reason=reason,
            ))  # fmt: skip
        except DomainError as error:
            log.warning("not replacing etcd member %x: %s", member.member_id, error, extra=where)
            return
        log.warning("replacing etcd member %x: %s", member.member_id, reason, extra=where)
        self.memberships.exits.forget(cluster.cluster_id, component.name)

    async def reconcile_membership(self, cluster: Cluster) -> None:
        """Bring etcd's members to the cluster's control planes, a step at a
        time, and admit the members that were added."""
        state = self.fleet.state
        record = self.memberships.records.setdefault(cluster.cluster_id, mb.ClusterMembers())
        desired = mb.desired_members(cluster, state.hypervisors)
        founding = {bp.member_name(cluster, c) for c in cluster.control_planes() if c.founding}
        answers: dict[str, str | None] = {c.name: None for c in cluster.control_planes()}
        for name, etcd in self.etcd_endpoints(cluster):
            try:
                members = await etcd.members()
                break
            except CRIError as error:
                answers[name] = str(error)
        else:
            record.members, record.settled = None, False
            record.note = mb.unanswered(answers)
            return
        changed = False
        record.note = ""
        replaced = mb.replaced_members(cluster)
        for _ in range(MEMBERSHIP_STEPS):
            step = mb.next_step(desired, founding, members, replaced)
            if step is None:
                break
            try:
                await apply_step(etcd, step)
            except CRIError as error:
                record.note = f"etcd: {error}"  # a learner not in sync yet: next pass
                break
            changed = True
            members = await etcd.members()
        record.members = members
        record.settled = mb.next_step(desired, founding, members, replaced) is None and not any(
            m.isLearner for m in members
        )
        if record.settled:
            await self.replace_lost_member(cluster, members)
        if not record.settled and not record.note:
            record.note = "etcd: a new member is catching up"
        admissions = self.memberships.admissions
        for component in cluster.control_planes():
            if component.founding:
                continue
            name, url = (
                bp.member_name(cluster, component),
                mb.peer_url(component, state.hypervisors),
            )
            key = (cluster.cluster_id, component.name)
            admitted = mb.joining_membership(members, name, url)
            if admitted is None:
                admissions.pop(key, None)
            elif key not in admissions:
                admissions[key] = admitted
                changed = True
        for key in [k for k in admissions if k[0] == cluster.cluster_id]:
            if key[1] not in cluster.components:
                del admissions[key]
        if changed:
            leaving = set(self.board.remaining(cluster.name, cluster.cluster_id))
            self.doorbells.ring_hypervisors(
                {c.hypervisor for c in cluster.control_planes()} | leaving
            )
