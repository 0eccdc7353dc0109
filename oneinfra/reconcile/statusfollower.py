"""A daemon standing by shows the fleet as its leader saw it: the status
transitions the leader appends (statuswriter.py), folded into a board of
their own as they commit. The leader's live board is the truth while it
leads; this one is what the others answer with meanwhile."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from eventstore import EventStore, EventStoreError, RecordedEvent, StoreClosed

from ..errors import OneinfraError
from ..model import events as ev
from .board import StatusBoard

RETRY = 1.0  # seconds after the store failed


async def follow_status(
    store: EventStore, board: StatusBoard, on_error: Callable[[Exception], None] | None = None
) -> None:
    """Until cancelled or the store closes: every transition recorded on the
    status stream, in order, onto `board`; through the store's outages."""
    version = 0  # the status stream's next version to fold
    position = 0  # the log's last position looked at
    while True:
        try:
            # What is recorded already, by the stream's own index; then the
            # log as it grows, from where it stood then (or from the last
            # status record, if later).
            position = max(position, await store.head_position())
            async for record in store.read_stream(ev.STATUS_STREAM, version):
                fold(board, record)
                version, position = record.stream_version + 1, max(position, record.position)
            async for record in store.subscribe(position + 1):
                position = record.position
                if record.stream_id == ev.STATUS_STREAM and record.stream_version >= version:
                    fold(board, record)
                    version = record.stream_version + 1
        except StoreClosed:
            return
        except (EventStoreError, OneinfraError) as error:
            if on_error is not None:
                on_error(error)
            await anyio.sleep(RETRY)


def fold(board: StatusBoard, record: RecordedEvent) -> None:
    event = ev.decode(record.type, record.schema_version, record.data)
    board.as_recorded(event, record.recorded_at_us / 1e6)
