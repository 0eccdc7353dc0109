"""What the log records beside each event: who sent the command, which
command it was, and the ids that tie a change to its request and cause."""

from __future__ import annotations

import msgspec

# The request headers a client fills them with (apply -f sends both).
CORRELATION_HEADER = "x-correlation-id"
SOURCE_HEADER = "x-oneinfra-source"


class Actor(msgspec.Struct, frozen=True):
    """Who sent a command, from the Unix socket's peer credentials."""

    uid: int
    gid: int
    pid: int
    user: str | None = None


class Metadata(msgspec.Struct, frozen=True, omit_defaults=True):
    actor: Actor | None  # None: the daemon itself (the reconciler's observations)
    command: str
    correlation_id: str
    causation_id: str
    # Where the command came from, when its client says: `apply -f`'s file
    # and document index ("prod.yaml#2"). Absent from the record otherwise.
    source: str | None = None
