"""The status transitions the board hands out, appended to the log's status
stream by one task: a batch per observation, the reconciler as its actor."""

from __future__ import annotations

import logging
import uuid

import anyio
import msgspec

from eventstore import ANY, EventStore, NewEvent

from ..model import events as ev
from ..model.metadata import Metadata
from .board import StatusBoard

log = logging.getLogger("oneinfra.reconciler")


def batch_metadata() -> bytes:
    batch = str(uuid.uuid4())  # what the reconciler saw together
    return msgspec.json.encode(
        Metadata(actor=None, command="reconciler", correlation_id=batch, causation_id=batch)
    )


async def write_status(store: EventStore, board: StatusBoard, retry_after: float) -> None:
    """Forever: every transition on the board, appended; a failed append is
    retried, its transitions kept first in line."""
    while True:
        while events := board.take_outbox():
            metadata = batch_metadata()
            records = []
            for event in events:
                kind, version, data = ev.encode(event)
                records.append(
                    NewEvent(type=kind, data=data, metadata=metadata, schema_version=version)
                )
            try:
                await store.append(ev.STATUS_STREAM, records, ANY)
            except Exception:
                log.exception("recording %d status transitions failed", len(records))
                board.outbox[:0] = events
                await anyio.sleep(retry_after)
        await board.changed()
