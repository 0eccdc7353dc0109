"""Pure rules of an append, shared by every backend so that they cannot drift.

A backend reads the facts (the stream's version, the head, which event ids are
stored) inside its write transaction, and these functions decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .errors import CorruptLog, DuplicateEventId, InvalidArgument, WrongExpectedVersion
from .hashing import canonical_encoding, chain_hash, record_hash
from .records import AppendResult, ExpectedVersion, NewEvent, RecordedEvent, StreamState

MAX_STREAM_ID_LENGTH = 512
MAX_TYPE_LENGTH = 256


class StoredId(NamedTuple):
    """Where an already stored event id sits."""

    stream_id: str
    stream_version: int
    position: int


class Head(NamedTuple):
    """The last record of the log, or the genesis values of an empty log."""

    position: int
    hash: bytes
    recorded_at_us: int


def validate_stream_id(stream_id: object) -> str:
    if not isinstance(stream_id, str):
        raise InvalidArgument(f"stream id must be a string, got {type(stream_id).__name__}")
    if not stream_id:
        raise InvalidArgument("stream id must not be empty")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidArgument(
            f"stream id is {len(stream_id)} characters long; the limit is {MAX_STREAM_ID_LENGTH}"
        )
    if not stream_id.isprintable():
        raise InvalidArgument(f"stream id {stream_id!r} contains control characters")
    return stream_id


def validate_non_negative(name: str, value: object, minimum: int = 0) -> int:
    # bool is an int subclass; True as a position is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}, got {value}")
    return value


def validate_expected_version(expected: object) -> ExpectedVersion:
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool):
        return validate_non_negative("expected version", expected)
    raise InvalidArgument(
        "expected version must be a stream version (an integer from 0), ANY or NO_STREAM, "
        f"got {expected!r}"
    )


def validate_events(events: object) -> list[NewEvent]:
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise InvalidArgument(f"events must be a sequence of NewEvent, got {type(events).__name__}")
    if not events:
        raise InvalidArgument("an append needs at least one event")
    checked: list[NewEvent] = []
    seen: set[uuid.UUID] = set()
    for index, event in enumerate(events):
        where = f"event {index}"
        if not isinstance(event, NewEvent):
            raise InvalidArgument(f"{where} must be a NewEvent, got {type(event).__name__}")
        if not isinstance(event.type, str) or not event.type:
            raise InvalidArgument(f"{where}: type must be a non-empty string")
        if len(event.type) > MAX_TYPE_LENGTH or not event.type.isprintable():
            raise InvalidArgument(
                f"{where}: type must be printable and at most {MAX_TYPE_LENGTH} characters"
            )
        if not isinstance(event.data, bytes):
            raise InvalidArgument(f"{where}: data must be bytes, got {type(event.data).__name__}")
        if not isinstance(event.metadata, bytes):
            raise InvalidArgument(
                f"{where}: metadata must be bytes, got {type(event.metadata).__name__}"
            )
        validate_non_negative(f"{where}: schema version", event.schema_version, minimum=1)
        if not isinstance(event.event_id, uuid.UUID):
            raise InvalidArgument(
                f"{where}: event id must be a UUID, got {type(event.event_id).__name__}"
            )
        if event.event_id in seen:
            raise InvalidArgument(f"{where}: event id {event.event_id} appears twice in the batch")
        seen.add(event.event_id)
        checked.append(event)
    return checked


def validate_append(
    stream_id: object, events: object, expected_version: object
) -> tuple[str, list[NewEvent], ExpectedVersion]:
    """Check an append's arguments before any I/O; raises InvalidArgument."""
    return (
        validate_stream_id(stream_id),
        validate_events(events),
        validate_expected_version(expected_version),
    )


def resolve_stored_ids(
    stream_id: str, events: Sequence[NewEvent], stored: Mapping[uuid.UUID, StoredId]
) -> AppendResult | None:
    """Decide what stored event ids mean for this batch.

    None: none is stored, append as usual. An AppendResult: the batch is an exact
    retry of an earlier append (same ids, same stream, same order, contiguous),
    so it succeeds again without writing. Anything else is a DuplicateEventId.
    """
    if not stored:
        return None
    places = [stored.get(event.event_id) for event in events]
    found = [place for place in places if place is not None]
    exact_retry = len(found) == len(events) and all(
        place.stream_id == stream_id
        and place.stream_version == found[0].stream_version + offset
        and place.position == found[0].position + offset
        for offset, place in enumerate(found)
    )
    if exact_retry:
        return AppendResult(
            first_position=found[0].position,
            last_position=found[-1].position,
            stream_version=found[-1].stream_version,
        )
    raise DuplicateEventId(
        stream_id, [str(event.event_id) for event in events if event.event_id in stored]
    )


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int | None) -> None:
    """actual is the stream's current version, None when the stream has no event."""
    if expected is StreamState.ANY:
        return
    if expected is StreamState.NO_STREAM:
        if actual is not None:
            raise WrongExpectedVersion(stream_id, expected, actual)
        return
    if actual != expected:
        raise WrongExpectedVersion(stream_id, expected, actual)


def build_records(
    stream_id: str,
    events: Sequence[NewEvent],
    stream_version: int | None,
    head: Head,
    now_us: int,
) -> list[RecordedEvent]:
    """The records to store, chained onto the head.

    recorded_at never goes backwards along the log, even if the wall clock
    does, so "the state at time T" is always a prefix of the log.
    """
    recorded_at_us = max(now_us, head.recorded_at_us)
    next_version = 0 if stream_version is None else stream_version + 1
    previous_hash = head.hash
    records: list[RecordedEvent] = []
    for offset, event in enumerate(events):
        position = head.position + 1 + offset
        version = next_version + offset
        event_id = event.event_id.bytes
        encoded = canonical_encoding(
            position,
            stream_id,
            version,
            event_id,
            event.type,
            event.schema_version,
            event.data,
            event.metadata,
            recorded_at_us,
        )
        digest = chain_hash(previous_hash, encoded)
        records.append(
            RecordedEvent(
                position,
                stream_id,
                version,
                event_id,
                event.type,
                event.schema_version,
                event.data,
                event.metadata,
                recorded_at_us,
                digest,
            )
        )
        previous_hash = digest
    return records


def result_of(records: Sequence[RecordedEvent]) -> AppendResult:
    return AppendResult(
        first_position=records[0].position,
        last_position=records[-1].position,
        stream_version=records[-1].stream_version,
    )


def check_import(
    records: Sequence[RecordedEvent], head: Head, stream_versions: Mapping[str, int | None]
) -> None:
    """Check records copied verbatim from another log continue this one: the
    next positions, each hash chaining onto the one before, time never going
    back, each stream's next versions (stream_versions: the stored versions
    of the streams in the batch). Raises CorruptLog naming the first record
    that does not fit."""
    if not records:
        raise InvalidArgument("an import needs at least one record")
    previous, position, recorded_at = head.hash, head.position, head.recorded_at_us
    versions = dict(stream_versions)
    for record in records:
        position += 1
        where = f"record {record.position}"
        if record.position != position:
            raise CorruptLog(f"{where} does not follow position {position - 1}")
        stored = versions.get(record.stream_id)
        expected_version = 0 if stored is None else stored + 1
        if record.stream_version != expected_version:
            raise CorruptLog(
                f"{where}: stream {record.stream_id!r} is at version {expected_version - 1}, "
                f"so its next version is {expected_version}, not {record.stream_version}"
            )
        if record.recorded_at_us < recorded_at:
            raise CorruptLog(f"{where} is recorded before the record it follows")
        if record_hash(previous, record) != record.hash:
            raise CorruptLog(f"{where}: its hash does not chain onto the record before it")
        previous, recorded_at = record.hash, record.recorded_at_us
        versions[record.stream_id] = record.stream_version
