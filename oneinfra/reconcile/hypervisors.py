"""One worker per hypervisor: observe, plan, act (hypervisor_pass.py), and
tell the board what it saw. Workers are independent, so a slow or dead
hypervisor delays nobody else; a failing one is retried with exponential
backoff, and its return is a pass like any other, which wakes the clusters
it holds."""

from __future__ import annotations

import logging
import time
from collections.abc import Container

from .. import render as bp
from ..errors import Unreachable
from ..model.kinds import CONTROL_PLANE
from ..model.state import Cluster, Component, host_port
from ..runtime.cri import HypervisorClient
from . import plan as pl
from .hypervisor_pass import PassResult, Reloaded, describe, group_by_pod, reconcile
from .plan import Key
from .pods import PodCache, desired_pods
from .shared import Shared
from .workqueue import BackOff, Backoff, Requeue, Result, Wakeup

log = logging.getLogger("oneinfra.reconciler")

HELD_RETRY = 2.0  # seconds between passes of a hypervisor whose change waits its turn


class HypervisorLoop:
    def __init__(self, shared: Shared) -> None:
        self.fleet = shared.fleet
        self.options = shared.options
        self.board = shared.board
        self.doorbells = shared.doorbells
        self.connections = shared.connections
        self.memberships = shared.memberships
        self.events = shared.events
        self.shared = shared
        self.pods = PodCache()
        # By hypervisor: the files each container was reloaded with, by id.
        self.reloaded: dict[str, Reloaded] = {}
        # By hypervisor: what could not be done to each pod in its last
        # pass, said again only when it changes (a pod that cannot start
        # is retried with backoff, for as long as it takes).
        self.said: dict[str, dict[Key, str]] = {}

    async def run(self, name: str, wakeup: Wakeup) -> None:
        """Passes over the hypervisor for as long as it is in the fleet."""
        backoff = Backoff(self.options.quick, self.options.max_backoff)
        try:
            while (hypervisor := self.fleet.state.hypervisors.get(name)) is not None:
                began = time.perf_counter()
                result = await self.reconcile(name, self.connections.client(hypervisor))
                outcome = "failed" if isinstance(result, BackOff) else "ok"
                self.options.observe_pass(name, outcome, time.perf_counter() - began)
                await wakeup.wait(backoff.delay(result))
        finally:
            self.connections.close(name)
            self.board.forget_hypervisor(name)
            self.reloaded.pop(name, None)
            self.said.pop(name, None)

    async def reconcile(self, name: str, client: HypervisorClient) -> Result:
        """One pass, and when the next should come."""
        state = self.fleet.state
        position = state.position
        desired: list[bp.PodSpec] = []
        was_down = self.board.hypervisors.get(name, None)
        came_back = was_down is not None and was_down.reachable is False
        try:
            desired = await desired_pods(
                state, name, self.events, self.fleet.keys.get, self.memberships.admissions,
                self.options.fleet, self.pods,
            )  # fmt: skip
            api_ready = self.board.answering
            result = await reconcile(
                client,
                desired,
                self.protected,
                selector=bp.managed(self.options.fleet),
                api_ready=api_ready,
                hold=self.hold,
                reloaded=self.reloaded.setdefault(name, {}),
            )
            rolled = await self.roll_on(desired, result)
        except (Unreachable, TimeoutError) as error:
            self.board.hypervisor_unreachable(name, str(error) or "timed out")
            self.doorbells.ring_clusters(self.board.components_observed(name, desired, {}))
            return BackOff()
        except Exception as error:  # a bug or a race with a change: retried, and told
            log.exception("reconciling hypervisor %s", name)
            self.board.components_observed(name, desired, {})
            self.board.hypervisors[name].error = f"{type(error).__name__}: {error}"
            return BackOff()
        self.say_what_was_done(name, result)
        self.note_etcd_exits(result.observed)
        for key in result.lost:
            self.memberships.exits.data_lost(key, time.monotonic())
        self.board.hypervisor_observed(name, result.observed, position)
        changed = self.board.components_observed(name, desired, result.failures, api_ready)
        if came_back:  # every cluster it holds may have news
            self.doorbells.ring_clusters(
                {pl.key_of(p)[0] for p in desired} | {p.key[0] for p in result.observed}
            )
        else:  # the clusters whose pods were acted upon, or seen to change
            self.doorbells.ring_clusters(changed | {cluster_id for cluster_id, _ in result.touched})
        if result.failures:
            return BackOff()
        if result.actions or not settled(desired, result.observed, api_ready) or not rolled:
            return Requeue(self.options.quick)
        if result.held:  # the replica rolling now rings when it is done; this is in case
            return Requeue(max(self.options.quick, HELD_RETRY))
        return Requeue(self.options.resync)

    def say_what_was_done(self, name: str, result: PassResult) -> None:
        """A log line for each pod acted upon: what was done, or why not,
        with the cluster, hypervisor and component as fields."""
        said, self.said[name] = self.said.get(name, {}), dict(result.failures)
        if not result.actions:
            return
        # Cluster names from the pods' own labels: what the hypervisor holds,
        # not the fleet, and a deleted cluster's pods still named.
        labelled = [p.labels for p in result.observed] + [
            a.pod.labels for a in result.actions if isinstance(a, pl.CreatePod)
        ]
        names = {labels[bp.LABEL_CLUSTER_ID]: labels[bp.LABEL_CLUSTER] for labels in labelled
                 if bp.LABEL_CLUSTER_ID in labels and bp.LABEL_CLUSTER in labels}  # fmt: skip
        for key, actions in group_by_pod(result.actions, result.observed).items():
            where = {"cluster": names.get(key[0], key[0]), "hypervisor": name, "component": key[1]}
            if key in result.failures:
                if said.get(key) != result.failures[key]:
                    log.warning("%s: %s", key[1], result.failures[key], extra=where)
                continue
            for action in actions:
                log.info("%s: %s", key[1], describe(action), extra=where)

    def note_etcd_exits(self, observed: list[pl.ObservedPod]) -> None:
        """etcd containers seen exited, for the cluster workers: one that
        keeps exiting has lost its data (membership.lost_member)."""
        now = time.monotonic()
        for pod in observed:
            for container in pod.containers:
                if container.role == "etcd" and not container.running:
                    self.memberships.exits.saw(pod.key, container.id, now)

    def hold(self, disrupted: set[Key]) -> set[Key]:
        """Of the replicas a change would restart, those whose turn has not
        come (rollout.py)."""
        by_id = {c.cluster_id: c for c in self.fleet.state.clusters.values()}
        held = set()
        for key in disrupted:
            cluster = by_id.get(key[0])
            component = cluster.components.get(key[1]) if cluster else None
            replicas = 1  # the ingress, the VPN server, what is no longer desired
            if cluster is not None and component is not None and component.role == CONTROL_PLANE:
                replicas = len(cluster.control_planes())
            if cluster is not None and cluster.etcd_restore is not None:
                # Not rolled: the restored members are a new etcd cluster, with
                # a quorum only once most of them run. All of them at once.
                self.shared.rollouts.forget(key[0])
                continue
            if not self.shared.rollouts.admit(key, replicas):
                held.add(key)
        return held

    async def roll_on(self, desired: list[bp.PodSpec], result: PassResult) -> bool:
        """A replica holding its cluster's slot, seen running its new
        containers here: its API server asked directly, and the slot given
        up once it answers (the cluster's other replicas rung). Whether no
        slot is held here any more."""
        done = True
        observed = {p.key: p for p in result.observed}
        by_id = {c.cluster_id: c for c in self.fleet.state.clusters.values()}
        for spec in desired:
            key = pl.key_of(spec)
            if self.shared.rollouts.holder(key[0]) != key[1]:
                continue
            cluster = by_id.get(key[0])
            pod = observed.get(key)
            if cluster is None or key[1] not in cluster.components:
                self.shared.rollouts.forget(key[0], key[1])
                continue
            if key in result.touched or pod is None or not settled([spec], [pod], {key[0]}):
                done = False
                continue
            answers = await self.replica_answers(cluster, cluster.components[key[1]])
            if self.shared.rollouts.ready(key, answers):
                self.doorbells.ring_hypervisors({c.hypervisor for c in cluster.control_planes()})
            else:
                done = False
        return done

    async def replica_answers(self, cluster: Cluster, component: Component) -> bool:
        host = self.fleet.state.hypervisors.get(component.hypervisor)
        if host is None:
            return False
        endpoint = f"https://{host_port(host.ip_address, component.ports['apiserver'])}"
        try:
            why = await self.shared.probe(endpoint, cluster)  # a rollout's step: not budgeted
        except Exception as error:  # a probe that fails says no, nothing more
            log.debug("probing %s of %s: %r", component.name, cluster.name, error)
            return False
        return why is None

    def protected(self, observed: list[pl.ObservedPod]) -> Container[tuple[str, str]]:
        keep = self.memberships.protected(self.fleet.state, observed)
        self.doorbells.ring_clusters({cluster_id for cluster_id, _ in keep})
        return keep


def settled(
    desired: list[bp.PodSpec], observed: list[pl.ObservedPod], api_ready: Container[str]
) -> bool:
    """Every desired pod runs all the containers it can run now (those that
    wait for the API of a cluster that does not answer are not counted)."""
    running = {
        pod.key: {c.role for c in pod.containers if c.running} for pod in observed if pod.ready
    }
    return all(
        {c.name for c in pl.startable(spec, pl.key_of(spec)[0] in api_ready)}
        <= running.get(pl.key_of(spec), set())
        for spec in desired
    )
