"""Event store benchmark: oneinfra's store beside the `eventsourcing`
library's recorder, doing the same work in the same run: SQLite files, or
(--backend postgresql) one throwaway PostgreSQL server, fsync on.

Prints JSON lines {"metric", "value", "unit"}; ratios come last (above 1 means
oneinfra is better). Both stores are files in WAL mode with synchronous=FULL
(eventsourcing keeps SQLite's default, which is FULL), so every append is
durable when it returns. Payloads are the same msgspec-encoded bytes and are
decoded with the same msgspec decoder on replay; each side replays through its
page-level read (read_all_pages, select_notifications).

    .venv/bin/python benchmarks/eventstore_bench.py            # full run
    .venv/bin/python benchmarks/eventstore_bench.py --quick    # seconds, for tests
    .venv/bin/python benchmarks/eventstore_bench.py --backend postgresql

On PostgreSQL the same append transaction and page read are also timed on
two drivers, asyncpg (the store's) and psycopg 3 (eventsourcing's).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec
import uuid6

from eventstore import NO_STREAM, EventStore, NewEvent, RecordedEvent, open_store


class ComponentPlaced(msgspec.Struct):
    """A plausible oneinfra event payload (about 100 bytes encoded)."""

    cluster: str
    component: str
    hypervisor: str
    ports: list[int]
    replicas: int


def payload(i: int) -> bytes:
    return msgspec.msgpack.encode(
        ComponentPlaced(
            cluster=f"cluster-{i % 1000:04d}",
            component=f"control-plane-{i % 7}",
            hypervisor=f"hypervisor-{i % 100:03d}",
            ports=[30000 + i % 2000, 32000 + i % 700, 31000 + i % 900],
            replicas=3,
        )
    )


decode = msgspec.msgpack.Decoder(ComponentPlaced).decode


def emit(metric: str, value: float | None, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": value, "unit": unit, **extra}), flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- oneinfra ----------------------------------------------------------------------


async def bench_oneinfra(target: str, sizes: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    async with await open_store(target) as store:
        latencies = []
        for i in range(sizes.single):
            event = NewEvent(type="ComponentPlaced", data=payload(i))
            start = time.perf_counter()
            await store.append("single", [event], NO_STREAM if i == 0 else i - 1)
            latencies.append(time.perf_counter() - start)
        results["append_single_p50_ms"] = statistics.median(latencies) * 1000
        results["append_single_p99_ms"] = percentile(latencies, 0.99) * 1000

        batches = [
            [NewEvent(type="ComponentPlaced", data=payload(b * 100 + i)) for i in range(100)]
            for b in range(sizes.batches)
        ]
        start = time.perf_counter()
        for b, batch in enumerate(batches):
            await store.append(f"batched-{b}", batch, NO_STREAM)
        elapsed = time.perf_counter() - start
        results["append_batched_events_per_s"] = sizes.batches * 100 / elapsed

        results["subscribe_p50_ms"], results["subscribe_wake_p50_ms"] = await subscription_latency(
            store, sizes.subscribe
        )

        head = await store.head_position()
        fill_start = time.perf_counter()
        stream = 0
        while head < sizes.replay:
            count = min(1000, sizes.replay - head)
            batch = [NewEvent(type="ComponentPlaced", data=payload(head + i)) for i in range(count)]
            await store.append(f"fill-{stream}", batch, NO_STREAM)
            head += count
            stream += 1
        results["fill_s"] = time.perf_counter() - fill_start

    # Replay from a freshly opened store, as a daemon does at start.
    async with await open_store(target) as store:
        start = time.perf_counter()
        replayed = 0
        async for page in store.read_all_pages():  # the page API, as for eventsourcing
            for record in page:
                decode(record.data)
            replayed += len(page)
        results["replay_events_per_s"] = replayed / (time.perf_counter() - start)
        results["replayed"] = replayed
    return results


async def subscription_latency(store: EventStore, count: int) -> tuple[float, float]:
    """p50 from the append call to delivery, and from the commit to delivery."""
    called: list[float] = []
    committed: list[float] = []
    delivered: list[float] = []
    first = await store.head_position() + 1
    ready = anyio.Event()

    async def subscriber() -> None:
        ready.set()
        async for record in store.subscribe(first):
            delivered.append(time.perf_counter())
            if record.position == first + count - 1:
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(subscriber)
        await ready.wait()
        await anyio.sleep(0.01)
        for i in range(count):
            called.append(time.perf_counter())
            await store.append("subscribed", [NewEvent(type="Tick", data=payload(i))])
            committed.append(time.perf_counter())
            await anyio.sleep(0.002)  # let the subscriber wait again: measure a wake-up
    from_call = [d - c for c, d in zip(called, delivered, strict=True)]
    from_commit = [max(0.0, d - c) for c, d in zip(committed, delivered, strict=True)]
    return statistics.median(from_call) * 1000, statistics.median(from_commit) * 1000


# -- eventsourcing -----------------------------------------------------------------


def eventsourcing_recorder(target: str) -> tuple[Any, Any]:
    """eventsourcing's application recorder on a file or a PostgreSQL URL."""
    if target.startswith("postgresql://"):
        from urllib.parse import urlsplit

        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        url = urlsplit(target)
        pg_datastore = PostgresDatastore(
            url.path.lstrip("/"), url.hostname or "", url.port or 5432, url.username or "", ""
        )
        return pg_datastore, PostgresApplicationRecorder(pg_datastore)
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(target)
    return datastore, SQLiteApplicationRecorder(datastore)


def bench_eventsourcing(target: str, sizes: argparse.Namespace) -> dict[str, float]:
    from eventsourcing.persistence import StoredEvent

    datastore, recorder = eventsourcing_recorder(target)
    recorder.create_table()
    results: dict[str, float] = {}

    def stored(originator: uuid.UUID, version: int, i: int) -> Any:
        return StoredEvent(
            originator_id=originator, originator_version=version, topic="t", state=payload(i)
        )

    single = uuid.uuid4()
    latencies = []
    for i in range(sizes.single):
        event = stored(single, i, i)
        start = time.perf_counter()
        recorder.insert_events([event])
        latencies.append(time.perf_counter() - start)
    results["append_single_p50_ms"] = statistics.median(latencies) * 1000
    results["append_single_p99_ms"] = percentile(latencies, 0.99) * 1000

    batches = []
    for b in range(sizes.batches):
        originator = uuid.uuid4()
        batches.append([stored(originator, i, b * 100 + i) for i in range(100)])
    start = time.perf_counter()
    for batch in batches:
        recorder.insert_events(batch)
    results["append_batched_events_per_s"] = sizes.batches * 100 / (time.perf_counter() - start)

    head = recorder.max_notification_id() or 0
    fill_start = time.perf_counter()
    while head < sizes.replay:
        count = min(1000, sizes.replay - head)
        originator = uuid.uuid4()
        recorder.insert_events([stored(originator, i, head + i) for i in range(count)])
        head += count
    results["fill_s"] = time.perf_counter() - fill_start
    datastore.close()

    datastore, recorder = eventsourcing_recorder(target)
    start = time.perf_counter()
    replayed, next_id = 0, 1
    while True:
        page = recorder.select_notifications(next_id, 1000)
        if not page:
            break
        for notification in page:
            decode(notification.state)
        replayed += len(page)
        next_id = page[-1].id + 1
    results["replay_events_per_s"] = replayed / (time.perf_counter() - start)
    results["replayed"] = replayed
    datastore.close()
    return results


# -- the floor: SQLite alone -----------------------------------------------------


def bench_sqlite_floor(directory: Path, sizes: argparse.Namespace) -> dict[str, float]:
    """Bare sqlite3 inserting pre-built rows of 100 in each schema, WAL and
    synchronous=FULL, no library code: what any store on this disk pays."""
    from eventstore.sqlite import INSERT_RECORD, SCHEMA

    digest, results = bytes(32), {}
    Row = Callable[[int, int, int], tuple[object, ...]]

    def our_row(new_id: Callable[[], uuid.UUID]) -> Row:
        return lambda p, b, v: (
            p, f"batched-{b}", v, new_id().bytes, "ComponentPlaced", 1, payload(p), b"", 1, digest
        )  # fmt: skip

    schemas: dict[str, tuple[Sequence[str], str, Row]] = {
        "oneinfra_schema": (SCHEMA, INSERT_RECORD, our_row(uuid6.uuid7)),
        # The same with random (v4) event ids: what UUIDv7 ids save.
        "oneinfra_schema_uuid4_ids": (SCHEMA, INSERT_RECORD, our_row(uuid.uuid4)),
        "eventsourcing_schema": (
            [
                "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
                "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
            ],
            "INSERT INTO stored_events VALUES (?, ?, ?, ?)",
            lambda p, b, v: (f"{b:032x}", v, "t", payload(p)),
        ),
    }
    for name, (schema, insert, row) in schemas.items():
        db = sqlite3.connect(directory / f"floor-{name}.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        for statement in schema:
            db.execute(statement)
        batches = [[row(b * 100 + v + 1, b, v) for v in range(100)] for b in range(sizes.batches)]
        start = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, batch)
            db.execute("COMMIT")
        results[f"{name}_batched_events_per_s"] = (
            sizes.batches * 100 / (time.perf_counter() - start)
        )
        db.close()
    return results


# -- the drivers: asyncpg against psycopg 3, same SQL, same server ------------------

DRIVER_IDS = (
    "SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id = ANY({0})"
)
DRIVER_FACTS = (
    "SELECT (SELECT max(stream_version) FROM events WHERE stream_id = {0}), "
    "(SELECT position FROM events ORDER BY position DESC LIMIT 1)"
)


def unnest_insert(mark: Callable[[int], str]) -> str:
    from eventstore.postgresql import RECORD_COLUMNS

    types = [
        "bigint",
        "text",
        "bigint",
        "bytea",
        "text",
        "integer",
        "bytea",
        "bytea",
        "bigint",
        "bytea",
    ]
    arrays = ", ".join(f"{mark(i + 1)}::{kind}[]" for i, kind in enumerate(types))
    return f"INSERT INTO events ({RECORD_COLUMNS}) SELECT * FROM unnest({arrays})"


def driver_batches(sizes: argparse.Namespace) -> list[list[Any]]:
    """Column arrays of pre-built records, single ones then batches of 100."""
    rows: list[list[Any]] = []
    position = 1
    for b in range(sizes.single + sizes.batches):
        count = 1 if b < sizes.single else 100
        batch = [
            (position + i, f"s-{b}", i, uuid6.uuid7().bytes, "ComponentPlaced", 1,
             payload(position + i), b"", 1, bytes(32))
            for i in range(count)
        ]  # fmt: skip
        rows.append([list(column) for column in zip(*batch, strict=True)])
        position += count
    return rows


async def bench_driver(name: str, url: str, sizes: argparse.Namespace) -> dict[str, float]:
    from eventstore.postgresql import SCHEMA, SELECT_ALL_PAGE

    batches = driver_batches(sizes)
    results: dict[str, float] = {}
    if name == "asyncpg":
        import asyncpg

        # As the store does: plans for each call's arguments (see postgresql.py).
        pg = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_custom_plan"})
        for statement in SCHEMA:
            await pg.execute(statement)
        insert, ids, facts = unnest_insert(lambda i: f"${i}"), DRIVER_IDS, DRIVER_FACTS

        async def append(columns: list[Any]) -> None:
            await pg.execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
            await pg.fetch(ids.format("$1::bytea[]"), columns[3])
            await pg.fetchrow(facts.format("$1"), columns[1][0])
            await pg.execute(insert, *columns)
            await pg.execute("COMMIT")

        async def page(position: int) -> list[Any]:
            return list(await pg.fetch(SELECT_ALL_PAGE, position, 1000))

        async def close() -> None:
            await pg.close()
    else:
        import psycopg

        ps = await psycopg.AsyncConnection.connect(
            url, autocommit=True, options="-c plan_cache_mode=force_custom_plan"
        )
        for statement in SCHEMA:
            await ps.execute(statement)
        insert = unnest_insert(lambda i: "%s")
        page_sql = SELECT_ALL_PAGE.replace("$1", "%s").replace("$2", "%s")

        async def append(columns: list[Any]) -> None:
            await ps.execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
            await ps.execute(DRIVER_IDS.format("%s::bytea[]"), (columns[3],))
            await ps.execute(DRIVER_FACTS.format("%s"), (columns[1][0],))
            await ps.execute(insert, columns)
            await ps.execute("COMMIT")

        async def page(position: int) -> list[Any]:
            cursor = ps.cursor(binary=True)
            await cursor.execute(page_sql, (position, 1000))
            return await cursor.fetchall()

        async def close() -> None:
            await ps.close()

    latencies = []
    for columns in batches[: sizes.single]:
        start = time.perf_counter()
        await append(columns)
        latencies.append(time.perf_counter() - start)
    results["append_single_p50_ms"] = statistics.median(latencies) * 1000
    start = time.perf_counter()
    for columns in batches[sizes.single :]:
        await append(columns)
    results["append_batched_events_per_s"] = sizes.batches * 100 / (time.perf_counter() - start)
    start = time.perf_counter()
    replayed, position = 0, 1
    while rows := await page(position):
        for row in rows:
            decode(RecordedEvent(*row).data)
        replayed += len(rows)
        position = rows[-1][0] + 1
    results["replay_events_per_s"] = replayed / (time.perf_counter() - start)
    await close()
    return results


# -- report ------------------------------------------------------------------------

UNITS = {
    "append_single_p50_ms": "ms",
    "append_single_p99_ms": "ms",
    "append_batched_events_per_s": "events/s",
    "subscribe_p50_ms": "ms",
    "subscribe_wake_p50_ms": "ms",
    "replay_events_per_s": "events/s",
    "fill_s": "s",
    "replayed": "events",
    "oneinfra_schema_batched_events_per_s": "events/s",
    "eventsourcing_schema_batched_events_per_s": "events/s",
    "oneinfra_schema_uuid4_ids_batched_events_per_s": "events/s",
}


def report(name: str, results: dict[str, float]) -> None:
    for key, value in results.items():
        emit(f"{name}.{key}", round(value, 4), UNITS[key])


def ratios(ours: dict[str, float], theirs: dict[str, float]) -> None:
    higher_is_better: dict[str, Callable[[float, float], float]] = {
        "replay_events_per_s": lambda a, b: a / b,
        "append_batched_events_per_s": lambda a, b: a / b,
        "append_single_p50_ms": lambda a, b: b / a,
        "append_single_p99_ms": lambda a, b: b / a,
    }
    for key, ratio in higher_is_better.items():
        emit(f"ratio.{key}", round(ratio(ours[key], theirs[key]), 3), "x (oneinfra/eventsourcing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replay", type=int, default=1_000_000, help="events to replay")
    parser.add_argument("--single", type=int, default=1000, help="single appends timed")
    parser.add_argument("--batches", type=int, default=300, help="batches of 100 timed")
    parser.add_argument("--subscribe", type=int, default=300, help="subscription deliveries")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a temp dir)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    sizes = parser.parse_args()
    if sizes.quick:
        sizes.replay, sizes.single, sizes.batches, sizes.subscribe = 3000, 20, 5, 10
    emit("config.replay_events", sizes.replay, "events")
    emit("config.backend", None, "", backend=sizes.backend)
    if sizes.backend == "postgresql":
        bench_postgresql(sizes)
        return
    with tempfile.TemporaryDirectory(dir=sizes.dir) as directory:
        ours = anyio.run(bench_oneinfra, str(Path(directory) / "oneinfra.db"), sizes)
        report("oneinfra", ours)
        theirs = bench_eventsourcing(str(Path(directory) / "eventsourcing.db"), sizes)
        report("eventsourcing", theirs)
        emit("eventsourcing.subscribe_p50_ms", None, "ms", note="no subscriptions on SQLite")
        report("sqlite_floor", bench_sqlite_floor(Path(directory), sizes))
        ratios(ours, theirs)


def bench_postgresql(sizes: argparse.Namespace) -> None:
    """Both stores, and both drivers, each in a database of its own on one
    durable throwaway server (fsync and synchronous_commit on)."""
    from tests.pgserver import running_postgres

    with running_postgres(durable=True) as server:
        ours = anyio.run(bench_oneinfra, server.new_database(), sizes)
        report("oneinfra", ours)
        theirs = bench_eventsourcing(server.new_database(), sizes)
        report("eventsourcing", theirs)
        ratios(ours, theirs)
        drivers = {
            name: anyio.run(bench_driver, name, server.new_database(), sizes)
            for name in ("asyncpg", "psycopg")
        }
        for name, results in drivers.items():
            report(f"driver_{name}", results)
        for key in ("append_batched_events_per_s", "replay_events_per_s"):
            ratio = drivers["asyncpg"][key] / drivers["psycopg"][key]
            emit(f"ratio.driver.{key}", round(ratio, 3), "x (asyncpg/psycopg)")
        single = (
            drivers["psycopg"]["append_single_p50_ms"] / drivers["asyncpg"]["append_single_p50_ms"]
        )
        emit("ratio.driver.append_single_p50_ms", round(single, 3), "x (psycopg/asyncpg)")


if __name__ == "__main__":
    main()
