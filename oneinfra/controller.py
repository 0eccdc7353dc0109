"""The reconciler's loop, in the daemon: keeps every hypervisor running what
the desired state says, and tells how far each cluster is.

- One worker per hypervisor: observe, plan, act (reconciler.py). Workers are
  independent, so a slow or dead hypervisor delays nobody else; a failing
  one is retried with exponential backoff, and its return is a pass like
  any other, which wakes the clusters it holds.
- One worker per cluster: its etcd membership while it scales
  (membership.py) and its readiness, `/readyz` through the ingress
  (probe.py).
- Passes are triggered by new events of the fleet (the store's
  subscription), by a periodic resync, and sooner while something is under
  way (containers starting, a learner catching up).
- Status transitions go to the log's status stream, written by one task.

Level-triggered throughout: every decision is made from what CRI and etcd
report now, so a daemon killed at any moment converges when it restarts.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from eventstore import ANY, NewEvent

from . import blueprints as bp
from . import events as ev
from . import membership as mb
from . import plan as pl
from .cri import DEFAULT_TIMEOUT, CRIError, HypervisorClient, TLSFiles, Unreachable
from .desired import PodCache, desired_pods
from .logreader import EventCache
from .probe import client_tls, memory_file, readyz
from .reconciler import Key, reconcile
from .secrets import unseal
from .service import FleetService, Metadata
from .state import (
    CONTROL_PLANE,
    Cluster,
    FleetState,
    Hypervisor,
    api_server_endpoint,
    etcd_member_name,
)
from .status import FAILED, READY, Phase, StatusBoard

log = logging.getLogger("oneinfra.reconciler")

RESYNC = 30.0  # seconds between passes of a converged hypervisor or a ready cluster
QUICK = 0.25  # seconds between passes while something is under way
MAX_BACKOFF = 60.0  # seconds, for a hypervisor that keeps failing
MEMBERSHIP_STEPS = 4  # etcd changes per cluster pass, at most
QUICK_PROBES = 60  # quick probes of a cluster after a change (15 s at 0.25 s)
BACKOFF = 1.5  # then each wait this much longer, up to the resync
EVENT_CACHE = 8192  # decoded events holding PKI, by position


class Wakeup:
    """A worker's doorbell: rung by triggers, or it times out."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True if rung, False if the time ran out."""
        rung = False
        with anyio.move_on_after(seconds):
            await self._event.wait()
            rung = True
        self._event = anyio.Event()
        return rung


Probe = Callable[[str, ssl.SSLContext], Awaitable[str | None]]  # endpoint, TLS -> why not ready


@dataclass
class Options:
    resync: float = RESYNC
    quick: float = QUICK
    max_backoff: float = MAX_BACKOFF
    cri_timeout: float = DEFAULT_TIMEOUT
    probe: Probe = readyz
    fleet: str = ""  # labels this daemon's pods, so that hypervisors may be shared


@dataclass
class ClusterMembers:
    members: list[mb.Member] | None = None  # as etcd last listed them; None: unknown
    settled: bool = True  # nothing left to add, promote or remove
    note: str = ""  # what the membership waits for, or why it is stuck


@dataclass
class Controller:
    service: FleetService
    options: Options = field(default_factory=Options)
    board: StatusBoard = field(default_factory=StatusBoard)

    def __post_init__(self) -> None:
        self.events = EventCache(self.service.store, size=EVENT_CACHE)
        self.pods = PodCache()
        self.admissions: dict[Key, bp.EtcdMembership] = {}
        self.etcd: dict[str, ClusterMembers] = {}  # by cluster id
        self.clients: dict[str, HypervisorClient] = {}
        self._hypervisors: dict[str, Wakeup] = {}
        self._clusters: dict[str, Wakeup] = {}  # by cluster id
        self._tls: dict[str, ssl.SSLContext] = {}  # probe contexts, by cluster id
        self._tasks: TaskGroup | None = None
        self._cluster_ids: dict[str, str] = {}  # name -> id, of the clusters with a worker

    # -- running ----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.board.load(await self.recorded_status())
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._follow_log)
            tasks.start_soon(self._write_status)
            self.supervise()
            task_status.started()

    def stop(self) -> None:
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    async def recorded_status(self) -> list[ev.Event]:
        return [
            ev.decode(r.type, r.schema_version, r.data)
            async for r in self.service.store.read_stream(ev.STATUS_STREAM)
        ]

    def supervise(self, concerned: Concerned | None = None) -> None:
        """A worker for each hypervisor and cluster concerned by a change
        (None: all of the state's), and a pass for each of them."""
        assert self._tasks is not None
        state = self.service.state
        hypervisors = set(state.hypervisors) if concerned is None else concerned.hypervisors
        clusters = set(state.clusters) if concerned is None else concerned.clusters
        if concerned is not None and concerned.everywhere:
            hypervisors = set(state.hypervisors)
        for name in hypervisors:
            if name not in self._hypervisors and name in state.hypervisors:
                self._hypervisors[name] = Wakeup()
                self._tasks.start_soon(self._hypervisor_worker, name)
        self.ring_hypervisors(hypervisors)
        for name in clusters:
            cluster = state.clusters.get(name)
            if cluster is not None and cluster.cluster_id not in self._clusters:
                self._clusters[cluster.cluster_id] = Wakeup()
                self._cluster_ids[name] = cluster.cluster_id
                self._tasks.start_soon(self._cluster_worker, cluster.name, cluster.cluster_id)
        self.ring_clusters({self._cluster_ids[n] for n in clusters if n in self._cluster_ids})

    async def _follow_log(self) -> None:
        async for record in self.service.store.subscribe(self.service.state.position + 1):
            if record.stream_id == ev.FLEET_STREAM:
                await self.service.wait_position(record.position)
                event = ev.decode(record.type, record.schema_version, record.data)
                concerned = concerned_by(event, self.service.state)
                if isinstance(event, ev.ComponentRemoved):  # where its pod still runs
                    concerned.hypervisors |= set(self.board.remaining(event.cluster))
                self.supervise(concerned)

    async def _write_status(self) -> None:
        while True:
            while events := self.board.take_outbox():
                batch = str(uuid.uuid4())  # what the reconciler saw together
                metadata = msgspec.json.encode(
                    Metadata(actor=None, command="reconciler", correlation_id=batch,
                             causation_id=batch)
                )  # fmt: skip
                records = []
                for event in events:
                    kind, version, data = ev.encode(event)
                    records.append(
                        NewEvent(type=kind, data=data, metadata=metadata, schema_version=version)
                    )
                try:
                    await self.service.store.append(ev.STATUS_STREAM, records, ANY)
                except Exception:
                    log.exception("recording %d status transitions failed", len(records))
                    self.board.outbox[:0] = events
                    await anyio.sleep(self.options.quick)
            await self.board.changed()

    # -- hypervisors --------------------------------------------------------------------

    def connect(self, hypervisor: Hypervisor) -> HypervisorClient:
        timeout = self.options.cri_timeout
        if hypervisor.tls is None:
            return HypervisorClient(hypervisor.endpoint, timeout=timeout)
        tls = hypervisor.tls
        key = unseal(tls.client_key, self.service.keys.get(tls.client_key.key_id))
        with memory_file(tls.client_certificate.encode()) as cert, memory_file(key) as key_file:
            # The chain is loaded as the channel is made; the memory files may go then.
            return HypervisorClient(
                hypervisor.endpoint,
                tls=TLSFiles(tls.ca_certificate, cert, key_file),
                timeout=timeout,
            )

    async def _hypervisor_worker(self, name: str) -> None:
        wakeup = self._hypervisors[name]
        backoff = 0.0
        client: HypervisorClient | None = None
        try:
            while (hypervisor := self.service.state.hypervisors.get(name)) is not None:
                if client is None or client.endpoint != hypervisor.endpoint:
                    if client is not None:
                        client.close()
                    client = self.clients[name] = self.connect(hypervisor)
                delay = await self._hypervisor_pass(name, client)
                if delay is None:
                    backoff = min(max(self.options.quick, backoff * 2), self.options.max_backoff)
                    delay = backoff
                else:
                    backoff = 0.0
                await wakeup.wait(delay)
        finally:
            if client is not None:
                client.close()
            self.clients.pop(name, None)
            self._hypervisors.pop(name, None)
            self.board.forget_hypervisor(name)

    async def _hypervisor_pass(self, name: str, client: HypervisorClient) -> float | None:
        """One pass; the delay before the next, or None to back off."""
        state = self.service.state
        position = state.position
        desired: list[bp.PodSpec] = []
        was_down = self.board.hypervisors.get(name, None)
        came_back = was_down is not None and was_down.reachable is False
        try:
            desired = await desired_pods(
                state, name, self.events, self.service.keys.get, self.admissions,
                self.options.fleet, self.pods,
            )  # fmt: skip
            api_ready = self.api_ready()
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
            return None
        except Exception as error:  # a bug or a race with a change: retried, and told
            log.exception("reconciling hypervisor %s", name)
            self.board.components_observed(name, desired, {})
            self.board.hypervisors[name].error = f"{type(error).__name__}: {error}"
            return None
        self.board.hypervisor_observed(name, result.observed, position)
        self.board.components_observed(name, desired, result.failures, api_ready)
        if came_back:  # every cluster it holds may have news
            self.ring_clusters(
                {pl.key_of(p)[0] for p in desired} | {p.key[0] for p in result.observed}
            )
        elif result.touched:  # only the clusters whose pods changed
            self.ring_clusters({cluster_id for cluster_id, _ in result.touched})
        if result.failures:
            return None
        if result.actions or not settled(desired, result.observed, api_ready):
            return self.options.quick
        return self.options.resync

    def api_ready(self) -> set[str]:
        """Clusters whose API answered the latest probe."""
        return self.board.answering

    def protected(self, observed: list[pl.ObservedPod]) -> Container[Key]:
        """Pods of control planes scaled away whose etcd member is still in
        their cluster (or may be: the member list is unknown): they stay
        until the member is removed, so etcd keeps quorum."""
        keep: set[Key] = set()
        for pod in observed:
            cluster_id, component = pod.key
            # By the name on its labels: no index of the whole fleet on every pass.
            cluster = self.service.state.clusters.get(pod.labels.get(bp.LABEL_CLUSTER, ""))
            if cluster is None or cluster.cluster_id != cluster_id:
                continue  # deleted (a new cluster may have its name)
            if component in cluster.components:
                continue
            if not component.startswith(CONTROL_PLANE):
                continue
            members = self.etcd.get(cluster_id, ClusterMembers()).members
            name = etcd_member_name(cluster.name, component)
            if members is None or any(m.name == name for m in members):
                keep.add(pod.key)
                self.ring_clusters({cluster_id})
        return keep

    def ring_clusters(self, ids: set[str]) -> None:
        for cluster_id in ids:
            if cluster_id in self._clusters:
                self._clusters[cluster_id].ring()

    def ring_hypervisors(self, names: set[str]) -> None:
        for name in names:
            if name in self._hypervisors:
                self._hypervisors[name].ring()

    # -- clusters ----------------------------------------------------------------------

    async def _cluster_worker(self, name: str, cluster_id: str) -> None:
        wakeup = self._clusters[cluster_id]
        quiet = 0  # passes since the last ring that found it not ready
        try:
            while True:
                cluster = self.service.state.clusters.get(name)
                if cluster is None or cluster.cluster_id != cluster_id:
                    self.board.cluster_deleted(name, cluster_id)
                    return
                # Quick while it may be starting; then less and less often,
                # so that a fleet of clusters that do not answer costs little.
                delay = min(self.options.quick * BACKOFF ** max(0, quiet - QUICK_PROBES),
                            self.options.resync)  # fmt: skip
                try:
                    if cluster.scaled:
                        await self.reconcile_membership(cluster)
                    if await self.check_ready(cluster) and self.etcd_settled(cluster_id):
                        delay = self.options.resync
                except Exception:
                    log.exception("checking cluster %s", name)
                quiet = 0 if await wakeup.wait(delay) else quiet + 1
        finally:
            self._clusters.pop(cluster_id, None)
            if self._cluster_ids.get(name) == cluster_id:
                del self._cluster_ids[name]
            self._tls.pop(cluster_id, None)
            self.etcd.pop(cluster_id, None)
            for key in [k for k in self.admissions if k[0] == cluster_id]:
                del self.admissions[key]

    def etcd_settled(self, cluster_id: str) -> bool:
        return self.etcd.get(cluster_id, ClusterMembers()).settled

    async def check_ready(self, cluster: Cluster) -> bool:
        endpoint = api_server_endpoint(cluster, self.service.state.hypervisors)
        if endpoint is None:
            probe = Phase(FAILED, "the cluster has no ingress")
        else:
            why = await self.options.probe(endpoint, await self.probe_tls(cluster))
            probe = Phase(READY, "") if why is None else Phase(FAILED, why)
        note = self.etcd.get(cluster.cluster_id, ClusterMembers()).note
        answered_before = cluster.cluster_id in self.board.answering
        phase = self.board.probed(cluster.name, cluster.cluster_id, cluster.components, probe, note)
        if probe.phase == READY and not answered_before:
            # What waits for the API (controller manager, scheduler) starts now.
            self.ring_hypervisors({c.hypervisor for c in cluster.control_planes()})
        return phase.phase == READY

    async def probe_tls(self, cluster: Cluster) -> ssl.SSLContext:
        context = self._tls.get(cluster.cluster_id)
        if context is None:
            pki = (await self.events.get(cluster.created_at, ev.ClusterCreated)).pki
            key = unseal(pki.admin.key, self.service.keys.get(cluster.key_id))
            context = self._tls[cluster.cluster_id] = client_tls(
                pki.ca.certificate, pki.admin.certificate, key
            )
        return context

    def etcd_endpoints(self, cluster: Cluster) -> list[mb.Etcd]:
        """Running etcd containers of the cluster's desired members, founding
        members first: where etcdctl can run."""
        found = []
        for component in sorted(cluster.control_planes(), key=lambda c: not c.founding):
            health = self.board.hypervisors.get(component.hypervisor)
            client = self.clients.get(component.hypervisor)
            if health is None or client is None or not health.reachable:
                continue
            for pod in health.observed:
                if pod.key != (cluster.cluster_id, component.name):
                    continue
                for container in pod.containers:
                    if container.role == "etcd" and container.running:
                        found.append(mb.Etcd(client, container.id, component.ports["etcd-client"]))
        return found

    async def reconcile_membership(self, cluster: Cluster) -> None:
        """Bring etcd's members to the cluster's control planes, a step at a
        time, and admit the members that were added."""
        state = self.service.state
        record = self.etcd.setdefault(cluster.cluster_id, ClusterMembers())
        desired = mb.desired_members(cluster, state.hypervisors)
        founding = {bp.member_name(cluster, c) for c in cluster.control_planes() if c.founding}
        for etcd in self.etcd_endpoints(cluster):
            try:
                members = await etcd.members()
                break
            except CRIError as error:
                record.note = f"etcd: {error}"
        else:
            record.members, record.settled = None, False
            record.note = record.note or "etcd: no member of the cluster runs yet"
            return
        changed = False
        record.note = ""
        for _ in range(MEMBERSHIP_STEPS):
            step = mb.next_step(desired, founding, members)
            if step is None:
                break
            try:
                await etcd.apply(step)
            except CRIError as error:
                record.note = f"etcd: {error}"  # a learner not in sync yet: next pass
                break
            changed = True
            members = await etcd.members()
        record.members = members
        record.settled = mb.next_step(desired, founding, members) is None and not any(
            m.isLearner for m in members
        )
        if not record.settled and not record.note:
            record.note = "etcd: a new member is catching up"
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
                self.admissions.pop(key, None)
            elif key not in self.admissions:
                self.admissions[key] = admitted
                changed = True
        for key in [k for k in self.admissions if k[0] == cluster.cluster_id]:
            if key[1] not in cluster.components:
                del self.admissions[key]
        if changed:
            leaving = set(self.board.remaining(cluster.name, cluster.cluster_id))
            self.ring_hypervisors({c.hypervisor for c in cluster.control_planes()} | leaving)


@dataclass
class Concerned:
    """Whom an event concerns: the passes it calls for."""

    hypervisors: set[str] = field(default_factory=set)
    clusters: set[str] = field(default_factory=set)
    everywhere: bool = False  # every hypervisor (where a deleted cluster ran is not known)


def concerned_by(event: ev.Event, state: FleetState) -> Concerned:
    """A change calls for passes where it lands, not over the whole fleet."""

    def whole(name: str) -> Concerned:
        cluster = state.clusters.get(name)
        hosts = {c.hypervisor for c in cluster.components.values()} if cluster else set()
        return Concerned(hosts, {name})

    match event:
        case ev.HypervisorRegistered() | ev.HypervisorLabelsChanged() | ev.HypervisorRemoved():
            return Concerned({event.name})
        case ev.ComponentPlaced():
            return Concerned({event.hypervisor}, {event.cluster})
        case ev.ComponentRemoved() | ev.ApiServerCertificateIssued():
            # The cluster's pods change (certificates, the ingress's backends).
            return whole(event.cluster)
        case ev.ClusterCreated() | ev.ClusterScaled():
            return whole(event.name)
        case ev.ClusterDeleted():
            return Concerned(set(), {event.name}, everywhere=True)
        case _:
            return Concerned()


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
