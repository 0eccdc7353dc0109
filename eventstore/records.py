"""The values the event store takes and gives back."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import msgspec
import uuid6


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    ANY = "any"
    NO_STREAM = "no_stream"


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM

# An exact stream version (the version of its last event, from 0), or a StreamState.
ExpectedVersion = int | StreamState


def new_event_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so the store's id index only grows at its end
    (random v4 ids make every append rewrite random index pages: 3x slower)."""
    return uuid6.uuid7()


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. `data` and `metadata` are opaque bytes to the store.

    Give `event_id` to make retries idempotent; any UUID works, v7 is fastest.
    """

    type: str
    data: bytes
    metadata: bytes = b""
    schema_version: int = 1
    event_id: uuid.UUID = msgspec.field(default_factory=new_event_id)


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: its place in the log and the hash that chains it.

    Field order matches the storage row so a row builds a record positionally.
    The id is kept as its 16 bytes: building a UUID object costs more than the
    rest of a record together, and replay rarely needs it. gc=False: fields are
    str, int and bytes, so a record can never be in a reference cycle, and
    replay makes millions of them that the cyclic GC need not track.
    """

    position: int  # global, from 1, gap-free
    stream_id: str
    stream_version: int  # within the stream, from 0, contiguous
    event_id_bytes: bytes
    type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at_us: int  # microseconds since the epoch, UTC; non-decreasing by position
    hash: bytes  # SHA-256 over the previous record's hash and this record

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.event_id_bytes)

    @property
    def recorded_at(self) -> datetime:
        return datetime.fromtimestamp(self.recorded_at_us / 1_000_000, tz=UTC)


class AppendResult(msgspec.Struct, frozen=True):
    """What an append stored (or, for an exact retry, had stored before)."""

    first_position: int
    last_position: int
    stream_version: int  # the stream's version after the append


class Snapshot(msgspec.Struct, frozen=True):
    """A projection's state saved at a log position; disposable, outside the chain."""

    name: str
    position: int
    data: bytes
    created_at_us: int


class VerifyReport(msgspec.Struct, frozen=True):
    """The outcome of walking the hash chain."""

    ok: bool
    records_checked: int
    head_position: int
    head_hash: str  # hex; anchor it elsewhere to detect a truncated tail
    first_bad_position: int | None = None
    reason: str | None = None
