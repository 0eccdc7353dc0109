"""A durable, tamper-evident event store. Independent of oneinfra."""

from .errors import (
    CorruptStore,
    DuplicateEventId,
    EventStoreError,
    InvalidArgument,
    NotAnEventStore,
    StoreClosed,
    StoreFileError,
    StoreFull,
    WrongExpectedVersion,
)
from .memory import InMemoryEventStore
from .records import (
    ANY,
    NO_STREAM,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Snapshot,
    StreamState,
    VerifyReport,
)
from .sqlite import SQLiteEventStore
from .store import EventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendResult",
    "CorruptStore",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "InMemoryEventStore",
    "InvalidArgument",
    "NewEvent",
    "NotAnEventStore",
    "RecordedEvent",
    "SQLiteEventStore",
    "Snapshot",
    "StoreClosed",
    "StoreFileError",
    "StoreFull",
    "StreamState",
    "VerifyReport",
    "WrongExpectedVersion",
]
