"""Reads: one stream from a version, all streams from a position, page by page."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from eventstore import EventStore, InvalidArgument, SQLiteEventStore, StoreClosed

from .conftest import StoreFactory, event

pytestmark = pytest.mark.anyio


async def test_read_stream_from_a_version_across_pages(make_store: StoreFactory) -> None:
    store = await make_store(page_size=3)
    for i in range(10):
        await store.append("a", [event(str(i).encode())])
        await store.append("b", [event()])
    versions = [r.stream_version async for r in store.read_stream("a", from_version=4)]
    assert versions == list(range(4, 10))
    data = [r.data async for r in store.read_stream("a")]
    assert data == [str(i).encode() for i in range(10)]
    assert [r async for r in store.read_stream("missing")] == []


async def test_read_all_from_a_position_across_pages(make_store: StoreFactory) -> None:
    store = await make_store(page_size=4)
    await store.append("a", [event() for _ in range(9)])
    assert [r.position async for r in store.read_all(from_position=3)] == list(range(3, 10))
    assert [r.position async for r in store.read_all(from_position=10)] == []


async def test_read_all_pages_gives_whole_pages_then_the_rest(make_store: StoreFactory) -> None:
    store = await make_store(page_size=4)
    await store.append("a", [event() for _ in range(10)])
    pages = [[r.position for r in page] async for page in store.read_all_pages(from_position=2)]
    assert pages == [[2, 3, 4, 5], [6, 7, 8, 9], [10]]
    assert [page async for page in store.read_all_pages(from_position=11)] == []


async def test_exactly_one_page_ends_the_read(make_store: StoreFactory) -> None:
    store = await make_store(page_size=5)
    await store.append("a", [event() for _ in range(5)])
    assert [r.position async for r in store.read_all()] == [1, 2, 3, 4, 5]


async def test_a_read_sees_appends_made_while_it_pages(make_store: StoreFactory) -> None:
    store = await make_store(page_size=2)
    await store.append("a", [event() for _ in range(4)])
    seen = []
    async for record in store.read_all():
        seen.append(record.position)
        if record.position == 1:
            await store.append("a", [event()])
    assert seen == [1, 2, 3, 4, 5]


async def test_read_at_gives_the_one_record_at_a_position(make_store: StoreFactory) -> None:
    store = await make_store(page_size=3)
    await store.append("a", [event(str(i).encode()) for i in range(5)])
    await store.append("b", [event(b"last")])
    everything = [r async for r in store.read_all()]
    assert [await store.read_at(p) for p in range(1, 7)] == everything
    assert await store.read_at(7) is None
    with pytest.raises(InvalidArgument, match="position must be at least 1"):
        await store.read_at(0)
    await store.close()
    with pytest.raises(StoreClosed):
        await store.read_at(1)


@pytest.mark.parametrize("bad", [0, -1, "1", 1.5])
async def test_bad_positions_are_refused(store: EventStore, bad: object) -> None:
    with pytest.raises(InvalidArgument, match="from position"):
        [r async for r in store.read_all(bad)]  # type: ignore[arg-type]


async def test_bad_stream_reads_are_refused(store: EventStore) -> None:
    with pytest.raises(InvalidArgument, match="stream id must not be empty"):
        [r async for r in store.read_stream("")]
    with pytest.raises(InvalidArgument, match="from version must be at least 0"):
        [r async for r in store.read_stream("s", -3)]


async def test_a_closed_store_refuses_everything(store: EventStore) -> None:
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(StoreClosed):
        await store.append("s", [event()])
    with pytest.raises(StoreClosed):
        await store.head_position()
    with pytest.raises(StoreClosed):
        [r async for r in store.read_all()]


async def test_read_all_memory_stays_bounded_by_the_page(tmp_path: Path) -> None:
    """Reading a log many times larger than a page never holds more than a page."""
    store = await SQLiteEventStore.open(tmp_path / "big.db", page_size=200)
    payload = bytes(4096)
    for batch in range(40):
        await store.append(f"s{batch}", [event(payload) for _ in range(250)])  # 40 MiB of data
    tracemalloc.start()
    try:
        count = 0
        async for _ in store.read_all():
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await store.close()
    assert count == 10_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 40 MiB log"
