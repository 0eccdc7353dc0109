"""One worker per hypervisor: observe, plan, act (hypervisor_pass.py), and
tell the board what it saw. Workers are independent, so a slow or dead
hypervisor delays nobody else; a failing one is retried with exponential
backoff, and its return is a pass like any other, which wakes the clusters
it holds."""

from __future__ import annotations

import logging
from collections.abc import Container

from .. import render as bp
from ..errors import Unreachable
from ..runtime.cri import HypervisorClient
from . import plan as pl
from .hypervisor_pass import reconcile
from .pods import PodCache, desired_pods
from .shared import Shared
from .workqueue import BackOff, Backoff, Requeue, Result, Wakeup

log = logging.getLogger("oneinfra.reconciler")


class HypervisorLoop:
    def __init__(self, shared: Shared) -> None:
        self.fleet = shared.fleet
        self.options = shared.options
        self.board = shared.board
        self.doorbells = shared.doorbells
        self.connections = shared.connections
        self.memberships = shared.memberships
        self.events = shared.events
        self.pods = PodCache()

    async def run(self, name: str, wakeup: Wakeup) -> None:
        """Passes over the hypervisor for as long as it is in the fleet."""
        backoff = Backoff(self.options.quick, self.options.max_backoff)
        try:
            while (hypervisor := self.fleet.state.hypervisors.get(name)) is not None:
                result = await self.reconcile(name, self.connections.client(hypervisor))
                await wakeup.wait(backoff.delay(result))
        finally:
            self.connections.close(name)
            self.board.forget_hypervisor(name)

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
            )
        except (Unreachable, TimeoutError) as error:
            self.board.hypervisor_unreachable(name, str(error) or "timed out")
            self.board.components_observed(name, desired, {})
            return BackOff()
        except Exception as error:  # a bug or a race with a change: retried, and told
            log.exception("reconciling hypervisor %s", name)
            self.board.components_observed(name, desired, {})
            self.board.hypervisors[name].error = f"{type(error).__name__}: {error}"
            return BackOff()
        self.board.hypervisor_observed(name, result.observed, position)
        self.board.components_observed(name, desired, result.failures, api_ready)
        if came_back:  # every cluster it holds may have news
            self.doorbells.ring_clusters(
                {pl.key_of(p)[0] for p in desired} | {p.key[0] for p in result.observed}
            )
        elif result.touched:  # only the clusters whose pods changed
            self.doorbells.ring_clusters({cluster_id for cluster_id, _ in result.touched})
        if result.failures:
            return BackOff()
        if result.actions or not settled(desired, result.observed, api_ready):
            return Requeue(self.options.quick)
        return Requeue(self.options.resync)

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
