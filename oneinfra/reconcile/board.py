"""What the reconciler sees: the status of every hypervisor, component and
cluster, and the transitions worth recording.

The phases are decided by pure functions (phases.py) from observations; the
board holds the latest ones for queries and watchers, and hands out an
event whenever a phase changes (never for a steady fleet, never twice for
one transition, even across a restart: it starts from the phases last
recorded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar, cast

import anyio

from .. import render as bp
from ..model import events as ev
from ..model.kinds import DELETED, READY, PhaseName
from ..render.labels import LABEL_ROLE, WRITER_ROLE
from ..runtime.kube import NodeView
from ..runtime.wgctl import ServedPeer
from . import plan as pl
from .phases import UNOBSERVED, Phase, cluster_phase, component_phase
from .plan import Key

JOINED, LEFT, DECIDED = "joined", "left", "decided"  # what `recorded` holds for nodes and CSRs

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class HypervisorHealth:
    reachable: bool | None = None  # None: not tried yet
    error: str = ""
    observed: list[pl.ObservedPod] = field(default_factory=list)
    observed_position: int = -1  # the state's position when it was last observed


def locked(
    method: Callable[Concatenate[StatusBoard, P], R],
) -> Callable[Concatenate[StatusBoard, P], R]:
    """The board's changes hold its lock: the API's thread reads it whole."""

    def holding_lock(board: StatusBoard, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with board.lock:
            return method(board, *args, **kwargs)

    return holding_lock


@dataclass
class ClusterStatus:
    name: str
    cluster_id: str
    phase: Phase = UNOBSERVED
    components: dict[str, Phase] = field(default_factory=dict)
    hypervisors: dict[str, str] = field(default_factory=dict)  # component -> hypervisor
    probe: Phase | None = None
    etcd: str = ""  # what its etcd membership waits for, if anything
    inside: Phase | None = None  # what was applied inside the cluster, or why not
    nodes: list[NodeView] = field(default_factory=list)  # as last observed inside
    nodes_seen: bool = False  # whether `nodes` was observed at all since the daemon started
    vpn_peers: dict[str, ServedPeer] | None = None  # by public key, as its VPN server said last
    # By public key: since when the server's count of bytes from the peer
    # has stood still (its keepalives move it every 25 s while it is up).
    vpn_heard: dict[str, tuple[int, float]] = field(default_factory=dict)
    since: float = 0.0  # when the phase last changed (Unix time)


def heard(
    before: dict[str, tuple[int, float]], served: list[ServedPeer], now: float
) -> dict[str, tuple[int, float]]:
    """Each peer's bytes received and since when they have been that many:
    a count that moved (or a peer first seen, or a server restarted) starts
    again at `now`."""
    return {
        p.public_key: kept
        if (kept := before.get(p.public_key)) is not None and kept[0] == p.received
        else (p.received, now)
        for p in served
    }


LEADER_SAID = "as the leading daemon last recorded"


class StatusBoard:
    """What the reconciler last saw, for status and watchers. Changed on the
    main loop; read by the API's thread, under `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.hypervisors: dict[str, HypervisorHealth] = {}
        self.clusters: dict[str, ClusterStatus] = {}  # by cluster id
        self.recorded: dict[tuple[str, ...], str] = {}  # subject -> phase last recorded
        self.outbox: list[ev.Event] = []  # transitions not yet appended
        self.answering: set[str] = set()  # ids of the clusters whose API answered last
        self.joins: dict[tuple[str, str], ev.NodeJoined] = {}  # (cluster id, node) -> its join
        self._changed = anyio.Event()

    # -- watchers -------------------------------------------------------------------

    async def changed(self) -> None:
        """Returns at the next change of anything on the board."""
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- the recorded history ---------------------------------------------------------

    def load(self, events: Iterable[ev.Event]) -> None:
        """The phases last recorded, so that a restart records no repeat."""
        for event in events:
            match event:
                case ev.ClusterStatusChanged():
                    self.recorded[("cluster", event.cluster_id)] = event.phase
                case ev.ComponentStatusChanged():
                    self.recorded[("component", event.cluster_id, event.component)] = event.phase
                case ev.HypervisorStatusChanged():
                    self.recorded[("hypervisor", event.name)] = str(event.reachable)
                case ev.NodeJoined():
                    self.recorded[("node", event.cluster_id, event.node)] = JOINED
                    self.joins[(event.cluster_id, event.node)] = event
                case ev.NodeLeft():
                    self.recorded[("node", event.cluster_id, event.node)] = LEFT
                    self.joins.pop((event.cluster_id, event.node), None)
                case ev.ServingCertificateApproved() | ev.ServingCertificateRefused():
                    self.recorded[("csr", event.cluster_id, event.csr)] = DECIDED
                case ev.NodeTrustRotated():
                    self.recorded[("trust", event.cluster_id, event.node)] = event.ca

    @locked
    def as_recorded(self, event: ev.Event, at: float) -> None:
        """A transition another daemon recorded (at `at`, Unix time), folded
        in: a daemon standing by shows the fleet as its leader last saw it."""
        self.load([event])
        match event:
            case ev.ClusterStatusChanged() if event.phase == DELETED:
                self.clusters.pop(event.cluster_id, None)
                self.answering.discard(event.cluster_id)
            case ev.ClusterStatusChanged():
                status = self.cluster(event.cluster, event.cluster_id)
                status.phase, status.since = Phase(event.phase, event.reason), at
                answers = event.phase == READY
                status.probe = Phase(READY) if answers else Phase(event.phase, LEADER_SAID)
                (self.answering.add if answers else self.answering.discard)(event.cluster_id)
            case ev.ComponentStatusChanged():
                status = self.cluster(event.cluster, event.cluster_id)
                status.components[event.component] = Phase(event.phase, event.reason)
                status.hypervisors[event.component] = event.hypervisor
            case ev.HypervisorStatusChanged():
                health = self.hypervisors.setdefault(event.name, HypervisorHealth())
                health.reachable, health.error = event.reachable, event.error
        self._notify()

    def _record(self, subject: tuple[str, ...], phase: str, event: ev.Event) -> None:
        if self.recorded.get(subject) != phase:
            self.recorded[subject] = phase
            self.outbox.append(event)

    def take_outbox(self) -> list[ev.Event]:
        events, self.outbox = self.outbox, []
        return events

    # -- observations -------------------------------------------------------------------

    @locked
    def hypervisor_observed(self, name: str, observed: list[pl.ObservedPod], position: int) -> None:
        health = self.hypervisors.setdefault(name, HypervisorHealth())
        health.reachable, health.error = True, ""
        health.observed, health.observed_position = observed, position
        self._record(("hypervisor", name), "True", ev.HypervisorStatusChanged(name, True, ""))
        self._notify()

    @locked
    def seen_stopped(self, hypervisor: str, key: Key, role: str) -> bool:
        """Whether the hypervisor's last observation, made while it answered,
        shows the pod `key` without its `role` container running. False
        when nothing is known: not observed yet, or unreachable since."""
        health = self.hypervisors.get(hypervisor)
        if health is None or health.reachable is not True:
            return False
        return not any(
            c.role == role and c.running
            for pod in health.observed
            if pod.ready and pod.key == key
            for c in pod.containers
        )

    @locked
    def hypervisor_unreachable(self, name: str, error: str) -> None:
        health = self.hypervisors.setdefault(name, HypervisorHealth())
        health.reachable, health.error = False, error
        self._record(("hypervisor", name), "False", ev.HypervisorStatusChanged(name, False, error))
        self._notify()

    @locked
    def forget_hypervisor(self, name: str) -> None:
        self.hypervisors.pop(name, None)
        self.recorded.pop(("hypervisor", name), None)

    def cluster(self, name: str, cluster_id: str) -> ClusterStatus:
        status = self.clusters.get(cluster_id)
        if status is None:
            status = self.clusters[cluster_id] = ClusterStatus(name, cluster_id)
            recorded = self.recorded.get(("cluster", cluster_id))
            if recorded:
                last = cast(PhaseName, recorded)
                status.phase = Phase(last, "as last recorded; not observed since")
        return status

    @locked
    def components_observed(
        self,
        hypervisor: str,
        desired: list[bp.PodSpec],
        failures: Mapping[Key, str],
        api_ready: Container[str] = frozenset(),
    ) -> set[str]:
        """The phases of the components a hypervisor should run; the ids of
        the clusters where one of them changed."""
        health = self.hypervisors.get(hypervisor, HypervisorHealth())
        pods = {
            pod.key: pod
            for pod in health.observed
            if pod.ready and pod.labels.get(LABEL_ROLE) != WRITER_ROLE
        }
        changed: set[str] = set()
        for spec in desired:
            cluster_id, component = pl.key_of(spec)
            phase = component_phase(
                spec, pods.get((cluster_id, component)), failures.get((cluster_id, component)),
                health.reachable, cluster_id in api_ready,
            )  # fmt: skip
            status = self.cluster(spec.labels[bp.LABEL_CLUSTER], cluster_id)
            status.hypervisors[component] = hypervisor
            if status.components.get(component) != phase:
                changed.add(cluster_id)
            self.set_component(status, component, phase)
        self._notify()
        return changed

    def set_component(self, status: ClusterStatus, component: str, phase: Phase) -> None:
        status.components[component] = phase
        self._record(
            ("component", status.cluster_id, component),
            phase.phase,
            ev.ComponentStatusChanged(
                cluster=status.name, cluster_id=status.cluster_id, component=component,
                hypervisor=status.hypervisors.get(component, ""), phase=phase.phase,
                reason=phase.reason,
            ),
        )  # fmt: skip

    @locked
    def probed(
        self,
        name: str,
        cluster_id: str,
        components: Iterable[str],
        probe: Phase,
        etcd: str = "",
    ) -> Phase:
        """The cluster's phase after a probe of its API server."""
        status = self.cluster(name, cluster_id)
        status.etcd = etcd
        status.probe = probe
        if probe.phase == READY:
            self.answering.add(cluster_id)
        else:
            self.answering.discard(cluster_id)
        before = status.phase.phase
        wanted = set(components)
        for gone in set(status.components) - wanted:
            del status.components[gone]
        if not wanted <= set(status.components):
            # Some hypervisor has not been seen since the daemon started (or
            # since the component was placed): no verdict yet, and nothing
            # recorded, so that a restart does not tell a transition again.
            self._notify()
            return status.phase
        known = {c: status.components[c] for c in wanted}
        status.phase = cluster_phase(known, probe, etcd)
        if status.phase.phase != before or not status.since:
            status.since = time.time()
        self._record(
            ("cluster", cluster_id),
            status.phase.phase,
            ev.ClusterStatusChanged(name, cluster_id, status.phase.phase, status.phase.reason),
        )
        self._notify()
        return status.phase

    @locked
    def inside(self, cluster_id: str, outcome: Phase) -> None:
        """What the last pass applied inside the cluster (READY) or why it
        could not (FAILED)."""
        status = self.clusters.get(cluster_id)
        if status is not None and status.inside != outcome:
            status.inside = outcome
            self._notify()

    @locked
    def nodes_observed(
        self, name: str, cluster_id: str, nodes: list[NodeView], tokens: Mapping[str, str], at: str
    ) -> None:
        """The cluster's Nodes: a new one recorded as joined (by the token
        its client CSR names, if still there), one gone as left."""
        status = self.cluster(name, cluster_id)
        status.nodes, status.nodes_seen = nodes, True
        seen = {n.name for n in nodes}
        for node in nodes:
            joined = ev.NodeJoined(cluster=name, cluster_id=cluster_id, node=node.name,
                                   address=node.address, kubelet_version=node.version,
                                   token_id=tokens.get(node.name, ""), at=at)  # fmt: skip
            if self.recorded.get(("node", cluster_id, node.name)) != JOINED:
                self.joins[(cluster_id, node.name)] = joined
            self._record(("node", cluster_id, node.name), JOINED, joined)
        for subject, recorded in list(self.recorded.items()):
            if (
                subject[:2] == ("node", cluster_id)
                and recorded == JOINED
                and subject[2] not in seen
            ):
                self.joins.pop((cluster_id, subject[2]), None)
                self._record(subject, LEFT, ev.NodeLeft(name, cluster_id, subject[2], at))
        self._notify()

    @locked
    def vpn_observed(
        self, name: str, cluster_id: str, served: list[ServedPeer], now: float
    ) -> None:
        status = self.cluster(name, cluster_id)
        status.vpn_peers = {p.public_key: p for p in served}
        status.vpn_heard = heard(status.vpn_heard, served, now)
        self._notify()

    @locked
    def csr_decided(
        self, event: ev.ServingCertificateApproved | ev.ServingCertificateRefused
    ) -> bool:
        """Whether this CSR's verdict is news (recorded now) or was told before."""
        subject = ("csr", event.cluster_id, event.csr)
        if self.recorded.get(subject) == DECIDED:
            return False
        self._record(subject, DECIDED, event)
        return True

    @locked
    def trust_rotated(self, event: ev.NodeTrustRotated) -> None:
        """A worker holds a rotation's new CAs (recorded once per CA)."""
        self._record(("trust", event.cluster_id, event.node), event.ca, event)

    @locked
    def untrusting_nodes(self, name: str, cluster_id: str, ca: str) -> list[str] | None:
        """The cluster's nodes not known to hold the CA `ca` (its public-key
        hash) yet; None when its nodes were not observed since the start."""
        status = self.clusters.get(cluster_id)
        if status is None or not status.nodes_seen:
            return None
        return sorted(
            n.name for n in status.nodes if self.recorded.get(("trust", cluster_id, n.name)) != ca
        )

    @locked
    def cluster_deleted(self, name: str, cluster_id: str) -> None:
        self.clusters.pop(cluster_id, None)
        self.answering.discard(cluster_id)
        self._record(
            ("cluster", cluster_id),
            DELETED,
            ev.ClusterStatusChanged(name, cluster_id, DELETED, "deleted from the fleet"),
        )
        # Its components', nodes' and CSRs' records; its own stays, as deleted.
        for subject in [s for s in self.recorded if s[1:2] == (cluster_id,) and s[0] != "cluster"]:
            del self.recorded[subject]
        for join in [j for j in self.joins if j[0] == cluster_id]:
            del self.joins[join]
        self._notify()

    def remaining(self, cluster_name: str, cluster_id: str | None = None) -> dict[str, list[str]]:
        """hypervisor -> components of a cluster it still runs, as last observed."""
        found: dict[str, list[str]] = {}
        for name, health in self.hypervisors.items():
            for pod in health.observed:
                if pod.labels.get(bp.LABEL_CLUSTER) != cluster_name:
                    continue
                if cluster_id is not None and pod.labels.get(bp.LABEL_CLUSTER_ID) != cluster_id:
                    continue
                found.setdefault(name, []).append(pod.labels.get(bp.LABEL_COMPONENT, "?"))
        return found
