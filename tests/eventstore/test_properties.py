"""Property: whatever the interleaving of concurrent appends and reads, the log
is gap-free, each stream's versions are contiguous, every read is a prefix of
the log, and read_all is exactly the concatenation of the acknowledged batches.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Literal

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ANY,
    NO_STREAM,
    AppendResult,
    EventStore,
    ExpectedVersion,
    InMemoryEventStore,
    NewEvent,
    SQLiteEventStore,
    WrongExpectedVersion,
)

Mode = Literal["any", "current", "stale", "no_stream"]

operations = st.lists(
    st.tuples(
        st.integers(0, 2),  # stream
        st.integers(1, 4),  # batch size
        st.sampled_from(["any", "current", "stale", "no_stream"]),
        st.integers(0, 3),  # scheduling points before appending
    ),
    min_size=1,
    max_size=25,
)


async def exercise(
    store: EventStore, ops: list[tuple[int, int, Mode, int]], page_size_reads: int
) -> None:
    acknowledged: list[tuple[AppendResult, str, list[uuid.UUID]]] = []
    done = anyio.Event()

    async def append(stream_index: int, size: int, mode: Mode, delay: int) -> None:
        stream = f"stream-{stream_index}"
        for _ in range(delay):
            await anyio.lowlevel.checkpoint()
        current = await store.current_version(stream)
        expected: ExpectedVersion
        if mode == "any":
            expected = ANY
        elif mode == "no_stream":
            expected = NO_STREAM
        elif mode == "current":
            expected = NO_STREAM if current is None else current
        else:
            expected = 0 if current is None else current + 1  # wrong on purpose
        events = [NewEvent(type="T", data=f"{stream}".encode()) for _ in range(size)]
        try:
            result = await store.append(stream, events, expected)
        except WrongExpectedVersion:
            return
        acknowledged.append((result, stream, [e.event_id for e in events]))

    async def reader() -> None:
        while not done.is_set():
            positions = [r.position async for r in store.read_all()]
            assert positions == list(range(1, len(positions) + 1)), "a read was not a prefix"
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as readers:
        for _ in range(page_size_reads):
            readers.start_soon(reader)
        async with anyio.create_task_group() as appenders:
            for op in ops:
                appenders.start_soon(append, *op)
        done.set()

    stored = [r async for r in store.read_all()]
    assert [r.position for r in stored] == list(range(1, len(stored) + 1))
    expected_log = [
        (position, stream, event_id)
        for result, stream, ids in sorted(acknowledged, key=lambda a: a[0].first_position)
        for position, event_id in zip(
            range(result.first_position, result.last_position + 1), ids, strict=True
        )
    ]
    assert [(r.position, r.stream_id, r.event_id) for r in stored] == expected_log
    versions: dict[str, list[int]] = {}
    for record in stored:
        versions.setdefault(record.stream_id, []).append(record.stream_version)
    for stream_versions in versions.values():
        assert stream_versions == list(range(len(stream_versions)))
    assert (await store.verify()).ok


@settings(max_examples=60, deadline=None)
@given(ops=operations, readers=st.integers(0, 2), page=st.integers(1, 5))
def test_concurrent_history_on_memory(
    ops: list[tuple[int, int, Mode, int]], readers: int, page: int
) -> None:
    async def run() -> None:
        await exercise(InMemoryEventStore(page_size=page), ops, readers)

    anyio.run(run)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, readers=st.integers(0, 2), page=st.integers(1, 5))
def test_concurrent_history_on_sqlite(
    ops: list[tuple[int, int, Mode, int]], readers: int, page: int
) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = await SQLiteEventStore.open(Path(directory) / "e.db", page_size=page)
            try:
                await exercise(store, ops, readers)
            finally:
                await store.close()

    anyio.run(run)
