"""What only the PostgreSQL backend has: a server that can be unreachable,
restarted or cut off mid-append, a database it shares with other tables,
and readers woken by NOTIFY from other processes."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Literal

import anyio
import asyncpg
import pytest

from eventstore import (
    NO_STREAM,
    AppendOutcomeUnknown,
    EventStoreError,
    NewEvent,
    NotAnEventStore,
    PostgreSQLEventStore,
    RecordedEvent,
    StoreFileError,
    StoreUnavailable,
    WrongExpectedVersion,
)
from tests.pgserver import PostgresServer, free_port, running_postgres

from .test_concurrency import start_together

pytestmark = pytest.mark.anyio
Fault = Literal["lose the commit's answer", "drop the commit", "cut before the commit"]


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


def batch_of(size: int, tag: str | None = None) -> tuple[str, list[NewEvent]]:
    """Events that carry their batch's tag and size, so a half batch shows."""
    tag = tag or uuid.uuid4().hex
    metadata = f"{tag}:{size}".encode()
    return tag, [NewEvent(type="T", data=b"x" * 100, metadata=metadata) for _ in range(size)]


async def stored_batches(url: str) -> dict[str, list[int]]:
    """Every batch in the log and its positions; the chain checked first."""
    async with await PostgreSQLEventStore.open(url, create=False) as store:
        report = await store.verify()
        assert report.ok, report
        positions: dict[str, list[int]] = {}
        declared: dict[str, int] = {}
        async for record in store.read_all():
            tag, size = record.metadata.decode().split(":")
            positions.setdefault(tag, []).append(record.position)
            declared[tag] = int(size)
    for tag, where in positions.items():
        assert len(where) == declared[tag], f"batch {tag} is stored in part"
        assert where == list(range(where[0], where[0] + len(where))), f"batch {tag} is split"
    return positions


# -- reaching the server -------------------------------------------------------------


async def test_an_unreachable_server_is_a_clear_error_that_hides_the_password() -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(StoreUnavailable) as raised:
        await PostgreSQLEventStore.open(url, io_timeout=5)
    message = str(raised.value)
    assert f"cannot connect to {url.replace('s3cret', '***')}" in message
    assert "s3cret" not in message


async def test_a_database_whose_events_table_is_not_ours_is_refused_and_left_alone(
    url: str,
) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE TABLE events (id int)")
        with pytest.raises(NotAnEventStore, match="table\\(s\\) events that are not"):
            await PostgreSQLEventStore.open(url)
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert [row[0] for row in tables] == ["events"]
    finally:
        await connection.close()


async def test_other_applications_tables_beside_the_store_are_left_alone(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE customers (id int); INSERT INTO customers VALUES (7)"
        )
        async with await PostgreSQLEventStore.open(url) as store:
            await store.append("s", batch_of(2)[1])
        assert await connection.fetchval("SELECT id FROM customers") == 7
    finally:
        await connection.close()


async def test_a_store_of_another_format_is_refused(url: str) -> None:
    async with await PostgreSQLEventStore.open(url):
        pass
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("UPDATE eventstore_format SET version = 99")
    finally:
        await connection.close()
    with pytest.raises(StoreFileError, match="format 99; this code reads format 1"):
        await PostgreSQLEventStore.open(url)


async def test_opening_without_create_finds_no_store_in_an_empty_database(url: str) -> None:
    with pytest.raises(StoreFileError, match="no event store in"):
        await PostgreSQLEventStore.open(url, create=False)


async def test_a_read_only_store_refuses_writes_and_reads_the_log(url: str) -> None:
    async with await PostgreSQLEventStore.open(url) as writer:
        await writer.append("s", batch_of(3)[1])
    async with await PostgreSQLEventStore.open(url, read_only=True) as reader:
        with pytest.raises(StoreFileError, match="opened read-only"):
            await reader.append("s", batch_of(1)[1])
        assert await reader.head_position() == 3
        assert (await reader.verify()).ok


@pytest.mark.slow
def test_processes_creating_one_store_in_an_empty_database_together_all_succeed(
    url: str,
) -> None:
    outputs = start_together("opener.py", 6, url)
    assert [stdout for stdout, _ in outputs] == ["ok\n"] * 6

    async def check() -> None:
        async with await PostgreSQLEventStore.open(url) as store:
            assert await store.head_position() == 6
            assert (await store.verify()).ok

    anyio.run(check)


# -- readers woken by other processes --------------------------------------------------


async def first_record_after(store: PostgreSQLEventStore, position: int) -> RecordedEvent:
    async for record in store.subscribe(position):
        return record
    raise AssertionError("the subscription ended")


async def test_a_subscriber_is_woken_by_another_store_s_append_not_by_polling(url: str) -> None:
    async with (
        await PostgreSQLEventStore.open(url) as reading,
        await PostgreSQLEventStore.open(url) as writing,
    ):
        reading.external_poll_interval = 3600  # only a notification can wake it in time
        got: list[RecordedEvent] = []

        async def subscribe() -> None:
            got.append(await first_record_after(reading, 1))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:  # ends when the record is had
                tasks.start_soon(subscribe)
                await anyio.sleep(0.3)  # the subscriber has read the empty log and waits
                await writing.append("s", batch_of(1, "woken")[1])
        assert got[0].metadata == b"woken:1"


async def test_a_subscriber_keeps_being_woken_after_its_listener_connection_is_cut(
    url: str,
) -> None:
    async with (
        await PostgreSQLEventStore.open(url) as reading,
        await PostgreSQLEventStore.open(url) as writing,
    ):
        reading.external_poll_interval = 3600
        admin = await asyncpg.connect(url)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
            assert cut == 2  # both stores' listeners
        finally:
            await admin.close()
        await anyio.sleep(1.0)  # the store listens again
        got: list[RecordedEvent] = []

        async def subscribe() -> None:
            got.append(await first_record_after(reading, 1))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(subscribe)
                await anyio.sleep(0.3)
                await writing.append("s", batch_of(1, "after the cut")[1])
        assert got[0].metadata == b"after the cut:1"


# -- a connection lost mid-append --------------------------------------------------------


class FaultyProxy:
    """A TCP hop to the server that, once armed, fails one connection at a
    chosen step of an append: as a network can."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.armed: Fault | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._kept: list[asyncio.StreamWriter] = []
        self._relays: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for task in self._relays:
            task.cancel()
        for writer in self._kept:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._kept.append(server_out)

        async def to_client() -> None:
            while data := await server_in.read(65536):
                if client_out.is_closing():
                    continue  # the client is cut off; the server's answer is lost
                client_out.write(data)
                await client_out.drain()
            client_out.close()  # the server hung up: so does the hop

        self._relays.append(asyncio.ensure_future(to_client()))
        try:
            while data := await client_in.read(65536):
                fault = self._fault_for(data)
                if fault == "lose the commit's answer":
                    server_out.write(data)  # the server commits; its answer never arrives
                    await server_out.drain()
                if fault is not None:
                    # The server's side stays open: a backend that does not know
                    # its client is gone, as after a network failure.
                    client_out.close()
                    return
                server_out.write(data)
                await server_out.drain()
        finally:
            client_out.close()

    def _fault_for(self, data: bytes) -> Fault | None:
        trigger = b"INSERT INTO events" if self.armed == "cut before the commit" else b"COMMIT"
        if self.armed is None or trigger not in data:
            return None
        fault, self.armed = self.armed, None
        return fault


@pytest.fixture
async def proxy(postgres_server: PostgresServer) -> AsyncIterator[FaultyProxy]:
    hop = FaultyProxy(postgres_server.port)
    await hop.start()
    yield hop
    await hop.close()


def through(url: str, proxy: FaultyProxy) -> str:
    return url.replace(f":{proxy.upstream_port}/", f":{proxy.port}/")


async def test_a_commit_whose_answer_is_lost_is_acknowledged_once(
    url: str, proxy: FaultyProxy
) -> None:
    async with await PostgreSQLEventStore.open(through(url, proxy), settle_timeout=10) as store:
        await store.append("s", batch_of(2, "before")[1])
        proxy.armed = "lose the commit's answer"
        result = await store.append("s", batch_of(3, "lost answer")[1])
        assert proxy.armed is None, "the fault did not happen"
        assert (result.first_position, result.last_position) == (3, 5)
        await store.append("s", batch_of(1, "after")[1])
    assert await stored_batches(url) == {"before": [1, 2], "lost answer": [3, 4, 5], "after": [6]}


async def test_a_commit_that_never_reached_the_server_is_refused_and_not_stored(
    url: str, proxy: FaultyProxy
) -> None:
    async with await PostgreSQLEventStore.open(through(url, proxy), settle_timeout=10) as store:
        proxy.armed = "drop the commit"
        # The old backend still holds the table lock: the store ends it to
        # find out, rather than wait for the server to notice the client gone.
        with anyio.fail_after(20), pytest.raises(StoreUnavailable, match="it was not written"):
            await store.append("s", batch_of(3, "dropped")[1])
        await store.append("s", batch_of(1, "after")[1])
    assert await stored_batches(url) == {"after": [1]}


async def test_a_connection_cut_before_the_commit_is_refused_and_the_store_goes_on(
    url: str, proxy: FaultyProxy
) -> None:
    async with await PostgreSQLEventStore.open(through(url, proxy), settle_timeout=10) as store:
        proxy.armed = "cut before the commit"
        with anyio.fail_after(20), pytest.raises(StoreUnavailable, match="not appended"):
            await store.append("s", batch_of(3, "cut")[1])
        await store.append("s", batch_of(1, "after")[1])
    assert await stored_batches(url) == {"after": [1]}


Outcome = Literal["acknowledged", "refused", "unknown"]


async def append_while(
    store: PostgreSQLEventStore,
    outcomes: dict[str, Outcome],
    rng: random.Random,
    enough: anyio.Event,
) -> None:
    while not enough.is_set():
        tag, events = batch_of(rng.randint(1, 20))
        try:
            await store.append(f"stream-{rng.randint(0, 4)}", events)
            outcomes[tag] = "acknowledged"
        except AppendOutcomeUnknown:
            outcomes[tag] = "unknown"
        except StoreUnavailable:
            outcomes[tag] = "refused"


def acknowledged(outcomes: dict[str, Outcome]) -> int:
    return sum(outcome == "acknowledged" for outcome in outcomes.values())


def check_outcomes(outcomes: dict[str, Outcome], stored: dict[str, list[int]]) -> None:
    for tag, outcome in outcomes.items():
        if outcome == "acknowledged":
            assert tag in stored, f"acknowledged batch {tag} is not in the log"
        elif outcome == "refused":
            assert tag not in stored, f"refused batch {tag} is in the log"
    assert set(stored) <= set(outcomes)


@pytest.mark.slow
async def test_backends_ended_at_random_moments_lose_nothing_acknowledged(url: str) -> None:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    outcomes: dict[str, Outcome] = {}
    enough = anyio.Event()
    admin = await asyncpg.connect(url)
    try:
        async with (
            await PostgreSQLEventStore.open(url, settle_timeout=10) as store,
            anyio.create_task_group() as tasks,
        ):
            for _ in range(3):
                tasks.start_soon(append_while, store, outcomes, rng, enough)
            with anyio.fail_after(120):
                while sum(o == "refused" for o in outcomes.values()) < 10 or len(outcomes) < 300:
                    await anyio.sleep(rng.uniform(0, 0.02))
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'eventstore' AND pid <> pg_backend_pid() "
                        "AND datname = current_database()"
                    )
            enough.set()
    finally:
        await admin.close()
    check_outcomes(outcomes, await stored_batches(url))
    assert sum(o == "acknowledged" for o in outcomes.values()) >= 50, f"seed {seed}: {outcomes}"


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["fast stop", "crash"])
async def test_a_server_restarted_under_load_fails_appends_cleanly_and_is_reconnected(
    how: signal.Signals,
) -> None:
    rng = random.Random()
    outcomes: dict[str, Outcome] = {}
    with running_postgres() as server:
        url = server.url()
        async with await PostgreSQLEventStore.open(url, settle_timeout=20) as store:
            enough = anyio.Event()
            async with anyio.create_task_group() as tasks:
                for _ in range(3):
                    tasks.start_soon(append_while, store, outcomes, rng, enough)
                await anyio.sleep(1.0)
                before = acknowledged(outcomes)
                await anyio.to_thread.run_sync(lambda: server.stop(how=how))
                stopped = acknowledged(outcomes)
                await anyio.sleep(1.0)
                while_down = acknowledged(outcomes) - stopped
                await anyio.to_thread.run_sync(server.start)
                resumed = len(outcomes)
                with anyio.fail_after(30):
                    while len(outcomes) < resumed + 50:  # noqa: ASYNC110 (others' count)
                        await anyio.sleep(0.05)
                enough.set()
            assert (await store.verify()).ok
        check_outcomes(outcomes, await stored_batches(url))
    assert before > 0
    assert while_down == 0, "appends were acknowledged while the server was down"
    assert list(outcomes.values())[-40:] == ["acknowledged"] * 40, "not reconnected"


async def test_an_error_from_the_server_is_the_store_s_error_and_names_the_database(
    url: str,
) -> None:
    async with await PostgreSQLEventStore.open(url) as store:
        await store.append("s", batch_of(1)[1])
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("REVOKE ALL ON events FROM PUBLIC; DROP TABLE snapshots")
        finally:
            await connection.close()
        with pytest.raises(EventStoreError, match='relation "snapshots" does not exist'):
            await store.latest_snapshot("fold")


async def test_two_stores_taking_turns_on_one_stream_each_see_the_other_s_appends(
    url: str,
) -> None:
    # Each store builds on the head it saw last; the other's appends make that
    # stale, and the append must then decide on the log, not on what it saw.
    async with (
        await PostgreSQLEventStore.open(url) as first,
        await PostgreSQLEventStore.open(url) as second,
    ):
        for version in range(20):
            store = (first, second)[version % 2]
            expected = version - 1 if version else NO_STREAM
            result = await store.append("turns", batch_of(1)[1], expected)
            assert (result.first_position, result.stream_version) == (version + 1, version)
            with pytest.raises(WrongExpectedVersion):
                await (second, first)[version % 2].append("turns", batch_of(1)[1], expected)
        events = batch_of(2, "retried")[1]
        done = await first.append("other", events)
        assert await second.append("other", events) == done  # an exact retry, through the other
        assert await first.append("other", events) == done
        assert (await first.verify()).ok
    assert len(await stored_batches(url)) == 21


async def test_a_url_far_too_long_is_refused_in_one_short_line() -> None:
    url = f"postgresql://{'a' * 100_000}:secret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(StoreUnavailable) as raised:
        await PostgreSQLEventStore.open(url, io_timeout=5)
    message = str(raised.value)
    assert "secret" not in message and "\n" not in message
    assert len(message) < 400 and "characters)" in message
