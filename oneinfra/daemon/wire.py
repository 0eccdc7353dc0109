"""What the socket lets through: the limits grpclib does not set itself, so
that no caller, however hostile, stalls the daemon or locks others out.

- A request is read only once its declared length is known to be within
  MAX_MESSAGE: a larger one is refused (RESOURCE_EXHAUSTED) unread, and
  HTTP/2's flow control stops its sender within one window.
- Connections per peer uid are capped (at the cap, the uid's longest idle
  one makes way), idle ones (no stream, no data for IDLE_AFTER) are closed,
  and a connection whose replies pile up unread (SETTINGS acknowledgements
  it never reads) is closed past MAX_UNREAD.
- HTTP/2 frames of unknown types are ignored, as RFC 9113 says, instead of
  ending the connection with a traceback.
- The soft limit on open files is raised to the hard one, and accept()
  failing (no file descriptors left) is logged once in a while, not once a
  try.

grpclib offers no public hook for these: the classes below build on its
H2Protocol and Server, and tests pin what they rely on.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
import time
from collections import Counter
from typing import Any

import h2.events
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Handler, Server, Stream

log = logging.getLogger("oneinfra.api")

MAX_MESSAGE = 4 * 1024 * 1024  # bytes of one request
MAX_CONNECTIONS_PER_UID = 256
IDLE_AFTER = 120.0  # seconds without a stream or a byte
MAX_UNREAD = 4 * 1024 * 1024  # bytes of replies a peer leaves unread
LOG_EVERY = 10.0  # seconds between two lines about failing accepts

# Events grpclib has no handler for, which end the connection with a
# traceback: none of them needs an answer from a server.
IGNORED_EVENTS = (h2.events.UnknownFrameReceived, h2.events.AlternativeServiceAvailable)


def peer_uid(transport: asyncio.BaseTransport) -> int | None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    size = struct.calcsize("3i")
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    return int(uid)


class Seldom:
    """A log line said at most once in LOG_EVERY seconds, with how many
    were left unsaid in between: a flood of refusals writes a line, not MBs."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self.last = -every
        self.suppressed = 0

    def say(self, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since)" if self.suppressed else ""
        log.log(level, message + more, *args)
        self.last, self.suppressed = now, 0


class Connections:
    """The open connections, by peer uid, and when each last did anything."""

    def __init__(self, per_uid: int = MAX_CONNECTIONS_PER_UID) -> None:
        self.per_uid = per_uid
        self.by_uid: Counter[int | None] = Counter()
        self.open: set[GuardedProtocol] = set()
        self.refusals = Seldom()
        self.closings = Seldom()  # a flood of idle connections closed is a line, not one each

    def admit(self, protocol: GuardedProtocol) -> bool:
        """Room for a new connection of its uid: at the cap, the uid's
        connection idle the longest makes way (so that a peer holding idle
        connections never locks its own user out); with none idle, no."""
        if self.by_uid[protocol.uid] >= self.per_uid:
            now = time.monotonic()
            idle = [p for p in self.open if p.uid == protocol.uid and p.idle_since(now) > 0]
            if not idle:
                return False
            oldest = max(idle, key=lambda p: p.idle_since(now))
            oldest.close("its uid is at the limit of connections, and it was idle the longest")
            self.forget(oldest)
        self.by_uid[protocol.uid] += 1
        self.open.add(protocol)
        return True

    def forget(self, protocol: GuardedProtocol) -> None:
        if protocol in self.open:
            self.open.discard(protocol)
            self.by_uid[protocol.uid] -= 1

    def close_idle(self, idle_after: float) -> int:
        now = time.monotonic()
        idle = [p for p in self.open if p.idle_since(now) > idle_after]
        for protocol in idle:
            protocol.close("idle")
        return len(idle)


class GuardedProtocol(H2Protocol):
    def __init__(self, connections: Connections, *args: Any) -> None:
        super().__init__(*args)
        self.connections = connections
        self.uid: int | None = None
        self.refused = False
        self.last_activity = time.monotonic()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.uid = peer_uid(transport)
        if not self.connections.admit(self):
            self.refused = True
            self.connections.refusals.say(
                logging.WARNING, "refused a connection: uid %s has %d open, none idle",
                self.uid, self.connections.per_uid,
            )  # fmt: skip
            transport.close()
            return
        super().connection_made(transport)
        for event in IGNORED_EVENTS:
            self.processor.processors[event] = ignore

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.last_activity = time.monotonic()
        super().data_received(data)
        transport = self._transport
        unread = isinstance(transport, asyncio.WriteTransport) and (
            transport.get_write_buffer_size() > MAX_UNREAD
        )
        if unread:
            self.close("it leaves its replies unread")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.connections.forget(self)
        if not self.refused:
            super().connection_lost(exc)

    def idle_since(self, now: float) -> float:
        """Seconds since it last did anything, 0 while a call is open."""
        if self.refused or self.processor.streams:
            return 0.0
        return now - self.last_activity

    def close(self, why: str) -> None:
        self.connections.closings.say(
            logging.INFO, "closing a connection of uid %s: %s", self.uid, why
        )
        if self._transport is not None:
            self._transport.close()


def ignore(event: object) -> None:
    pass


def connections_per_uid() -> int:
    """The cap, within what the open-file limit leaves: half of it, less
    the daemon's own files, so that another user always finds room."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(8, min(MAX_CONNECTIONS_PER_UID, (soft - 64) // 2))


class GuardedServer(Server):
    """grpclib's server, its connections made by GuardedProtocol."""

    def __init__(self, handlers: Any, connections: Connections | None = None) -> None:
        super().__init__(handlers)
        self.connections = connections or Connections(connections_per_uid())

    def _protocol_factory(self) -> H2Protocol:
        self.__gc_step__()
        handler = Handler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return GuardedProtocol(self.connections, handler, self._config, self._h2_config)

    async def close_idle_connections(self, every: float = 10.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.connections.close_idle(IDLE_AFTER)


async def request_of(stream: Stream[Any, Any]) -> Any:
    """The request on a stream, refused unread when it declares more than
    MAX_MESSAGE bytes (grpclib would read whatever length it is told)."""
    h2_stream = stream._stream
    prefix = await h2_stream.recv_data(5)
    if not prefix:
        raise GRPCError(Status.INVALID_ARGUMENT, "no request was sent")
    compressed, length = struct.unpack(">?I", prefix)
    if compressed:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed requests are not accepted")
    if length > MAX_MESSAGE:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"a request of {length} bytes; the limit is {MAX_MESSAGE}",
        )
    data = await h2_stream.recv_data(length)
    if len(data) != length:
        raise GRPCError(Status.INVALID_ARGUMENT, "the request ended before its declared length")
    try:
        return stream._codec.decode(data, stream._recv_type)
    except Exception:  # protobuf's DecodeError, or worse: not a request of this call
        raise GRPCError(Status.INVALID_ARGUMENT, "the request does not decode") from None


def raise_file_limit() -> None:
    """As many open files as the hard limit allows: each connection is one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class QuietAccept:
    """An event loop's exception handler that says once in LOG_EVERY seconds
    what it would otherwise say at every failed accept (a traceback each:
    93 MB of them in 40 s without file descriptors)."""

    def __init__(self) -> None:
        self.seldom = Seldom()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and "accept" in str(context.get("message", "")):
            self.seldom.say(logging.ERROR, "cannot accept connections: %s", error)
            return
        if isinstance(error, ValueError) and "_start_serving" in str(context.get("handle", "")):
            # The retry asyncio schedules after a failed accept, firing once
            # the socket is closed (the daemon stopping): nothing is lost.
            return
        loop.default_exception_handler(context)
