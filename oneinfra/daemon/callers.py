"""Who is calling: the caller's uid, gid and pid from the Unix socket's peer
credentials, and the request's correlation id, made visible to the handler
that serves it (context variables set before each handler runs)."""

from __future__ import annotations

import contextvars
import pwd
import socket
import struct
from typing import Any

from grpclib.events import RecvRequest
from grpclib.protocol import Peer

from ..model.metadata import CORRELATION_HEADER, SOURCE_HEADER, Actor

CALLER: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("caller", default=None)
CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation", default=None
)
SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("source", default=None)
HEADER_MAX = 512  # characters kept of each header: they are the client's to fill


def asked() -> tuple[Actor | None, str | None, str | None]:
    """Who asks, their correlation id and their source: read on the API's
    thread, handed to the main loop with the command."""
    return CALLER.get(), CORRELATION.get(), SOURCE.get()


def actor_from_credentials(uid: int, gid: int, pid: int) -> Actor:
    try:
        user: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = None
    return Actor(uid=uid, gid=gid, pid=pid, user=user)


def peer_actor(peer: Peer) -> Actor | None:
    """The caller's uid, gid and pid from the Unix socket (SO_PEERCRED).

    grpclib offers no public way to the connection's socket: it is taken from
    the transport Peer wraps; tests pin this so an upgrade cannot silently
    drop the caller's identity from the history.
    """
    transport = getattr(peer, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    size = struct.calcsize("3i")
    pid, uid, gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    )
    return actor_from_credentials(uid, gid, pid)


async def remember_caller(event: RecvRequest) -> None:
    """Runs before each handler: the caller becomes visible to it."""
    actor = peer_actor(event.peer)
    correlation = event.metadata.get(CORRELATION_HEADER)
    source = event.metadata.get(SOURCE_HEADER)
    handler = event.method_func

    async def with_caller(stream: Any) -> None:
        CALLER.set(actor)
        CORRELATION.set(str(correlation)[:HEADER_MAX] if correlation else None)
        SOURCE.set(str(source)[:HEADER_MAX] if source else None)
        await handler(stream)

    event.method_func = with_caller
