from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from eventstore import EventStore, InMemoryEventStore, NewEvent, SQLiteEventStore
from tests.pgserver import PostgresServer

StoreFactory = Callable[..., Awaitable[EventStore]]
BACKENDS = ["memory", "sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrized backend; closes them after the test."""
    opened: list[EventStore] = []

    async def factory(**options: object) -> EventStore:
        store: EventStore
        if request.param == "memory":
            store = InMemoryEventStore(**options)  # type: ignore[arg-type]
        elif request.param == "sqlite":
            path = tmp_path / f"events-{len(opened)}.db"
            store = await SQLiteEventStore.open(path, **options)  # type: ignore[arg-type]
        else:
            from eventstore import PostgreSQLEventStore

            server: PostgresServer = request.getfixturevalue("postgres_server")
            url = server.new_database()
            store = await PostgreSQLEventStore.open(url, **options)  # type: ignore[arg-type]
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


@pytest.fixture(params=["sqlite", "postgresql"])
def durable_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's name for child processes: a file path, or a fresh database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
