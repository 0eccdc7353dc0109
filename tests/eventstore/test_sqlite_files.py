"""The SQLite file: what it refuses, what it keeps, and what it never writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore import (
    CorruptStore,
    NewEvent,
    NotAnEventStore,
    SQLiteEventStore,
    StoreFileError,
)
from eventstore.sqlite import APPLICATION_ID

from .helpers import fill, run_module

pytestmark = pytest.mark.anyio


async def test_a_new_file_is_marked_as_ours_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("s", [NewEvent(type="T", data=b"kept")])
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
    async with await SQLiteEventStore.open(path) as reopened:
        assert [r.data async for r in reopened.read_all()] == [b"kept"]
        await reopened.append("s", [NewEvent(type="T", data=b"more")], 0)
        assert (await reopened.verify()).ok


async def test_a_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(NotAnEventStore, match="not an SQLite database"):
        await SQLiteEventStore.open(path)
    assert path.read_bytes() == before


async def test_another_applications_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO users (name) VALUES ('ada')")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(NotAnEventStore, match=r"another application .*tables: users"):
        await SQLiteEventStore.open(path)
    assert path.read_bytes() == before


async def test_a_corrupt_store_is_reported_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    await fill(path)
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # wreck the first page past the header
    path.write_bytes(bytes(raw))
    with pytest.raises((CorruptStore, NotAnEventStore)):
        store = await SQLiteEventStore.open(path)
        [r async for r in store.read_all()]
    result = run_module("eventstore", "verify", str(path))
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert "events.db" in result.stderr or "TAMPERED" in result.stdout


async def test_a_store_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    await fill(path, streams=1, per_stream=1)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreFileError, match="format 99"):
        await SQLiteEventStore.open(path)


async def test_paths_that_cannot_be_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreFileError, match="is a directory"):
        await SQLiteEventStore.open(tmp_path)
    with pytest.raises(StoreFileError, match="is not a directory"):
        await SQLiteEventStore.open(tmp_path / "missing" / "events.db")
    with pytest.raises(StoreFileError, match="no event store at"):
        await SQLiteEventStore.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


async def test_read_only_stores_refuse_writes(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    await fill(path, streams=1, per_stream=2)
    async with await SQLiteEventStore.open(path, read_only=True) as store:
        assert await store.head_position() == 2
        with pytest.raises(StoreFileError, match="read-only"):
            await store.append("s", [NewEvent(type="T", data=b"")])
        with pytest.raises(StoreFileError, match="read-only"):
            await store.save_snapshot("p", 1, b"")


async def test_two_openers_of_a_new_file_share_one_schema(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = await SQLiteEventStore.open(path)
    second = await SQLiteEventStore.open(path)
    await first.append("s", [NewEvent(type="T", data=b"")])
    await second.append("s", [NewEvent(type="T", data=b"")], 0)
    assert await first.head_position() == 2
    assert (await second.verify()).ok
    await first.close()
    await second.close()


async def test_a_closed_store_is_one_self_contained_file(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("s", [NewEvent(type="T", data=b"kept")])
    assert not (tmp_path / "events.db-wal").exists()
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    async with await SQLiteEventStore.open(copy, read_only=True) as reopened:
        assert [r.data async for r in reopened.read_all()] == [b"kept"]
