"""The reads of a backend that keeps the log in an SQL table, written once:
pages by key (so no read holds a transaction open across pages), the record
at a position, the head, a stream's version. A backend gives its SQL, in
its placeholder style, and how to run a query."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

from .planning import validate_non_negative, validate_stream_id
from .records import RecordedEvent
from .store import EventStore


def records_from_rows(rows: Iterable[Any]) -> list[RecordedEvent]:
    # Columns are in field order. A damaged value is not checked here: it
    # fails the hash chain, which names its position.
    return [RecordedEvent(*row) for row in rows]


class SQLReads(EventStore):
    # Each takes its arguments in the order the method below passes them.
    SELECT_ALL_PAGE: ClassVar[str]  # position, limit
    SELECT_STREAM_PAGE: ClassVar[str]  # stream, version, limit
    SELECT_AT: ClassVar[str]  # position
    SELECT_STREAM_VERSION: ClassVar[str]  # stream
    SELECT_HEAD_POSITION: ClassVar[str] = "SELECT coalesce(max(position), 0) FROM events"

    _page_size: int

    @abc.abstractmethod
    async def _rows(self, sql: str, *arguments: object) -> list[Any]:
        """A read query's rows, the backend's errors made the store's."""

    async def read_all_pages(self, from_position: int = 1) -> AsyncIterator[list[RecordedEvent]]:
        position = validate_non_negative("from position", from_position, minimum=1)
        while True:
            rows = await self._rows(self.SELECT_ALL_PAGE, position, self._page_size)
            if rows:
                yield records_from_rows(rows)
            if len(rows) < self._page_size:
                return
            position = rows[-1][0] + 1

    async def read_stream(
        self, stream_id: str, from_version: int = 0
    ) -> AsyncIterator[RecordedEvent]:
        validate_stream_id(stream_id)
        version = validate_non_negative("from version", from_version)
        while True:
            rows = await self._rows(self.SELECT_STREAM_PAGE, stream_id, version, self._page_size)
            for record in records_from_rows(rows):
                yield record
            if len(rows) < self._page_size:
                return
            version = rows[-1][2] + 1

    async def read_at(self, position: int) -> RecordedEvent | None:
        position = validate_non_negative("position", position, minimum=1)
        rows = await self._rows(self.SELECT_AT, position)
        return records_from_rows(rows)[0] if rows else None

    async def head_position(self) -> int:
        rows = await self._rows(self.SELECT_HEAD_POSITION)
        return int(rows[0][0])

    async def current_version(self, stream_id: str) -> int | None:
        validate_stream_id(stream_id)
        rows = await self._rows(self.SELECT_STREAM_VERSION, stream_id)
        return None if rows[0][0] is None else int(rows[0][0])
