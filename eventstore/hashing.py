"""The hash chain: each record's hash covers the previous hash and the record.

The canonical encoding is a MessagePack array of the record's fields in a fixed
order (the event id as its 16 raw bytes); MessagePack is specified and msgspec
always writes the smallest form, so any language can recompute the chain.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from .records import RecordedEvent

GENESIS_HASH = bytes(32)

_encode = msgspec.msgpack.Encoder().encode


def canonical_encoding(
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: bytes,
    type: str,
    schema_version: int,
    data: bytes,
    metadata: bytes,
    recorded_at_us: int,
) -> bytes:
    return _encode(
        (
            position,
            stream_id,
            stream_version,
            event_id,
            type,
            schema_version,
            data,
            metadata,
            recorded_at_us,
        )
    )


def chain_hash(previous_hash: bytes, encoded_record: bytes) -> bytes:
    return hashlib.sha256(previous_hash + encoded_record).digest()


def record_hash(previous_hash: bytes, record: RecordedEvent) -> bytes:
    """What a stored record's hash must be, chained onto the one before it."""
    encoded = canonical_encoding(
        record.position,
        record.stream_id,
        record.stream_version,
        record.event_id_bytes,
        record.type,
        record.schema_version,
        record.data,
        record.metadata,
        record.recorded_at_us,
    )
    return chain_hash(previous_hash, encoded)
