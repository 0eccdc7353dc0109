"""A durable, tamper-evident event store. Independent of oneinfra."""

from typing import TYPE_CHECKING

from .copying import copy_log
from .errors import (
    AppendOutcomeUnknown,
    CorruptLog,
    CorruptStore,
    DuplicateEventId,
    EventStoreError,
    InvalidArgument,
    NotAnEventStore,
    StoreClosed,
    StoreFileError,
    StoreFull,
    StoreUnavailable,
    WrongExpectedVersion,
)
from .locate import open_store
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

if TYPE_CHECKING:
    from .postgresql import PostgreSQLEventStore


def __getattr__(name: str) -> object:
    # The PostgreSQL backend loads its driver (~60 ms) only when asked for.
    if name == "PostgreSQLEventStore":
        from .postgresql import PostgreSQLEventStore

        return PostgreSQLEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANY",
    "AppendOutcomeUnknown",
    "NO_STREAM",
    "AppendResult",
    "CorruptLog",
    "CorruptStore",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "InMemoryEventStore",
    "InvalidArgument",
    "NewEvent",
    "NotAnEventStore",
    "PostgreSQLEventStore",
    "RecordedEvent",
    "SQLiteEventStore",
    "Snapshot",
    "StoreClosed",
    "StoreFileError",
    "StoreFull",
    "StoreUnavailable",
    "StreamState",
    "VerifyReport",
    "WrongExpectedVersion",
    "copy_log",
    "open_store",
]
