"""Copying a log between stores, positions and hashes kept: into every
backend, resumed after an interruption, refused when it would not continue
the destination."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from eventstore import (
    CorruptLog,
    EventStore,
    InvalidArgument,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    copy_log,
)
from tests.pgserver import PostgresServer

from .conftest import StoreFactory
from .helpers import fill, run_module

pytestmark = pytest.mark.anyio


async def records_of(store: EventStore) -> list[RecordedEvent]:
    return [record async for record in store.read_all()]


@pytest.fixture
async def source(tmp_path: Path) -> EventStore:
    path = tmp_path / "source.db"
    await fill(path, streams=4, per_stream=30)  # 120 records, streams interleaved
    return await SQLiteEventStore.open(path, read_only=True, page_size=50)


async def test_a_copy_keeps_every_position_hash_and_stream_version(
    source: EventStore, make_store: StoreFactory
) -> None:
    destination = await make_store()
    assert await copy_log(source, destination) == 120
    assert await records_of(destination) == await records_of(source)
    report = await destination.verify()
    assert report.ok and report.head_hash == (await source.verify()).head_hash
    # The copy is a log like any other: appends continue its chain and streams.
    await destination.append("stream-0", [NewEvent(type="T", data=b"next")], 29)
    assert await destination.current_version("stream-0") == 30
    assert (await destination.verify()).ok
    await source.close()


async def test_a_copy_cut_short_is_resumed_by_copying_again(
    source: EventStore, make_store: StoreFactory
) -> None:
    destination = await make_store()
    first_page = [record async for record in source.read_all() if record.position <= 50]
    await destination.import_records(first_page)  # as an interrupted copy leaves it
    assert await copy_log(source, destination) == 70
    assert await records_of(destination) == await records_of(source)
    assert await copy_log(source, destination) == 0  # nothing left to copy
    await source.close()


async def test_a_destination_with_records_of_its_own_is_refused_untouched(
    source: EventStore, make_store: StoreFactory
) -> None:
    destination = await make_store()
    await destination.append("mine", [NewEvent(type="T", data=b"")])
    with pytest.raises(InvalidArgument, match="holds 1 records that are not the source's"):
        await copy_log(source, destination)
    assert await destination.head_position() == 1
    await source.close()


async def test_records_that_do_not_continue_the_log_are_refused_whole(
    source: EventStore, make_store: StoreFactory
) -> None:
    records = await records_of(source)
    await source.close()
    tampered = [*records[:10]]
    tampered[5] = msgspec.structs.replace(tampered[5], data=b"changed")
    cases = {
        "its hash does not chain": tampered,
        "does not follow position 0": records[1:10],
        "so its next version is 0, not 1": [
            msgspec.structs.replace(records[0], stream_version=1),
        ],
    }
    for reason, batch in cases.items():
        destination = await make_store()
        with pytest.raises(CorruptLog, match=reason):
            await destination.import_records(batch)
        assert await destination.head_position() == 0, reason


def test_the_cli_copies_sqlite_to_postgresql_and_back_with_the_same_head(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    import anyio

    original, back = tmp_path / "events.db", tmp_path / "back.db"
    anyio.run(fill, original)
    database = postgres_server.new_database()
    there = run_module("eventstore", "copy", str(original), database)
    assert there.returncode == 0, there.stderr
    assert there.stdout.startswith("copied 30 records; the destination's head is position 30")
    again = run_module("eventstore", "copy", database, str(back))
    assert again.returncode == 0, again.stderr
    heads = {run_module("eventstore", "verify", str(s)).stdout for s in (original, database, back)}
    assert len(heads) == 1 and heads.pop().startswith("ok: 30 records")
