"""An event store in memory, for tests: the same rules as the SQLite one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import anyio.lowlevel

from .errors import CorruptLog
from .hashing import GENESIS_HASH
from .planning import (
    Head,
    StoredId,
    build_records,
    check_expected_version,
    check_import,
    resolve_stored_ids,
    result_of,
    validate_append,
    validate_non_negative,
    validate_stream_id,
)
from .records import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, Snapshot
from .snapshots import check_snapshot_args
from .store import Clock, EventStore, wall_clock_us


class InMemoryEventStore(EventStore):
    def __init__(self, *, clock: Clock = wall_clock_us, page_size: int = 1000) -> None:
        super().__init__()
        self._clock = clock
        self._page_size = page_size
        self._log: list[RecordedEvent] = []  # index = position - 1
        self._streams: dict[str, list[int]] = {}  # stream -> positions by version
        self._ids: dict[uuid.UUID, StoredId] = {}
        self._snapshots: dict[tuple[str, int], Snapshot] = {}

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        stream_id, batch, expected = validate_append(stream_id, events, expected_version)
        self._ensure_open()
        await anyio.lowlevel.checkpoint()
        # No await below: the append is atomic with respect to other tasks.
        stored = {e.event_id: self._ids[e.event_id] for e in batch if e.event_id in self._ids}
        retry = resolve_stored_ids(stream_id, batch, stored)
        if retry is not None:
            return retry
        positions = self._streams.get(stream_id)
        version = len(positions) - 1 if positions else None
        check_expected_version(stream_id, expected, version)
        records = build_records(stream_id, batch, version, self._head(), self._clock())
        self._log.extend(records)
        stream_positions = self._streams.setdefault(stream_id, [])
        for event, record in zip(batch, records, strict=True):
            stream_positions.append(record.position)
            self._ids[event.event_id] = StoredId(stream_id, record.stream_version, record.position)
        self._signal.fire()
        return result_of(records)

    async def import_records(self, records: Sequence[RecordedEvent]) -> None:
        batch = list(records)
        self._ensure_open()
        await anyio.lowlevel.checkpoint()
        streams = {record.stream_id for record in batch}
        versions = {
            stream: len(self._streams[stream]) - 1 if stream in self._streams else None
            for stream in streams
        }
        check_import(batch, self._head(), versions)
        for record in batch:
            if record.event_id in self._ids:
                raise CorruptLog(f"record {record.position}: its event id is stored already")
        for record in batch:
            self._log.append(record)
            self._streams.setdefault(record.stream_id, []).append(record.position)
            self._ids[record.event_id] = StoredId(
                record.stream_id, record.stream_version, record.position
            )
        self._signal.fire()

    def _head(self) -> Head:
        if not self._log:
            return Head(0, GENESIS_HASH, 0)
        last = self._log[-1]
        return Head(last.position, last.hash, last.recorded_at_us)

    async def read_stream(
        self, stream_id: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        validate_stream_id(stream_id)
        version = validate_non_negative("from version", from_version)
        while True:
            self._ensure_open()
            positions = self._streams.get(stream_id, [])
            page = positions[version : version + self._page_size]
            if not page:
                return
            for position in page:
                yield self._log[position - 1]
            version += len(page)
            await anyio.lowlevel.checkpoint()

    async def read_all_pages(self, from_position: int = 1) -> AsyncIterator[list[RecordedEvent]]:
        index = validate_non_negative("from position", from_position, minimum=1) - 1
        while True:
            self._ensure_open()
            page = self._log[index : index + self._page_size]
            if not page:
                return
            yield page
            index += len(page)
            await anyio.lowlevel.checkpoint()

    async def read_at(self, position: int) -> RecordedEvent | None:
        position = validate_non_negative("position", position, minimum=1)
        self._ensure_open()
        return self._log[position - 1] if position <= len(self._log) else None

    async def head_position(self) -> int:
        self._ensure_open()
        return len(self._log)

    async def current_version(self, stream_id: str) -> int | None:
        validate_stream_id(stream_id)
        self._ensure_open()
        positions = self._streams.get(stream_id)
        return len(positions) - 1 if positions else None

    async def save_snapshot(self, name: str, position: int, data: bytes) -> Snapshot:
        check_snapshot_args(name, position, data, head=len(self._log))
        self._ensure_open()
        snapshot = Snapshot(name, position, data, self._clock())
        self._snapshots[(name, position)] = snapshot
        return snapshot

    async def latest_snapshot(self, name: str, max_position: int | None = None) -> Snapshot | None:
        self._ensure_open()
        candidates = [
            snapshot
            for (snapshot_name, position), snapshot in self._snapshots.items()
            if snapshot_name == name and (max_position is None or position <= max_position)
        ]
        return max(candidates, key=lambda snapshot: snapshot.position, default=None)

    async def delete_snapshots(self, name: str) -> int:
        self._ensure_open()
        keys = [key for key in self._snapshots if key[0] == name]
        for key in keys:
            del self._snapshots[key]
        return len(keys)

    async def _close_storage(self) -> None:
        pass
