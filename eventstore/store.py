"""The interface every backend implements, and what they share on top of it."""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

import anyio

from .errors import StoreClosed
from .hashing import GENESIS_HASH, record_hash
from .planning import validate_non_negative
from .records import (
    ANY,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Snapshot,
    VerifyReport,
)

Clock = Callable[[], int]  # microseconds since the epoch


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class AppendSignal:
    """Wakes subscribers the moment an append commits in this process.

    A waiter takes `current()` before it reads, so an append that commits
    between its read and its wait still wakes it: no lost wake-up.
    """

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def current(self) -> anyio.Event:
        if self._event is None:
            self._event = anyio.Event()
        return self._event

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


class EventStore(abc.ABC):
    """An append-only log of events in streams, chained by hashes.

    Positions are global, from 1 and gap-free; stream versions run from 0 and
    are contiguous per stream. A backend implements storage; subscriptions and
    chain verification are built here on its reads.
    """

    # Seconds between checks for appends made by another process; None when
    # no other process can append (the in-memory store).
    external_poll_interval: float | None = None

    def __init__(self) -> None:
        self._signal = AppendSignal()
        self._closed = False

    # -- what a backend implements ------------------------------------------------

    @abc.abstractmethod
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append a batch atomically, or raise and write nothing."""

    @abc.abstractmethod
    def read_stream(self, stream_id: str, from_version: int = 0) -> AsyncIterator[RecordedEvent]:
        """One stream's records from a version, in order, page by page."""

    @abc.abstractmethod
    def read_all_pages(self, from_position: int = 1) -> AsyncIterator[list[RecordedEvent]]:
        """Every record from a position, in global order, a page at a time: the
        fastest way to fold a long log (no per-record await)."""

    @abc.abstractmethod
    async def read_at(self, position: int) -> RecordedEvent | None:
        """The record at a position, None if there is none: one record read
        (a page read for one record costs a page)."""

    @abc.abstractmethod
    async def head_position(self) -> int:
        """The last position stored, 0 for an empty log."""

    @abc.abstractmethod
    async def current_version(self, stream_id: str) -> int | None:
        """The stream's last version, None when it has no event."""

    @abc.abstractmethod
    async def save_snapshot(self, name: str, position: int, data: bytes) -> Snapshot:
        """Store a projection's state at a position (replacing one at the same key)."""

    @abc.abstractmethod
    async def latest_snapshot(self, name: str, max_position: int | None = None) -> Snapshot | None:
        """The newest snapshot of a name at or before max_position."""

    @abc.abstractmethod
    async def delete_snapshots(self, name: str) -> int:
        """Drop every snapshot of a name; returns how many."""

    @abc.abstractmethod
    async def import_records(self, records: Sequence[RecordedEvent]) -> None:
        """Store records copied verbatim from another log (positions, times and
        hashes kept), atomically. They must continue this log (planning's
        check_import), or CorruptLog is raised and nothing is written."""

    @abc.abstractmethod
    async def _close_storage(self) -> None:
        """Release the backend's resources."""

    # -- shared behaviour ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreClosed("the event store is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signal.fire()  # subscribers wake and see the store closed
        await self._close_storage()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def read_all(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Every record from a position, in global order; memory stays a page."""
        async for page in self.read_all_pages(from_position):
            for record in page:
                yield record

    async def subscribe(self, from_position: int = 1) -> AsyncIterator[RecordedEvent]:
        """Yield the stored records from a position, then each new one as it commits.

        Catch-up and live delivery are one loop over read_all from the next
        position, so the hand-over can neither skip nor repeat a record.
        Raises StoreClosed when the store is closed.
        """
        next_position = validate_non_negative("from position", from_position, minimum=1)
        while True:
            self._ensure_open()
            appended = self._signal.current()
            caught_up = True
            async for record in self.read_all(next_position):
                caught_up = False
                next_position = record.position + 1
                yield record
            if caught_up:
                with anyio.move_on_after(self.external_poll_interval):
                    await appended.wait()

    async def verify(
        self, from_position: int = 1, previous_hash: bytes = GENESIS_HASH
    ) -> VerifyReport:
        """Walk the chain and report the first record that does not match:
        the whole of it by default, or from a position on, given the hash of
        the record before it (as a verified earlier walk left it)."""
        expected_position = validate_non_negative("from_position", from_position, minimum=1)
        checked = 0

        def broken(position: int, reason: str) -> VerifyReport:
            return VerifyReport(
                ok=False,
                records_checked=checked,
                head_position=expected_position - 1,
                head_hash=previous_hash.hex(),
                first_bad_position=position,
                reason=reason,
            )

        async for record in self.read_all(expected_position):
            if record.position != expected_position:
                return broken(
                    expected_position,
                    f"record {expected_position} is missing "
                    f"(the next stored record is {record.position})",
                )
            if record_hash(previous_hash, record) != record.hash:
                return broken(
                    record.position,
                    "the stored hash does not match the record's content "
                    "and the previous record's hash",
                )
            previous_hash = record.hash
            expected_position += 1
            checked += 1
        return VerifyReport(
            ok=True,
            records_checked=checked,
            head_position=expected_position - 1,
            head_hash=previous_hash.hex(),
        )

    async def check_anchor(self, position: int, hash_hex: str) -> str | None:
        """None if the log holds, at `position`, a record whose hash is
        `hash_hex` (a head kept elsewhere: what a hash chain alone cannot
        show, its newest records removed); otherwise what is wrong."""
        validate_non_negative("position", position, minimum=1)
        head = await self.head_position()
        if head < position:
            return (
                f"the log ends at position {head}, before the anchor {position}: "
                f"{position - head} record(s) at its end are missing"
            )
        record = await self.read_at(position)
        if record is None or record.hash.hex() != hash_hex.lower():
            found = record.hash.hex() if record is not None else "nothing"
            return (
                f"the record at position {position} has hash {found}, not the anchor's {hash_hex}"
            )
        return None
