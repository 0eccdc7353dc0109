"""The event store in PostgreSQL: one log shared by processes on several hosts.

Writes: one transaction per append that first takes `LOCK TABLE events IN
EXCLUSIVE MODE`. Writers queue on it; readers do not (they take ACCESS
SHARE). A position is the head plus one under that lock, and PostgreSQL
releases a transaction's locks only once its commit is visible, so positions
are in commit order and no reader ever sees position N+1 before N (a
sequence would give gaps and out-of-order commits: how kine loses writes).
An append is four round trips whatever the batch: BEGIN with the lock, the
facts (stored ids, the stream's version, the head) in one query, every row
in one INSERT of arrays, NOTIFY with COMMIT.

A connection lost mid-append: before COMMIT was sent, nothing was written.
After, the outcome is found out on a new connection, under the same lock,
once the old backend is ended (so it cannot commit later): the append is
then acknowledged or refused, never both, and a batch is never half stored.

Readers are woken by LISTEN/NOTIFY; the log is the truth, so a missed
notification costs one poll interval, not a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import asyncpg
import msgspec

from .errors import (
    AppendOutcomeUnknown,
    CorruptStore,
    EventStoreError,
    NotAnEventStore,
    StoreFileError,
    StoreUnavailable,
    WrongExpectedVersion,
)
from .hashing import GENESIS_HASH
from .locate import redacted
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
from .records import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, Snapshot
from .snapshots import check_snapshot_args
from .sqlreads import SQLReads
from .store import Clock, wall_clock_us

FORMAT_VERSION = 1
CHANNEL = "eventstore_appended"
# pg_advisory_xact_lock key that serialises schema creation by concurrent openers.
SCHEMA_LOCK = 0x4F4E4553
SCHEMA = (
    """
    CREATE TABLE events (
        position bigint PRIMARY KEY,
        stream_id text NOT NULL,
        stream_version bigint NOT NULL,
        event_id bytea NOT NULL UNIQUE,
        type text NOT NULL,
        schema_version integer NOT NULL,
        data bytea NOT NULL,
        metadata bytea NOT NULL,
        recorded_at_us bigint NOT NULL,
        hash bytea NOT NULL,
        UNIQUE (stream_id, stream_version)
    )
    """,
    """
    CREATE TABLE snapshots (
        name text NOT NULL,
        position bigint NOT NULL,
        data bytea NOT NULL,
        created_at_us bigint NOT NULL,
        PRIMARY KEY (name, position)
    )
    """,
    "CREATE TABLE eventstore_format (version integer NOT NULL)",
)

RECORD_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, "
    "data, metadata, recorded_at_us, hash"
)
INSERT_RECORDS = (
    f"INSERT INTO events ({RECORD_COLUMNS}) SELECT * FROM unnest("
    "$1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::integer[], "
    "$7::bytea[], $8::bytea[], $9::bigint[], $10::bytea[])"
)
BEGIN_LOCKED = "BEGIN; LOCK TABLE events IN EXCLUSIVE MODE"
# The rows, only if the log still ends at the head this store saw ($11
# position, $12 hash) and the stream is at the version it saw ($13, $14).
INSERT_RECORDS_IF_UNCHANGED = (
    INSERT_RECORDS + " WHERE EXISTS (SELECT 1 FROM (SELECT position, hash FROM events "
    "ORDER BY position DESC LIMIT 1) AS head WHERE head.position = $11 AND head.hash = $12) "
    "AND (SELECT max(stream_version) FROM events WHERE stream_id = $13) "
    "IS NOT DISTINCT FROM $14::bigint"
)
SEEN_STREAMS = 1024  # streams whose last version an append remembers
# Everything an append decides on, in one round trip.
SELECT_FACTS = """
    SELECT
        ARRAY(SELECT (event_id, stream_id, stream_version, position)
              FROM events WHERE event_id = ANY($2::bytea[])),
        (SELECT max(stream_version) FROM events WHERE stream_id = $1),
        head.position, head.hash, head.recorded_at_us
    FROM (VALUES (1)) AS one
    LEFT JOIN LATERAL (
        SELECT position, hash, recorded_at_us FROM events ORDER BY position DESC LIMIT 1
    ) AS head ON true
"""
SELECT_STORED_IDS = (
    "SELECT event_id, stream_id, stream_version, position FROM events "
    "WHERE event_id = ANY($1::bytea[])"
)
SELECT_ALL_PAGE = (
    f"SELECT {RECORD_COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
)
SELECT_AT = f"SELECT {RECORD_COLUMNS} FROM events WHERE position = $1"
SELECT_STREAM_PAGE = (
    f"SELECT {RECORD_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 "
    "ORDER BY stream_version LIMIT $3"
)
SELECT_STREAM_VERSION = "SELECT max(stream_version) FROM events WHERE stream_id = $1"
SELECT_STREAM_VERSIONS = (
    "SELECT stream_id, max(stream_version) FROM events "
    "WHERE stream_id = ANY($1::text[]) GROUP BY stream_id"
)
SELECT_HEAD = "SELECT position, hash, recorded_at_us FROM events ORDER BY position DESC LIMIT 1"
# SQLSTATE classes that mean the connection, not the statement, failed: a
# COMMIT answered with one of these may or may not have committed.
CONNECTION_CLASSES = ("08", "57")


class StaleConnection(StoreUnavailable):
    """The connection was dead before the append's first statement."""


def is_connection_failure(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", "") or "").startswith(CONNECTION_CLASSES)
    # InternalClientError: the driver's protocol was left mid-error by a backend
    # ended under it; the connection is unusable, like a lost one.
    return isinstance(
        error, (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError, TimeoutError)
    )


@contextlib.contextmanager
def postgres_errors(where: str) -> Iterator[None]:
    """Turn the driver's errors into the store's, naming the database."""
    try:
        yield
    except EventStoreError:
        raise
    except Exception as error:
        if is_connection_failure(error):
            raise StoreUnavailable(f"{where}: {describe(error)}") from error
        if isinstance(error, asyncpg.PostgresError):
            raise EventStoreError(f"{where}: {describe(error)}") from error
        raise


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return text


def stored_from_rows(rows: Sequence[Any]) -> dict[uuid.UUID, StoredId]:
    return {
        uuid.UUID(bytes=bytes(event_id)): StoredId(stream_id, version, position)
        for event_id, stream_id, version, position in rows
    }


class PostgreSQLEventStore(SQLReads):
    # Readers are woken by NOTIFY; this is the fallback when one is missed.
    external_poll_interval: float | None = 1.0
    SELECT_ALL_PAGE = SELECT_ALL_PAGE
    SELECT_STREAM_PAGE = SELECT_STREAM_PAGE
    SELECT_AT = SELECT_AT
    SELECT_STREAM_VERSION = SELECT_STREAM_VERSION

    def __init__(
        self,
        url: str,
        pool: asyncpg.Pool,
        *,
        clock: Clock,
        page_size: int,
        timeout: float,
        settle_timeout: float,
        read_only: bool,
        settings: dict[str, str],
    ) -> None:
        super().__init__()
        self.read_only = read_only
        self._settings = settings
        self.url = url
        self.where = redacted(url)
        self._pool = pool
        self._clock = clock
        self._page_size = page_size
        self._timeout = timeout
        self._settle_timeout = settle_timeout
        self._write_lock = anyio.Lock()  # one writer per process waits on the table lock
        # Appends have a connection of their own, not the readers' pool: one
        # that failed is dropped whole, never handed to anyone mid-transaction.
        self._writer: asyncpg.Connection | None = None
        # What the last append saw at the end of the log (see _append_as_last_seen).
        self._last_head: Head | None = None
        self._last_versions: OrderedDict[str, int | None] = OrderedDict()
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        create: bool = True,
        read_only: bool = False,
        clock: Clock = wall_clock_us,
        page_size: int = 1000,
        pool_size: int = 8,
        io_timeout: float = 30.0,
        settle_timeout: float = 30.0,
    ) -> PostgreSQLEventStore:
        """Connect to the store at a postgresql:// URL (making its tables, with
        create, in a database that has none of them).

        io_timeout bounds every connection, statement and lock wait;
        settle_timeout, how long an append whose COMMIT answer was lost keeps
        trying to read its outcome back.

        A database whose tables are not an event store's is refused and left as
        it was; an unreachable server raises StoreUnavailable.
        """
        where = redacted(url)
        # Every statement and lock wait is bounded server-side as well, so a
        # stuck append ends on the server too, not only in this process.
        settings = {
            "lock_timeout": f"{int(io_timeout * 1000)}",
            # A backend whose client vanished mid-transaction holds the table
            # lock: the server ends it if nobody could (see _end_backend).
            "idle_in_transaction_session_timeout": f"{int(io_timeout * 1000)}",
            "application_name": "eventstore",
            # Plans made for the statement's own arguments every time: a generic
            # plan made while the table was small (a sequential scan) would be
            # kept for the connection's life, at a second a query a million in.
            "plan_cache_mode": "force_custom_plan",
        }
        if read_only:
            settings["default_transaction_read_only"] = "on"  # the server refuses writes too
        with postgres_errors(f"cannot connect to {where}"):
            pool = await asyncpg.create_pool(
                url,
                # No floor: a pool that keeps one would retry (and log) in the
                # background through every outage; connections come on demand.
                min_size=0,
                max_size=pool_size,
                timeout=io_timeout,
                command_timeout=io_timeout,
                server_settings=settings,
            )
        store = cls(
            url,
            pool,
            clock=clock,
            page_size=page_size,
            timeout=io_timeout,
            settle_timeout=settle_timeout,
            read_only=read_only,
            settings=settings,
        )
        try:
            with postgres_errors(f"cannot connect to {where}"):
                connection = await pool.acquire()
            try:
                with postgres_errors(where):
                    await prepare_schema(connection, where, create=create and not read_only)
            finally:
                await pool.release(connection)
            with postgres_errors(where):
                await store._listen()
        except BaseException:
            await store.close()
            raise
        return store

    # -- waking readers -------------------------------------------------------------

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.url, timeout=self._timeout)
        await listener.add_listener(CHANNEL, self._notified)
        listener.add_termination_listener(self._listener_lost)
        self._listener = listener

    def _notified(self, *_: object) -> None:
        self._signal.fire()

    def _listener_lost(self, *_: object) -> None:
        self._listener = None
        if not self._closed and self._relisten is None:
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        """Listen again once the server is back; readers poll meanwhile."""
        delay = 0.2
        try:
            while not self._closed:
                try:
                    await self._listen()
                except Exception:
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self._signal.fire()  # records committed meanwhile were not notified
                return
        finally:
            self._relisten = None

    # -- writing ----------------------------------------------------------------------

    def _ensure_writable(self) -> None:
        self._ensure_open()
        if self.read_only:
            raise StoreFileError(f"{self.where} was opened read-only")

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        stream_id, batch, expected = validate_append(stream_id, events, expected_version)
        self._ensure_writable()
        ids = [event.event_id.bytes for event in batch]
        async with self._write_lock:
            # Shielded: a cancelled caller waits for the outcome (bounded by the
            # timeouts), so its append is never left unknown to this process.
            with anyio.CancelScope(shield=True), postgres_errors(f"{self.where}: not appended"):
                try:
                    outcome = await self._append_transaction(stream_id, batch, expected, ids)
                except StaleConnection:
                    # A connection the server had closed (it restarted, or ended
                    # idle backends): nothing was sent, so try a fresh one.
                    outcome = await self._append_transaction(stream_id, batch, expected, ids)
        if isinstance(outcome, list):
            self._signal.fire()
            return result_of(outcome)
        return outcome

    async def _append_transaction(
        self,
        stream_id: str,
        batch: list[NewEvent],
        expected: ExpectedVersion,
        ids: list[bytes],
    ) -> list[RecordedEvent] | AppendResult:
        connection = await self._writer_connection()
        backend = connection.get_server_pid()
        stage = "begin"
        try:
            await connection.execute(BEGIN_LOCKED)
            stage = "decide"
            records = await self._append_as_last_seen(connection, stream_id, batch, expected)
            if records is None:
                facts = await connection.fetchrow(SELECT_FACTS, stream_id, ids)
                assert facts is not None  # the query always returns one row
                stored, version, *head = facts
                self._seen(head_of(head), stream_id, version)
                retry = resolve_stored_ids(stream_id, batch, stored_from_rows(stored))
                if retry is not None:
                    await connection.execute("ROLLBACK")
                    return retry  # an exact retry: nothing to write
                check_expected_version(stream_id, expected, version)
                records = build_records(stream_id, batch, version, head_of(head), self._clock())
                await connection.execute(INSERT_RECORDS, *columns_of(records))
            stage = "commit"
            await connection.execute(f"NOTIFY {CHANNEL}; COMMIT")
            last = records[-1]
            self._seen(
                Head(last.position, last.hash, last.recorded_at_us), stream_id, last.stream_version
            )
            return records
        except EventStoreError:
            # Refused by the rules (a wrong expected version, a duplicate id):
            # the connection is sound and stays.
            try:
                await connection.execute("ROLLBACK")
            except Exception:
                self._drop_writer()
            raise
        except BaseException as error:
            # The connection may be mid-transaction: close it, which rolls back
            # anything uncommitted; the next append connects afresh.
            self._drop_writer()
            self._last_head = None
            if not is_connection_failure(error):
                raise
            if stage == "commit":  # a lost answer, or no answer in time
                return await self._settle(stream_id, batch, ids, backend, error)
            if stage == "begin" and not isinstance(error, TimeoutError):
                raise StaleConnection(f"{self.where}: not appended: {describe(error)}") from error
            # The backend may live on in its transaction, holding the table lock
            # that every writer waits on: end it now, not when the server notices.
            with contextlib.suppress(Exception):
                await self._end_backend(backend)
            raise

    async def _append_as_last_seen(
        self,
        connection: asyncpg.Connection,
        stream_id: str,
        batch: list[NewEvent],
        expected: ExpectedVersion,
    ) -> list[RecordedEvent] | None:
        """The common case in three round trips, not four: when this store
        wrote or read the head and the stream last, the rows are built on
        what it saw and inserted only if the log still ends there (checked by
        the INSERT itself, under the lock). None: decide on fresh facts."""
        head, known = self._last_head, stream_id in self._last_versions
        if head is None or head.position == 0 or not known:
            return None
        version = self._last_versions[stream_id]
        try:
            check_expected_version(stream_id, expected, version)
        except WrongExpectedVersion:
            return None  # perhaps only what was seen is old: ask the log
        records = build_records(stream_id, batch, version, head, self._clock())
        try:
            status = await connection.execute(
                INSERT_RECORDS_IF_UNCHANGED,
                *columns_of(records), head.position, head.hash, stream_id, version,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            # An id stored already: an exact retry, or a duplicate. The fresh
            # path tells which, in a new transaction (this one is aborted).
            self._last_head = None
            await connection.execute("ROLLBACK")
            await connection.execute(BEGIN_LOCKED)
            return None
        if status.rsplit(" ", 1)[-1] == "0":
            self._last_head = None  # another writer appended since
            return None
        return records

    def _seen(self, head: Head, stream_id: str, version: int | None) -> None:
        self._last_head = head
        self._last_versions[stream_id] = version
        self._last_versions.move_to_end(stream_id)
        if len(self._last_versions) > SEEN_STREAMS:
            self._last_versions.popitem(last=False)

    async def _writer_connection(self) -> asyncpg.Connection:
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(
                self.url,
                timeout=self._timeout,
                command_timeout=self._timeout,
                server_settings=self._settings,
            )
        return self._writer

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.terminate()

    async def _settle(
        self,
        stream_id: str,
        batch: list[NewEvent],
        ids: list[bytes],
        backend: int,
        error: BaseException,
    ) -> AppendResult:
        """Find out whether a COMMIT whose answer was lost took effect."""
        deadline = time.monotonic() + self._settle_timeout
        delay = 0.1
        while True:
            try:
                stored = await self._stored_after(backend, ids)
                break
            except Exception as retry_error:
                if not is_connection_failure(retry_error) or time.monotonic() > deadline:
                    raise AppendOutcomeUnknown(
                        f"{self.where}: the connection was lost while the append to "
                        f"{stream_id!r} committed ({describe(error)}), and the outcome "
                        f"could not be read back ({describe(retry_error)}); append the "
                        "same events again (same ids) to settle it"
                    ) from retry_error
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
        retry = resolve_stored_ids(stream_id, batch, stored)
        if retry is not None:
            self._signal.fire()
            return retry
        raise StoreUnavailable(
            f"{self.where}: the connection was lost during the append to {stream_id!r} "
            f"({describe(error)}); it was not written"
        ) from error

    async def _end_backend(
        self, backend: int, connection: asyncpg.Connection | None = None
    ) -> None:
        """End a backend whose client connection was lost (ours: same user)."""
        own = connection is None
        if connection is None:
            connection = await asyncpg.connect(self.url, timeout=self._timeout)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = $1 AND usename = current_user",
                backend,
            )
        finally:
            if own:
                await connection.close()

    async def _stored_after(self, backend: int, ids: list[bytes]) -> dict[uuid.UUID, StoredId]:
        connection = await asyncpg.connect(self.url, timeout=self._timeout)
        try:
            # The old backend may still be alive (the network, not the server,
            # failed): end it so it cannot commit after we look; the lock then
            # waits for it to be gone.
            await self._end_backend(backend, connection)
            async with connection.transaction():
                await connection.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                rows = await connection.fetch(SELECT_STORED_IDS, ids)
            return stored_from_rows(rows)
        finally:
            await connection.close()

    async def import_records(self, records: Sequence[RecordedEvent]) -> None:
        batch = list(records)
        self._ensure_writable()
        streams = sorted({record.stream_id for record in batch})
        async with self._write_lock:
            with anyio.CancelScope(shield=True), postgres_errors(f"{self.where}: not imported"):
                connection = await self._writer_connection()
                try:
                    async with connection.transaction():
                        await connection.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                        row = await connection.fetchrow(SELECT_HEAD)
                        versions: dict[str, int | None] = dict.fromkeys(streams)
                        for stream, version in await connection.fetch(
                            SELECT_STREAM_VERSIONS, streams
                        ):
                            versions[stream] = version
                        check_import(
                            batch, head_of(tuple(row) if row else (None, None, None)), versions
                        )
                        await connection.execute(INSERT_RECORDS, *columns_of(batch))
                        await connection.execute(f"NOTIFY {CHANNEL}")
                    self._last_head = None  # appends read the head afresh
                except EventStoreError:
                    raise
                except BaseException:
                    self._drop_writer()  # an import is re-run whole: no settling
                    raise
        self._signal.fire()

    async def save_snapshot(self, name: str, position: int, data: bytes) -> Snapshot:
        self._ensure_writable()
        snapshot = Snapshot(name, position, data, self._clock())
        with postgres_errors(self.where):
            async with self._pool.acquire() as connection, connection.transaction():
                head = await connection.fetchval("SELECT coalesce(max(position), 0) FROM events")
                check_snapshot_args(name, position, data, head=int(head))
                await connection.execute(
                    "INSERT INTO snapshots (name, position, data, created_at_us) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (name, position) "
                    "DO UPDATE SET data = excluded.data, created_at_us = excluded.created_at_us",
                    name,
                    position,
                    data,
                    snapshot.created_at_us,
                )
        return snapshot

    async def delete_snapshots(self, name: str) -> int:
        self._ensure_writable()
        with postgres_errors(self.where):
            status = await self._pool.execute("DELETE FROM snapshots WHERE name = $1", name)
        return int(status.split()[-1])

    # -- reading ----------------------------------------------------------------------

    async def _rows(self, sql: str, *arguments: object) -> list[Any]:
        self._ensure_open()
        with postgres_errors(self.where):
            return list(await self._pool.fetch(sql, *arguments))

    async def latest_snapshot(self, name: str, max_position: int | None = None) -> Snapshot | None:
        limit = (1 << 62) if max_position is None else max_position
        rows = await self._rows(
            "SELECT name, position, data, created_at_us FROM snapshots "
            "WHERE name = $1 AND position <= $2 ORDER BY position DESC LIMIT 1",
            name,
            limit,
        )
        return Snapshot(*rows[0]) if rows else None

    async def _close_storage(self) -> None:
        async with self._write_lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    await writer.close(timeout=5)
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)
        with contextlib.suppress(Exception):
            await self._pool.close()


def head_of(row: Sequence[Any]) -> Head:
    position, digest, recorded_at_us = row
    if position is None:
        return Head(0, GENESIS_HASH, 0)
    return Head(position, bytes(digest), recorded_at_us)


def columns_of(records: Sequence[RecordedEvent]) -> list[list[Any]]:
    """The records as one array per column, for INSERT ... unnest."""
    rows = [msgspec.structs.astuple(record) for record in records]
    return [list(column) for column in zip(*rows, strict=True)]


async def prepare_schema(
    connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, where: str, *, create: bool
) -> None:
    """Check the database holds an event store of our format, or (with
    create) make one in a database that has none of its tables."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        tables = {row[0] for row in rows}
        ours = {"events", "snapshots", "eventstore_format"}
        if "eventstore_format" in tables:
            version = await connection.fetchval("SELECT max(version) FROM eventstore_format")
            if version != FORMAT_VERSION:
                raise StoreFileError(
                    f"{where} holds an event store of format {version}; "
                    f"this code reads format {FORMAT_VERSION}"
                )
            if not ours <= tables:
                raise CorruptStore(f"{where} is marked as an event store but lacks its tables")
            return
        clash = sorted(ours & tables)
        if clash:
            raise NotAnEventStore(
                f"{where} has table(s) {', '.join(clash)} that are not an event store's "
                "(no eventstore_format table); use another database or schema"
            )
        if not create:
            raise StoreFileError(f"no event store in {where}")
        for statement in SCHEMA:
            await connection.execute(statement)
        await connection.execute("INSERT INTO eventstore_format VALUES ($1)", FORMAT_VERSION)
