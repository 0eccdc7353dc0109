"""The daemon's core: decides commands one at a time against the latest state,
appends their events with the fleet stream's expected version, and keeps the
projection, the key store and the log in step.

Commands run in one worker task, so decisions are serial and a caller that
goes away (or SIGTERM) never cancels a command between storing its new data
keys and appending its events.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import msgspec
from anyio.abc import TaskStatus

from eventstore import (
    NO_STREAM,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
    StoreClosed,
    VerifyReport,
    WrongExpectedVersion,
)

from ..errors import Conflict, OneinfraError, ServiceClosed
from ..model import commands as cmd
from ..model import events as ev
from ..model import projection
from ..model.decider import Context, Decision, decide, pki_needed
from ..model.metadata import Actor, Metadata
from ..model.state import FleetState
from ..pki.certlist import ClusterPKI
from ..reconcile.certificates import cluster_pki as current_cluster_pki
from ..storage.keystore import KeyStore
from ..storage.logreader import EventCache, record_at

SNAPSHOT_NAME = "fleet-state-v3"  # bump when the state's shape or the fold changes
SNAPSHOT_EVERY = 5000  # events between snapshots
FOLLOW_RETRY = 1.0  # seconds between tries to follow a store that is out
CONFLICT_RETRIES = 3
PKI_CACHE_SIZE = 256  # clusters whose ClusterCreated (their CAs) stay decoded


@dataclass
class Outcome:
    decision: Decision
    position: int  # of the last event appended; 0 when the command changed nothing


@dataclass
class Job:
    command: cmd.Command
    actor: Actor | None
    correlation_id: str | None
    source: str | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: Outcome | None = None
    error: BaseException | None = None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Observer(Protocol):
    """What the service reports as it works (the metrics)."""

    def command_done(self, command: str, error: BaseException | None, seconds: float) -> None: ...

    def appended(self, seconds: float) -> None: ...


class NoObserver:
    def command_done(self, command: str, error: BaseException | None, seconds: float) -> None:
        pass

    def appended(self, seconds: float) -> None:
        pass


class FleetService:
    def __init__(
        self,
        store: EventStore,
        keys: KeyStore,
        state: FleetState,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        entropy: Callable[[int], bytes] = os.urandom,
        snapshot_every: int = SNAPSHOT_EVERY,
        decisions: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.state = state
        self._clock = clock
        self._entropy = entropy
        self._snapshot_every = snapshot_every
        self._snapshot_position = state.position
        self._jobs_in, self._jobs_out = anyio.create_memory_object_stream[Job](math.inf)
        self._encode_metadata = msgspec.json.Encoder().encode
        self._events = EventCache(store, size=PKI_CACHE_SIZE)
        self._advanced = anyio.Event()  # set (and replaced) when the state moves on
        # Held from a command's decision to its events folded, and while the
        # events of other daemons are folded: nothing is folded twice.
        self._folding = anyio.Lock()
        # Held while the state changes, and by the API's thread while it reads
        # the state: a query never sees an event half folded.
        self.lock = threading.RLock()
        self.observer: Observer = NoObserver()  # the metrics, when served
        # Shared stores: one decision at a time across the daemons (decisions.py).
        self.decisions = decisions
        self.accepting = True

    @classmethod
    async def open(cls, store: EventStore, keys: KeyStore, **options: object) -> FleetService:
        """Rebuild the state from the latest snapshot and the events after it,
        then destroy any data key whose owner no longer exists (a crash may
        have fallen between a delete's append and its key's destruction)."""
        service = cls(store, keys, await rebuild(store), **options)  # type: ignore[arg-type]
        if service.decisions is None:
            await keys.keep_only(live_key_ids(service.state))
        else:
            # Shared: another daemon saves a new cluster's key before its
            # event is appended, holding the decision lock; sweeping outside
            # the lock would destroy that key as dead.
            async with service.decisions:
                await service._catch_up()
                await keys.keep_only(live_key_ids(service.state))
        return service

    # -- commands -------------------------------------------------------------------

    async def execute(
        self,
        command: cmd.Command,
        actor: Actor | None = None,
        correlation_id: str | None = None,
        source: str | None = None,
    ) -> Outcome:
        job = Job(command, actor, correlation_id, source)
        try:
            await self._jobs_in.send(job)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise ServiceClosed("the daemon is shutting down") from None
        await job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.outcome is not None
        return job.outcome

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The command worker: one command at a time, each run to its end."""
        task_status.started()
        async with self._jobs_out:
            async for job in self._jobs_out:
                with anyio.CancelScope(shield=True):
                    began = time.perf_counter()
                    try:
                        job.outcome = await self._execute(job)
                    except Exception as error:  # handed to the caller, who reports it
                        job.error = error
                    name = type(job.command).__name__
                    self.observer.command_done(name, job.error, time.perf_counter() - began)
                    job.done.set()

    def stop_accepting(self) -> None:
        """No new commands; those queued still run, then run() returns."""
        self.accepting = False
        self._jobs_in.close()

    async def _execute(self, job: Job) -> Outcome:
        if self.decisions is None:
            async with self._folding:
                return await self._execute_folding(job)
        async with self.decisions, self._folding:
            await self._catch_up()  # what others decided before we held the lock
            return await self._execute_folding(job)

    async def _execute_folding(self, job: Job) -> Outcome:
        command_id = str(uuid.uuid4())
        metadata = self._encode_metadata(
            Metadata(
                actor=job.actor,
                command=type(job.command).__name__,
                correlation_id=job.correlation_id or command_id,
                causation_id=command_id,
                source=job.source,
            )
        )
        for _ in range(CONFLICT_RETRIES):
            context = Context(
                now=self._clock(),
                entropy=self._entropy,
                data_keys=self.keys,
                pki={
                    name: await self.cluster_pki(name)
                    for name in pki_needed(self.state, job.command)
                },
            )
            decision = decide(self.state, job.command, context)
            if not decision.events:
                return Outcome(decision, position=0)
            for key_id, key in decision.new_keys.items():
                await self.keys.save(key_id, key)
            records = []
            for event in decision.events:
                event_type, version, data = ev.encode(event)
                records.append(
                    NewEvent(type=event_type, data=data, metadata=metadata, schema_version=version)
                )
            expected = NO_STREAM if self.state.version is None else self.state.version
            try:
                began = time.perf_counter()
                result = await self.store.append(ev.FLEET_STREAM, records, expected)
                self.observer.appended(time.perf_counter() - began)
            except WrongExpectedVersion:
                await self.keys.forget(decision.new_keys)
                await self._catch_up()
                continue
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.keys.forget(decision.new_keys)
                raise
            with self.lock:
                for position, event in enumerate(decision.events, start=result.first_position):
                    projection.apply(self.state, event, position)
                self.state.version = result.stream_version
                self.state.position = result.last_position
            self._advance()
            await self.keys.forget(decision.destroyed_keys)
            if self.state.position - self._snapshot_position >= self._snapshot_every:
                await self.snapshot()
            return Outcome(decision, position=result.last_position)
        raise Conflict(
            "the fleet changed under this command on every try; nothing was done, try again"
        )

    async def wait_position(self, position: int) -> None:
        """Returns once the state has folded the log up to `position`."""
        while self.state.position < position:
            await self._advanced.wait()

    async def cluster_pki(self, name: str) -> ClusterPKI:
        """A cluster's CAs, leaves and keys as they are now (rotated, renewed or not)."""
        return await current_cluster_pki(self._events, self.state.clusters[name])

    async def catch_up(self) -> None:
        """Fold events appended by someone else since our last position."""
        async with self._folding:
            await self._catch_up()

    async def _catch_up(self) -> None:
        before = self.state.position
        created: set[str] = set()
        everything = False

        def seen(event: ev.Event) -> None:
            # Which keys others made or destroyed: a new cluster names its own;
            # the rare rest makes the whole set of live keys be looked at.
            nonlocal everything
            if isinstance(event, ev.ClusterCreated):
                created.add(event.key_id)
            elif isinstance(event, KEY_CHANGING_EVENTS):
                everything = True

        await fold_from(self.store, self.state, self.state.position + 1, lock=self.lock, seen=seen)
        if self.state.position != before:
            if everything:
                await self.keys.refresh(live_key_ids(self.state))
            elif created:
                await self.keys.refresh_some(created)
            self._advance()

    def _advance(self) -> None:
        self._advanced.set()
        self._advanced = anyio.Event()

    async def follow(self, on_error: Callable[[Exception], None] | None = None) -> None:
        """Fold what other daemons append to a shared store, as it commits;
        through the store's outages (each one passed to on_error), until
        cancelled or the store is closed."""
        while True:
            try:
                async for record in self.store.subscribe(self.state.position + 1):
                    if record.position > self.state.position:
                        await self.catch_up()
            except StoreClosed:
                return
            except (EventStoreError, OneinfraError) as error:
                if on_error is not None:
                    on_error(error)
                await anyio.sleep(FOLLOW_RETRY)

    async def snapshot(self) -> None:
        await self.store.save_snapshot(
            SNAPSHOT_NAME, self.state.position, projection.encode_snapshot(self.state)
        )
        self._snapshot_position = self.state.position

    # -- the audit trail ------------------------------------------------------------

    async def history(
        self,
        *,
        since_position: int = 1,
        since: dt.datetime | None = None,
        cluster: str | None = None,
        hypervisor: str | None = None,
        follow: bool = False,
    ) -> AsyncIterator[tuple[RecordedEvent, ev.Event]]:
        records = (
            self.store.subscribe(since_position) if follow else self.store.read_all(since_position)
        )
        since_us = int(since.timestamp() * 1_000_000) if since else None
        async for record in records:
            if record.stream_id not in (ev.FLEET_STREAM, ev.STATUS_STREAM):
                continue
            if since_us is not None and record.recorded_at_us < since_us:
                continue
            event = ev.decode(record.type, record.schema_version, record.data)
            if mentions(event, cluster, hypervisor):
                yield record, event

    async def replay(
        self, position: int | None = None, at: dt.datetime | None = None
    ) -> tuple[FleetState, RecordedEvent | None]:
        """The desired state as it was at a position or a time, and the last
        record folded into it (None for the empty state)."""
        if at is not None:
            position = await self.position_at(at)
        if position is None:
            position = self.state.position
        state = await rebuild(self.store, up_to=position)
        return state, await record_at(self.store, state.position)

    async def position_at(self, at: dt.datetime) -> int:
        """The last position recorded at or before a time (recorded times never
        go backwards along the log)."""
        at_us = int(at.timestamp() * 1_000_000)
        position = 0
        async for page in self.store.read_all_pages(1):
            for record in page:
                if record.recorded_at_us > at_us:
                    return position
                position = record.position
        return position

    async def verify(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """The whole chain, and (given a head kept elsewhere) that the log
        still holds that record: a chain alone cannot tell its newest
        records removed."""
        report = await self.store.verify()
        if anchor is None or not report.ok:
            return report
        problem = await self.store.check_anchor(*anchor)
        if problem is None:
            return report
        return msgspec.structs.replace(
            report, ok=False, first_bad_position=min(anchor[0], report.head_position + 1),
            reason=problem,
        )  # fmt: skip

    async def head(self) -> RecordedEvent | None:
        """The log's last record, None for an empty log."""
        return await record_at(self.store, await self.store.head_position())


# -- rebuilding the state ------------------------------------------------------------


async def rebuild(store: EventStore, up_to: int | None = None) -> FleetState:
    """The state at a position (default: the head), from the latest snapshot
    at or before it and the events after that."""
    state = await load_snapshot(store, up_to)
    await fold_from(store, state, state.position + 1, up_to)
    return state


async def load_snapshot(store: EventStore, max_position: int | None) -> FleetState:
    """The latest usable snapshot, or an empty state: snapshots are disposable,
    so one this code cannot read is ignored and the log is folded instead."""
    snapshot = await store.latest_snapshot(SNAPSHOT_NAME, max_position)
    if snapshot is None:
        return FleetState()
    try:
        return projection.decode_snapshot(snapshot.data)
    except msgspec.DecodeError:
        return FleetState()


async def fold_from(
    store: EventStore,
    state: FleetState,
    start: int,
    up_to: int | None = None,
    lock: AbstractContextManager[object] | None = None,
    seen: Callable[[ev.Event], None] | None = None,
) -> None:
    """Fold the log from a position into the state; `seen` is shown each
    fleet event as it is folded."""
    async for page in store.read_all_pages(start):
        with lock or nullcontext():  # a page at a time: readers wait for no I/O
            for record in page:
                if up_to is not None and record.position > up_to:
                    return
                if record.stream_id == ev.FLEET_STREAM:
                    event = ev.decode(record.type, record.schema_version, record.data)
                    if seen is not None:
                        seen(event)
                    projection.apply(state, event, record.position)
                    state.version = record.stream_version
                state.position = record.position


# Events after which a follower's data keys are all looked at again.
KEY_CHANGING_EVENTS = (ev.ClusterDeleted, ev.HypervisorRegistered, ev.HypervisorRemoved)


def live_key_ids(state: FleetState) -> set[str]:
    keys = {cluster.key_id for cluster in state.clusters.values()}
    keys |= {h.tls.client_key.key_id for h in state.hypervisors.values() if h.tls}
    return keys


HYPERVISOR_EVENTS = (ev.HypervisorRegistered, ev.HypervisorLabelsChanged, ev.HypervisorRemoved)


def mentions(event: ev.Event, cluster: str | None, hypervisor: str | None) -> bool:
    """Whether an event concerns the named cluster and hypervisor (None: any).

    A hypervisor is concerned by its own events and by components placed on it.
    """
    if cluster is not None:
        if isinstance(event, (*HYPERVISOR_EVENTS, ev.HypervisorStatusChanged)):
            return False
        if getattr(event, "cluster", getattr(event, "name", None)) != cluster:
            return False
    if hypervisor is not None:
        if isinstance(event, (*HYPERVISOR_EVENTS, ev.HypervisorStatusChanged)):
            return event.name == hypervisor
        if isinstance(event, ev.ComponentStatusChanged):
            return event.hypervisor == hypervisor
        return isinstance(event, ev.ComponentPlaced) and event.hypervisor == hypervisor
    return True
