"""Copy a log from one store to another, positions and hashes kept: from
SQLite to PostgreSQL and back. An interrupted copy is resumed by running it
again."""

from __future__ import annotations

from .errors import InvalidArgument
from .store import EventStore


async def copy_log(source: EventStore, destination: EventStore) -> int:
    """Copy every record the destination lacks, a page per transaction;
    returns how many were copied. The destination must be empty or hold a
    prefix of the source (an earlier copy cut short)."""
    start = await destination.head_position()
    if start:
        theirs = await source.read_at(start)
        ours = await destination.read_at(start)
        if theirs is None or ours is None or theirs.hash != ours.hash:
            raise InvalidArgument(
                f"the destination holds {start} records that are not the source's first "
                f"{start}; copy into an empty store, or into one an earlier copy left"
            )
    copied = 0
    async for page in source.read_all_pages(start + 1):
        await destination.import_records(page)
        copied += len(page)
    return copied
