"""Phases, pure: a component's from its blueprint and what its hypervisor
reports, a cluster's from its components and the probe of its API server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import render as bp
from ..model.kinds import DEGRADED, FAILED, PENDING, READY, RUNNING, PhaseName
from . import plan as pl


@dataclass(frozen=True)
class Phase:
    phase: PhaseName
    reason: str = ""


UNOBSERVED = Phase(PENDING, "not observed yet")


def component_phase(
    pod: bp.PodSpec,
    observed: pl.ObservedPod | None,
    failure: str | None,
    reachable: bool | None,
    api_ready: bool = True,
) -> Phase:
    """One component, from its blueprint and what its hypervisor reports."""
    if reachable is False:
        return Phase(FAILED, f"hypervisor {pod.hypervisor} is unreachable")
    if failure:
        return Phase(FAILED, failure)
    if (
        observed is None
        or observed.labels.get(bp.LABEL_SPEC_HASH) != pod.labels[bp.LABEL_SPEC_HASH]
    ):
        return Phase(PENDING, pod.blocked or "being created")
    roles = {c.name for c in pl.startable(pod, api_ready)}
    running = {c.role for c in observed.containers if c.running}
    missing = sorted(roles - running)
    if missing:
        return Phase(DEGRADED, f"not running: {', '.join(missing)}")
    waiting = sorted({c.name for c in pod.containers} - roles - running)
    if waiting:
        return Phase(PENDING, f"{', '.join(waiting)} will start once the API answers")
    return Phase(RUNNING, "all containers running")


def cluster_phase(components: Mapping[str, Phase], probe: Phase | None, etcd: str = "") -> Phase:
    """A cluster is ready when its API server answers /readyz through the
    ingress (`probe`) and every component runs; degraded when it answers
    with a component down; failed when it does not answer and a component
    failed; running while it starts."""
    down = {n: p for n, p in components.items() if p.phase != RUNNING}
    answers = probe is not None and probe.phase == READY
    if answers and not down:
        if etcd:  # scaling: a member joins or leaves
            return Phase(RUNNING, etcd)
        return Phase(READY, "the API server answers /readyz through the ingress")
    first = next(iter(sorted(down.items())), None)
    detail = f"{first[0]}: {first[1].reason}" if first else ""
    if answers:
        if any(p.phase in (DEGRADED, FAILED) for p in down.values()):
            return Phase(DEGRADED, detail)
        return Phase(RUNNING, f"starting: {detail}")  # what waited for the API starts now
    if any(p.phase == FAILED for p in down.values()):
        failed = next((n, p) for n, p in sorted(down.items()) if p.phase == FAILED)
        return Phase(FAILED, f"{failed[0]}: {failed[1].reason}")
    if not down:
        why = probe.reason if probe else "not probed yet"
        return Phase(RUNNING, f"waiting for /readyz through the ingress: {why}")
    return Phase(PENDING, detail)
