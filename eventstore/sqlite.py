"""The event store in an SQLite file.

WAL with synchronous=FULL: a commit is on disk when append returns.

Writes: each is one synchronous transaction function (BEGIN IMMEDIATE, read
the head and the stream's version, decide with the pure planning rules,
insert, COMMIT) run whole on the writer connection's thread. No await falls
inside a transaction, so tasks cannot interleave in one and a cancelled
caller cannot leave one half done; and it costs one thread hop, not seven.
BEGIN IMMEDIATE serialises writers across processes too.

Reads: a second connection through aiosqlite, one call per page, paging by
key, so no read holds a transaction open across pages.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
import anyio.to_thread
import msgspec

from .errors import CorruptStore, EventStoreError, NotAnEventStore, StoreFileError, StoreFull
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
from .sqlreads import SQLReads
from .store import Clock, wall_clock_us

T = TypeVar("T")

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
SELECT_AT = f"SELECT {RECORD_COLUMNS} FROM events WHERE position = ?"
SELECT_STREAM_PAGE = (
    f"SELECT {RECORD_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? "
    "ORDER BY stream_version LIMIT ?"
)
SELECT_STREAM_VERSION = "SELECT max(stream_version) FROM events WHERE stream_id = ?"
SELECT_HEAD = "SELECT position, hash, recorded_at_us FROM events ORDER BY position DESC LIMIT 1"
# One statement, so one snapshot: a concurrent creator cannot commit between
# reading the header and reading the tables.
SELECT_IDENTITY = (
    "SELECT (SELECT application_id FROM pragma_application_id()), "
    "(SELECT user_version FROM pragma_user_version()), "
    "(SELECT json_group_array(name) FROM sqlite_master WHERE type = 'table')"
)


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
        if name == "SQLITE_FULL":
            raise StoreFull(f"{path}: the disk is full") from error
        if name.startswith(FILE_ERROR_NAMES):
            raise StoreFileError(f"{path}: {error}") from error
        raise EventStoreError(f"{path}: {error}") from error


class Writer:
    """The write connection. Transactions run one at a time, each whole on a
    worker thread; a cancelled caller waits for its transaction to finish."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path
        self._limiter = anyio.CapacityLimiter(1)

    async def transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._run, body, limiter=self._limiter)

    def _run(self, body: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        with sqlite_errors(self._path):
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = body(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        return result

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._connection.close, limiter=self._limiter)


class SQLiteEventStore(SQLReads):
    external_poll_interval: float | None = 0.05
    SELECT_ALL_PAGE = SELECT_ALL_PAGE
    SELECT_STREAM_PAGE = SELECT_STREAM_PAGE
    SELECT_AT = SELECT_AT
    SELECT_STREAM_VERSION = SELECT_STREAM_VERSION

    def __init__(
        self,
        path: Path,
        writer: Writer | None,
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
        writer: Writer | None = None
        reader: aiosqlite.Connection | None = None
        try:
            if not read_only:
                connection = await anyio.to_thread.run_sync(open_writer, path, busy_timeout)
                writer = Writer(connection, path)
            with sqlite_errors(path):
                reader = await aiosqlite.connect(
                    read_only_uri(path), uri=True, isolation_level=None, timeout=busy_timeout
                )
                rows = list(await reader.execute_fetchall(SELECT_IDENTITY))
                judge_identity(rows[0], path, allow_new=False)
        except BaseException:
            if writer is not None:
                await writer.close()
            if reader is not None:
                await reader.close()
            raise
        return cls(path, writer, reader, clock=clock, page_size=page_size)

    # -- writing -------------------------------------------------------------------

    def _writable(self) -> Writer:
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
        now_us = self._clock()

        def transaction(db: sqlite3.Connection) -> list[RecordedEvent] | AppendResult:
            retry = resolve_stored_ids(stream_id, batch, stored_ids(db, batch))
            if retry is not None:
                return retry  # an exact retry: nothing to write
            version = stream_version(db, stream_id)
            check_expected_version(stream_id, expected, version)
            records = build_records(stream_id, batch, version, head(db), now_us)
            db.executemany(
                INSERT_RECORD,
                [
                    (
                        r.position,
                        r.stream_id,
                        r.stream_version,
                        r.event_id_bytes,
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
            return records

        outcome = await self._writable().transaction(transaction)
        if isinstance(outcome, AppendResult):
            return outcome
        self._signal.fire()
        return result_of(outcome)

    async def import_records(self, records: Sequence[RecordedEvent]) -> None:
        batch = list(records)

        def transaction(db: sqlite3.Connection) -> None:
            streams = {record.stream_id for record in batch}
            versions = {stream: stream_version(db, stream) for stream in streams}
            check_import(batch, head(db), versions)
            db.executemany(INSERT_RECORD, [msgspec.structs.astuple(r) for r in batch])

        await self._writable().transaction(transaction)
        self._signal.fire()

    async def save_snapshot(self, name: str, position: int, data: bytes) -> Snapshot:
        snapshot = Snapshot(name, position, data, self._clock())

        def transaction(db: sqlite3.Connection) -> None:
            check_snapshot_args(name, position, data, head=head(db).position)
            db.execute(
                "INSERT OR REPLACE INTO snapshots (name, position, data, created_at_us) "
                "VALUES (?, ?, ?, ?)",
                (name, position, data, snapshot.created_at_us),
            )

        await self._writable().transaction(transaction)
        return snapshot

    async def delete_snapshots(self, name: str) -> int:
        def transaction(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM snapshots WHERE name = ?", (name,)).rowcount

        return await self._writable().transaction(transaction)

    # -- reading -------------------------------------------------------------------

    async def _rows(self, sql: str, *arguments: object) -> list[Any]:
        return await self._query(sql, arguments)

    async def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        self._ensure_open()
        with sqlite_errors(self.path):
            return list(await self._reader.execute_fetchall(sql, parameters))

    async def latest_snapshot(self, name: str, max_position: int | None = None) -> Snapshot | None:
        limit = (1 << 62) if max_position is None else max_position
        rows = await self._query(
            "SELECT name, position, data, created_at_us FROM snapshots "
            "WHERE name = ? AND position <= ? ORDER BY position DESC LIMIT 1",
            (name, limit),
        )
        return Snapshot(*rows[0]) if rows else None

    async def verify(
        self,
        from_position: int = 1,
        previous_hash: bytes = GENESIS_HASH,
        *,
        integrity: bool = True,
    ) -> VerifyReport:
        """SQLite's own page check first (`integrity`: it reads the whole
        file), then the hash chain."""
        if not integrity:
            return await super().verify(from_position, previous_hash)
        rows = await self._query("PRAGMA quick_check")
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            return VerifyReport(
                ok=False,
                records_checked=0,
                head_position=0,
                head_hash=GENESIS_HASH.hex(),
                reason="SQLite integrity check failed: " + "; ".join(problems[:3]),
            )
        return await super().verify(from_position, previous_hash)

    async def _close_storage(self) -> None:
        # The reader first: SQLite checkpoints the WAL into the file only when
        # the last connection to close can write, so a cleanly closed store is
        # one self-contained file.
        await self._reader.close()
        if self._writer is not None:
            await self._writer.close()


# -- opening -------------------------------------------------------------------------


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


def judge_identity(identity: Any, path: Path, *, allow_new: bool) -> bool:
    """True for a blank database to initialise; raise for anything not ours."""
    application_id, version, table_names = identity
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


def open_writer(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Connect, check the file is ours (or blank, then make it ours), set WAL."""
    with sqlite_errors(path):
        connection = sqlite3.connect(
            path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
        )
        try:
            identity = connection.execute(SELECT_IDENTITY).fetchone()
            if judge_identity(identity, path, allow_new=True):
                initialise(connection, path)
            ensure_wal(connection, busy_timeout)
            connection.execute("PRAGMA synchronous=FULL")
        except BaseException:
            connection.close()
            raise
    return connection


def initialise(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema; a concurrent opener may have done it first."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if judge_identity(db.execute(SELECT_IDENTITY).fetchone(), path, allow_new=True):
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def ensure_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL once; it stays so. SQLite does not wait on its
    busy handler for this switch, so a concurrent opener retries here."""
    deadline = time.monotonic() + busy_timeout
    while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorname", "") != "SQLITE_BUSY":
                raise
            if time.monotonic() > deadline:
                raise EventStoreError(
                    "could not switch to WAL: other processes kept the file locked"
                ) from error
            time.sleep(0.005)


# -- inside a write transaction -----------------------------------------------------


def stored_ids(db: sqlite3.Connection, batch: list[NewEvent]) -> dict[uuid.UUID, StoredId]:
    stored: dict[uuid.UUID, StoredId] = {}
    for start in range(0, len(batch), ID_LOOKUP_CHUNK):
        chunk = [event.event_id.bytes for event in batch[start : start + ID_LOOKUP_CHUNK]]
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(
            "SELECT event_id, stream_id, stream_version, position FROM events "
            f"WHERE event_id IN ({marks})",
            chunk,
        )
        for event_id, stream_id, version, position in rows:
            stored[uuid.UUID(bytes=event_id)] = StoredId(stream_id, version, position)
    return stored


def stream_version(db: sqlite3.Connection, stream_id: str) -> int | None:
    value = db.execute(SELECT_STREAM_VERSION, (stream_id,)).fetchone()[0]
    return None if value is None else int(value)


def head(db: sqlite3.Connection) -> Head:
    row = db.execute(SELECT_HEAD).fetchone()
    if row is None:
        return Head(0, GENESIS_HASH, 0)
    position, digest, recorded_at_us = row
    return Head(position, digest, recorded_at_us)
