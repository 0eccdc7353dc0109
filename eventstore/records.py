"""The values the event store takes and gives back."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import msgspec


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    ANY = "any"
    NO_STREAM = "no_stream"


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM

# An exact stream version (the version of its last event, from 0), or a StreamState.
ExpectedVersion = int | StreamState


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. `data` and `metadata` are opaque bytes to the store."""

    type: str
    data: bytes
    metadata: bytes = b""
    schema_version: int = 1
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored: its place in the log and the hash that chains it.

    Field order matches the storage row so a row builds a record positionally.
    """

    position: int  # global, from 1, gap-free
    stream_id: str
    stream_version: int  # within the stream, from 0, contiguous
    event_id: uuid.UUID
    type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at_us: int  # microseconds since the epoch, UTC; non-decreasing by position
    hash: bytes  # SHA-256 over the previous record's hash and this record

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
