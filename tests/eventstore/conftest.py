from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from eventstore import EventStore, InMemoryEventStore, NewEvent, SQLiteEventStore

StoreFactory = Callable[..., Awaitable[EventStore]]


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrized backend; closes them after the test."""
    opened: list[EventStore] = []

    async def factory(**options: object) -> EventStore:
        if request.param == "memory":
            store: EventStore = InMemoryEventStore(**options)  # type: ignore[arg-type]
        else:
            path = tmp_path / f"events-{len(opened)}.db"
            store = await SQLiteEventStore.open(path, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> EventStore:
    return await make_store()


def event(data: bytes = b"{}", type: str = "Happened", **fields: object) -> NewEvent:
    return NewEvent(type=type, data=data, **fields)  # type: ignore[arg-type]


async def all_records(store: EventStore) -> list[tuple[int, str, int]]:
    return [(r.position, r.stream_id, r.stream_version) async for r in store.read_all()]
