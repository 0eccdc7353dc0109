"""Errors raised by the event store. Each message names what is wrong."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base of every error the event store raises on purpose."""


class InvalidArgument(EventStoreError, ValueError):
    """A caller passed something the store cannot accept; nothing was written."""


class WrongExpectedVersion(EventStoreError):
    """An append's expected version did not match the stream; nothing was written."""

    def __init__(self, stream_id: str, expected: object, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        actual_text = "no stream" if actual is None else f"version {actual}"
        super().__init__(
            f"stream {stream_id!r}: expected {describe_expected(expected)}, "
            f"but the stream is at {actual_text}"
        )


class DuplicateEventId(EventStoreError):
    """Some event ids of a batch are stored already, but not as this exact batch."""

    def __init__(self, stream_id: str, event_ids: list[str]) -> None:
        self.stream_id = stream_id
        self.event_ids = event_ids
        shown = ", ".join(event_ids[:5]) + (" ..." if len(event_ids) > 5 else "")
        super().__init__(
            f"stream {stream_id!r}: event id(s) {shown} are already stored, "
            "and the batch is not an exact retry of an earlier append"
        )


class StoreFileError(EventStoreError):
    """The store's file cannot be used; the file was left as it was."""


class StoreFull(StoreFileError):
    """The disk under the store is full: nothing was written; it works again
    once there is space."""


class NotAnEventStore(StoreFileError):
    """The file exists but is not an event store of ours."""


class CorruptStore(StoreFileError):
    """The file is (or became) unreadable as an event store."""


class StoreUnavailable(EventStoreError):
    """The store's server cannot be reached, or the connection to it was lost;
    whatever was being written was not."""


class AppendOutcomeUnknown(EventStoreError):
    """The connection was lost while an append committed, and the outcome
    could not be read back: appending the same events (same ids) again
    settles it, as an exact retry is acknowledged without writing twice."""


class CorruptLog(EventStoreError):
    """Records copied from another log do not continue this one (a gap, a
    broken hash chain, a stream version out of turn); nothing was written."""


class StoreClosed(EventStoreError):
    """The store was closed while, or before, it was used."""


def describe_expected(expected: object) -> str:
    """How an expected version reads in a message."""
    value = getattr(expected, "value", None)
    if value == "any":
        return "any version"
    if value == "no_stream":
        return "no stream"
    return f"version {expected}"
