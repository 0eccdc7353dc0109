"""The event store in an SQLite file, through aiosqlite.

WAL with synchronous=FULL: a commit is on disk when append returns. Writes go
through one connection under a lock, inside BEGIN IMMEDIATE, so that the head
and the stream's version are read and extended atomically even when several
processes share the file. Reads use a second connection and page by key, so
no read holds a transaction open across pages.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from .errors import CorruptStore, EventStoreError, NotAnEventStore, StoreFileError
from .hashing import GENESIS_HASH
from .planning import (
    Head,
    StoredId,
    build_records,
    check_expected_version,
    resolve_stored_ids,
    result_of,
    validate_append,
    validate_non_negative,
    validate_stream_id,
)
from .records import (
    ANY,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Snapshot,
    VerifyReport,
)
from .snapshots import check_snapshot_args
from .store import Clock, CorruptRecord, EventStore, wall_clock_us

APPLICATION_ID = 0x4F4E4553  # "ONES": marks the file as ours in its header
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
ID_LOOKUP_CHUNK = 500
FILE_ERROR_NAMES = (
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_PERM",
)

SCHEMA = (
    """
    CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        stream_id TEXT NOT NULL,
        stream_version INTEGER NOT NULL,
        event_id BLOB NOT NULL UNIQUE,
        type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        data BLOB NOT NULL,
        metadata BLOB NOT NULL,
        recorded_at_us INTEGER NOT NULL,
        hash BLOB NOT NULL,
        UNIQUE (stream_id, stream_version)
    )
    """,
    """
    CREATE TABLE snapshots (
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at_us INTEGER NOT NULL,
        PRIMARY KEY (name, position)
    ) WITHOUT ROWID
    """,
)

RECORD_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, "
    "data, metadata, recorded_at_us, hash"
)
INSERT_RECORD = f"INSERT INTO events ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_ALL_PAGE = (
    f"SELECT {RECORD_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?"
)
SELECT_STREAM_PAGE = (
    f"SELECT {RECORD_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? "
    "ORDER BY stream_version LIMIT ?"
)


def record_from_row(row: Any) -> RecordedEvent:
    """A stored row as a record; a row that cannot be one names its position."""
    position, stream_id, version, event_id, type_, schema, data, metadata, at_us, digest = row
    try:
        uid = uuid.UUID(bytes=event_id)
    except (TypeError, ValueError) as error:
        raise CorruptRecord(position, f"event id: {error}") from None
    return RecordedEvent(
        position, stream_id, version, uid, type_, schema, data, metadata, at_us, digest
    )


def records_from_rows(rows: Iterable[Any]) -> list[RecordedEvent]:
    return [record_from_row(row) for row in rows]


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into the store's, naming the file."""
    try:
        yield
    except sqlite3.Error as error:
        name = getattr(error, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB":
            raise NotAnEventStore(f"{path} is not an SQLite database") from error
        if name.startswith("SQLITE_CORRUPT"):
            raise CorruptStore(f"{path} is corrupt: {error}") from error
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise EventStoreError(
                f"{path} stayed locked by another writer past the busy timeout"
            ) from error
        if name.startswith(FILE_ERROR_NAMES):
            raise StoreFileError(f"{path}: {error}") from error
        raise EventStoreError(f"{path}: {error}") from error


class SQLiteEventStore(EventStore):
    external_poll_interval: float | None = 0.05

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection | None,
        reader: aiosqlite.Connection,
        *,
        clock: Clock,
        page_size: int,
    ) -> None:
        super().__init__()
        self.path = path
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._page_size = page_size
        self._write_lock = anyio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        create: bool = True,
        read_only: bool = False,
        clock: Clock = wall_clock_us,
        page_size: int = 1000,
        busy_timeout: float = 30.0,
    ) -> SQLiteEventStore:
        """Open (or, with create, make) the store at path.

        A file that is not ours, or is damaged, raises a StoreFileError and is
        left exactly as it was.
        """
        path = Path(path)
        check_path(path, create=create and not read_only)
        writer: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            with sqlite_errors(path):
                if read_only:
                    reader = await connect(path, read_only=True, busy_timeout=busy_timeout)
                    await check_identity(reader, path, allow_new=False)
                else:
                    writer = await connect(path, read_only=False, busy_timeout=busy_timeout)
                    if await check_identity(writer, path, allow_new=True):
                        await initialise(writer, path)
                    await ensure_wal(writer, busy_timeout)
                    await writer.execute_fetchall("PRAGMA synchronous=FULL")
                    reader = await connect(path, read_only=False, busy_timeout=busy_timeout)
                    await reader.execute_fetchall("PRAGMA query_only=1")
        except BaseException:
            for connection in (writer, reader):
                if connection is not None:
                    await connection.close()
            raise
        return cls(path, writer, reader, clock=clock, page_size=page_size)

    # -- writing -------------------------------------------------------------------

    def _writable(self) -> aiosqlite.Connection:
        self._ensure_open()
        if self._writer is None:
            raise StoreFileError(f"{self.path} was opened read-only")
        return self._writer

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        stream_id, batch, expected = validate_append(stream_id, events, expected_version)
        db = self._writable()
        async with self._write_lock:
            # Once BEGIN is sent the transaction must end here, whatever is cancelled.
            with anyio.CancelScope(shield=True), sqlite_errors(self.path):
                records_or_retry = await self._append_transaction(db, stream_id, batch, expected)
        if isinstance(records_or_retry, AppendResult):
            return records_or_retry
        self._signal.fire()
        return result_of(records_or_retry)

    async def _append_transaction(
        self,
        db: aiosqlite.Connection,
        stream_id: str,
        batch: list[NewEvent],
        expected: ExpectedVersion,
    ) -> list[RecordedEvent] | AppendResult:
        await db.execute_fetchall("BEGIN IMMEDIATE")
        try:
            retry = resolve_stored_ids(stream_id, batch, await self._stored_ids(db, batch))
            if retry is not None:
                await db.execute_fetchall("ROLLBACK")
                return retry
            version = await stream_version(db, stream_id)
            check_expected_version(stream_id, expected, version)
            records = build_records(stream_id, batch, version, await head(db), self._clock())
            cursor = await db.executemany(
                INSERT_RECORD,
                [
                    (
                        r.position,
                        r.stream_id,
                        r.stream_version,
                        r.event_id.bytes,
                        r.type,
                        r.schema_version,
                        r.data,
                        r.metadata,
                        r.recorded_at_us,
                        r.hash,
                    )
                    for r in records
                ],
            )
            await cursor.close()
            await db.execute_fetchall("COMMIT")
            return records
        except BaseException:
            if db.in_transaction:
                await db.execute_fetchall("ROLLBACK")
            raise

    async def _stored_ids(
        self, db: aiosqlite.Connection, batch: list[NewEvent]
    ) -> dict[uuid.UUID, StoredId]:
        stored: dict[uuid.UUID, StoredId] = {}
        for start in range(0, len(batch), ID_LOOKUP_CHUNK):
            chunk = [event.event_id.bytes for event in batch[start : start + ID_LOOKUP_CHUNK]]
            marks = ", ".join("?" * len(chunk))
            rows = await db.execute_fetchall(
                "SELECT event_id, stream_id, stream_version, position FROM events "
                f"WHERE event_id IN ({marks})",
                chunk,
            )
            for event_id, stream_id, version, position in rows:
                stored[uuid.UUID(bytes=event_id)] = StoredId(stream_id, version, position)
        return stored

    async def save_snapshot(self, name: str, position: int, data: bytes) -> Snapshot:
        db = self._writable()
        async with self._write_lock:
            with anyio.CancelScope(shield=True), sqlite_errors(self.path):
                await db.execute_fetchall("BEGIN IMMEDIATE")
                try:
                    check_snapshot_args(name, position, data, head=(await head(db)).position)
                    snapshot = Snapshot(name, position, data, self._clock())
                    await db.execute_fetchall(
                        "INSERT OR REPLACE INTO snapshots (name, position, data, created_at_us) "
                        "VALUES (?, ?, ?, ?)",
                        (name, position, data, snapshot.created_at_us),
                    )
                    await db.execute_fetchall("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        await db.execute_fetchall("ROLLBACK")
                    raise
        return snapshot

    async def delete_snapshots(self, name: str) -> int:
        db = self._writable()
        async with self._write_lock:
            with anyio.CancelScope(shield=True), sqlite_errors(self.path):
                cursor = await db.execute("DELETE FROM snapshots WHERE name = ?", (name,))
                deleted = cursor.rowcount
                await cursor.close()
        return deleted

    # -- reading -------------------------------------------------------------------

    async def _query(self, sql: str, parameters: Sequence[object] = ()) -> Iterable[Any]:
        self._ensure_open()
        with sqlite_errors(self.path):
            return await self._reader.execute_fetchall(sql, parameters)

    async def read_all(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        position = validate_non_negative("from position", from_position, minimum=1)
        while True:
            rows = await self._query(SELECT_ALL_PAGE, (position, self._page_size))
            page = records_from_rows(rows)
            for record in page:
                yield record
            if len(page) < self._page_size:
                return
            position = page[-1].position + 1

    async def read_stream(
        self, stream_id: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        validate_stream_id(stream_id)
        version = validate_non_negative("from version", from_version)
        while True:
            rows = await self._query(SELECT_STREAM_PAGE, (stream_id, version, self._page_size))
            page = records_from_rows(rows)
            for record in page:
                yield record
            if len(page) < self._page_size:
                return
            version = page[-1].stream_version + 1

    async def head_position(self) -> int:
        self._ensure_open()
        with sqlite_errors(self.path):
            return int(await scalar(self._reader, "SELECT max(position) FROM events") or 0)

    async def current_version(self, stream_id: str) -> int | None:
        validate_stream_id(stream_id)
        self._ensure_open()
        with sqlite_errors(self.path):
            return await stream_version(self._reader, stream_id)

    async def latest_snapshot(self, name: str, max_position: int | None = None) -> Snapshot | None:
        limit = (1 << 62) if max_position is None else max_position
        rows = list(
            await self._query(
                "SELECT name, position, data, created_at_us FROM snapshots "
                "WHERE name = ? AND position <= ? ORDER BY position DESC LIMIT 1",
                (name, limit),
            )
        )
        return Snapshot(*rows[0]) if rows else None

    async def verify(self) -> VerifyReport:
        """SQLite's own page check first, then the hash chain."""
        rows = list(await self._query("PRAGMA quick_check"))
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            return VerifyReport(
                ok=False,
                records_checked=0,
                head_position=0,
                head_hash=GENESIS_HASH.hex(),
                reason="SQLite integrity check failed: " + "; ".join(problems[:3]),
            )
        return await super().verify()

    async def _close_storage(self) -> None:
        async with self._write_lock:
            for connection in (self._writer, self._reader):
                if connection is not None:
                    await connection.close()


# -- helpers on a connection -------------------------------------------------------


def check_path(path: Path, *, create: bool) -> None:
    """Refuse paths that cannot be a store, before SQLite touches anything."""
    if path.is_dir():
        raise StoreFileError(f"{path} is a directory, not an event store file")
    if not path.exists():
        if not create:
            raise StoreFileError(f"no event store at {path}")
        if not path.parent.is_dir():
            raise StoreFileError(f"cannot create {path}: {path.parent} is not a directory")
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise StoreFileError(f"cannot read {path}: {error.strerror}") from error
    if header and header != SQLITE_MAGIC:
        raise NotAnEventStore(f"{path} is not an SQLite database, so not an event store")
    if not header and not create:
        raise StoreFileError(f"{path} is empty, not an event store")


def read_only_uri(path: Path) -> str:
    return f"{path.absolute().as_uri()}?mode=ro"


async def connect(path: Path, *, read_only: bool, busy_timeout: float) -> aiosqlite.Connection:
    target = read_only_uri(path) if read_only else str(path)
    return await aiosqlite.connect(
        target, uri=read_only, isolation_level=None, timeout=busy_timeout
    )


async def scalar(db: aiosqlite.Connection, sql: str, parameters: Sequence[object] = ()) -> Any:
    """The first column of the first row, None when there is no row."""
    rows = list(await db.execute_fetchall(sql, parameters))
    return rows[0][0] if rows else None


# One statement, so one snapshot: a concurrent creator cannot commit between
# reading the header and reading the tables.
SELECT_IDENTITY = (
    "SELECT (SELECT application_id FROM pragma_application_id()), "
    "(SELECT user_version FROM pragma_user_version()), "
    "(SELECT json_group_array(name) FROM sqlite_master WHERE type = 'table')"
)


async def check_identity(db: aiosqlite.Connection, path: Path, *, allow_new: bool) -> bool:
    """True for a blank database to initialise; raise for anything not ours."""
    rows = list(await db.execute_fetchall(SELECT_IDENTITY))
    application_id, version, table_names = rows[0]
    tables: list[str] = json.loads(table_names)
    if application_id == APPLICATION_ID:
        if version != FORMAT_VERSION:
            raise StoreFileError(
                f"{path} is an event store of format {version}; "
                f"this code reads format {FORMAT_VERSION}"
            )
        if not {"events", "snapshots"} <= set(tables):
            raise CorruptStore(f"{path} is marked as an event store but lacks its tables")
        return False
    if application_id == 0 and not tables:
        if not allow_new:
            raise StoreFileError(f"{path} is an empty database, not an event store")
        return True
    shown = ", ".join(tables[:5]) or "none"
    raise NotAnEventStore(
        f"{path} is an SQLite database of another application "
        f"(application id {application_id}, tables: {shown})"
    )


async def initialise(db: aiosqlite.Connection, path: Path) -> None:
    """Create the schema; a concurrent opener may have done it first."""
    await db.execute_fetchall("BEGIN IMMEDIATE")
    try:
        if not await check_identity(db, path, allow_new=True):
            await db.execute_fetchall("ROLLBACK")
            return
        for statement in SCHEMA:
            await db.execute_fetchall(statement)
        await db.execute_fetchall(f"PRAGMA application_id = {APPLICATION_ID}")
        await db.execute_fetchall(f"PRAGMA user_version = {FORMAT_VERSION}")
        await db.execute_fetchall("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute_fetchall("ROLLBACK")
        raise


SELECT_STREAM_VERSION = "SELECT max(stream_version) FROM events WHERE stream_id = ?"


async def ensure_wal(db: aiosqlite.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL once; it stays so. SQLite does not wait on its
    busy handler for this switch, so a concurrent opener retries here."""
    with anyio.move_on_after(busy_timeout):
        while await scalar(db, "PRAGMA journal_mode") != "wal":
            try:
                await db.execute_fetchall("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorname", "") != "SQLITE_BUSY":
                    raise
                await anyio.sleep(0.005)
        return
    raise EventStoreError("could not switch to WAL: other processes kept the file locked")


async def stream_version(db: aiosqlite.Connection, stream_id: str) -> int | None:
    value = await scalar(db, SELECT_STREAM_VERSION, (stream_id,))
    return None if value is None else int(value)


async def head(db: aiosqlite.Connection) -> Head:
    rows = list(
        await db.execute_fetchall(
            "SELECT position, hash, recorded_at_us FROM events ORDER BY position DESC LIMIT 1"
        )
    )
    if not rows:
        return Head(0, GENESIS_HASH, 0)
    position, digest, recorded_at_us = rows[0]
    return Head(position, digest, recorded_at_us)
