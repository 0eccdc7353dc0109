"""append: atomic batches, expected versions, idempotent retries, bad input."""

from __future__ import annotations

import uuid

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    DuplicateEventId,
    EventStore,
    InvalidArgument,
    NewEvent,
    WrongExpectedVersion,
)

from .conftest import all_records, event

pytestmark = pytest.mark.anyio


async def test_positions_are_global_and_versions_per_stream(store: EventStore) -> None:
    await store.append("a", [event(), event()], NO_STREAM)
    await store.append("b", [event()], NO_STREAM)
    result = await store.append("a", [event()], 1)
    assert result.first_position == result.last_position == 4
    assert result.stream_version == 2
    assert await all_records(store) == [(1, "a", 0), (2, "a", 1), (3, "b", 0), (4, "a", 2)]
    assert await store.head_position() == 4
    assert await store.current_version("a") == 2
    assert await store.current_version("missing") is None


async def test_a_batch_is_stored_with_its_fields(store: EventStore) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    await store.append(
        "s",
        [
            NewEvent(
                type="A", data=b"\x00one", metadata=b"meta", schema_version=3, event_id=ids[0]
            ),
            NewEvent(type="B", data=b"two", event_id=ids[1]),
        ],
    )
    first, second = [r async for r in store.read_stream("s")]
    assert (first.type, first.data, first.metadata, first.schema_version) == (
        "A",
        b"\x00one",
        b"meta",
        3,
    )
    assert (second.type, second.data, second.metadata, second.schema_version) == (
        "B",
        b"two",
        b"",
        1,
    )
    assert [first.event_id, second.event_id] == ids
    assert len(first.hash) == 32 and first.hash != second.hash
    assert first.recorded_at_us <= second.recorded_at_us


async def test_wrong_expected_version_names_stream_expected_and_actual(store: EventStore) -> None:
    await store.append("orders", [event(), event()], NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append("orders", [event()], 0)
    error = raised.value
    assert (error.stream_id, error.expected, error.actual) == ("orders", 0, 1)
    assert "'orders'" in str(error) and "version 0" in str(error) and "version 1" in str(error)
    assert await store.head_position() == 2


async def test_no_stream_refuses_an_existing_stream(store: EventStore) -> None:
    await store.append("s", [event()], NO_STREAM)
    with pytest.raises(WrongExpectedVersion, match="expected no stream, but the stream is at"):
        await store.append("s", [event()], NO_STREAM)
    assert await store.head_position() == 1


async def test_exact_version_on_a_missing_stream_is_refused(store: EventStore) -> None:
    with pytest.raises(WrongExpectedVersion, match="at no stream") as raised:
        await store.append("s", [event()], 0)
    assert raised.value.actual is None
    assert await store.head_position() == 0


async def test_any_appends_whatever_the_version(store: EventStore) -> None:
    await store.append("s", [event()], ANY)
    await store.append("s", [event()], ANY)
    assert await store.current_version("s") == 1


async def test_a_refused_batch_writes_none_of_its_events(store: EventStore) -> None:
    await store.append("s", [event()], NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append("s", [event() for _ in range(10)], 5)
    assert await all_records(store) == [(1, "s", 0)]


async def test_exact_retry_of_an_append_is_not_stored_twice(store: EventStore) -> None:
    batch = [event(b"1"), event(b"2")]
    first = await store.append("s", batch, NO_STREAM)
    await store.append("other", [event()])
    # The retry carries the same expected version, now stale: still a success.
    again = await store.append("s", batch, NO_STREAM)
    assert again == first
    assert await store.head_position() == 3
    assert await store.current_version("s") == 1


async def test_a_partly_stored_batch_is_refused_as_duplicate(store: EventStore) -> None:
    stored = event()
    await store.append("s", [stored])
    with pytest.raises(DuplicateEventId, match=str(stored.event_id)):
        await store.append("s", [stored, event()])
    with pytest.raises(DuplicateEventId):
        await store.append("elsewhere", [stored])  # same id, other stream
    assert await store.head_position() == 1


async def test_an_id_twice_in_one_batch_is_invalid(store: EventStore) -> None:
    same = uuid.uuid4()
    with pytest.raises(InvalidArgument, match="appears twice"):
        await store.append("s", [event(event_id=same), event(event_id=same)])
    assert await store.head_position() == 0


@pytest.mark.parametrize(
    ("stream_id", "events", "expected", "message"),
    [
        ("", [NewEvent(type="T", data=b"")], ANY, "stream id must not be empty"),
        (42, [NewEvent(type="T", data=b"")], ANY, "stream id must be a string, got int"),
        ("s\n", [NewEvent(type="T", data=b"")], ANY, "control characters"),
        ("x" * 513, [NewEvent(type="T", data=b"")], ANY, "limit is 512"),
        ("s", [], ANY, "at least one event"),
        ("s", NewEvent(type="T", data=b""), ANY, "must be a sequence of NewEvent"),
        ("s", ["not an event"], ANY, "event 0 must be a NewEvent, got str"),
        ("s", [NewEvent(type="", data=b"")], ANY, "type must be a non-empty string"),
        ("s", [NewEvent(type="T", data="text")], ANY, "data must be bytes, got str"),  # type: ignore[arg-type]
        ("s", [NewEvent(type="T", data=b"", metadata={})], ANY, "metadata must be bytes"),  # type: ignore[arg-type]
        (
            "s",
            [NewEvent(type="T", data=b"", schema_version=0)],
            ANY,
            "schema version must be at least 1",
        ),
        ("s", [NewEvent(type="T", data=b"", event_id="x")], ANY, "event id must be a UUID"),  # type: ignore[arg-type]
        ("s", [NewEvent(type="T", data=b"")], -1, "expected version must be at least 0"),
        ("s", [NewEvent(type="T", data=b"")], True, "expected version must be"),
        ("s", [NewEvent(type="T", data=b"")], "any", "expected version must be"),
    ],
)
async def test_bad_input_is_refused_clearly_and_writes_nothing(
    store: EventStore, stream_id: object, events: object, expected: object, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await store.append(stream_id, events, expected)  # type: ignore[arg-type]
    assert await store.head_position() == 0


async def test_recorded_at_never_goes_backwards_when_the_clock_does(make_store) -> None:  # type: ignore[no-untyped-def]
    times = iter([5_000_000, 1_000_000, 7_000_000])
    store = await make_store(clock=lambda: next(times))
    for _ in range(3):
        await store.append("s", [event()])
    assert [r.recorded_at_us async for r in store.read_all()] == [5_000_000, 5_000_000, 7_000_000]
