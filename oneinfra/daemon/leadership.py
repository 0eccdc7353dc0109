"""Who reconciles when several daemons share one PostgreSQL store: the
holder of a session advisory lock. Every daemon takes commands (the store's
expected versions make decisions safe anywhere); only the leader acts on
hypervisors.

Bounded hand-over: the leader checks its lock's connection every `check`
seconds (each check bounded by `check` too) and stops acting as soon as one
fails, so within 2 x check. A daemon that takes the lock waits `takeover`
(longer than that) before it acts: the lock is free only once the old
leader's session ended, and by then it has stopped, or will within 2 x check.
Each term is recorded in the log (stream "leadership"), numbered by the
stream's version, so the history says who led when.

A term whose work fails (a bug in the reconciler, an error nobody
expected) ends like a lost lock: the lock is released for another daemon,
and this one, still serving commands, contends again after `takeover`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable

import anyio
import asyncpg
import msgspec

from eventstore import NO_STREAM, EventStoreError, NewEvent, WrongExpectedVersion
from eventstore.locate import redacted
from eventstore.store import EventStore

from .logs import say

LEADERSHIP_STREAM = "leadership"
LOCK_KEY = 0x4F4E4C44  # "ONLD": pg_advisory_lock's key, one fleet per database
CHECK = 1.0
TAKEOVER = 3.0
UNREACHABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

log = logging.getLogger("oneinfra.daemon")


class LeaderElected(msgspec.Struct, frozen=True):
    daemon: str
    host: str
    pid: int
    term: int


class Leadership:
    def __init__(
        self,
        url: str,
        store: EventStore,
        daemon: str,
        *,
        check: float = CHECK,
        takeover: float = TAKEOVER,
    ) -> None:
        assert takeover > 2 * check, "a new leader must wait out the old one's last check"
        self.url = url
        self.store = store
        self.daemon = daemon
        self.check = check
        self.takeover = takeover
        self.term: int | None = None  # while leading
        self._stopped = anyio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Until stop(): wait for the lock, lead (run `lead`, cancelled the
        moment the lock's connection fails), and wait again."""
        with anyio.CancelScope() as scope:

            async def on_stop() -> None:
                await self._stopped.wait()
                scope.cancel()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(on_stop)
                await self._contend(lead)

    async def _contend(self, lead: Callable[[], Awaitable[None]]) -> None:
        standing_by = False
        while True:
            failed = False
            try:
                connection = await asyncpg.connect(self.url, timeout=self.check * 5)
            except UNREACHABLE as error:
                say(f"leadership: cannot reach {redacted(self.url)} ({error}); trying again")
                await anyio.sleep(self.check)
                continue
            try:
                while not await connection.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LOCK_KEY, timeout=self.check
                ):
                    if not standing_by:
                        say("standing by: another daemon leads this fleet")
                        standing_by = True
                    await anyio.sleep(self.check)
                standing_by = False
                await anyio.sleep(self.takeover)  # the old leader has stopped by now
                self.term = await self._record_term()
                say(f"leading (term {self.term})")
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._lead_until_cancelled, lead, tasks.cancel_scope)
                    await self._hold(connection)
                    tasks.cancel_scope.cancel()
                say(f"no longer leading (term {self.term}): the lock's connection failed")
            except (*UNREACHABLE, EventStoreError) as error:
                say(f"leadership: {error}; contending again")
            except Exception:
                log.exception("leadership: term %s failed; contending again", self.term)
                failed = True
            finally:
                self.term = None
                connection.terminate()
            # After a failed term, the others first: the lock is free now.
            await anyio.sleep(self.takeover if failed else self.check)

    async def _lead_until_cancelled(
        self, lead: Callable[[], Awaitable[None]], scope: anyio.CancelScope
    ) -> None:
        await lead()
        scope.cancel()  # lead returned (the daemon is stopping): so does the term

    async def _hold(self, connection: asyncpg.Connection) -> None:
        """Returns when a check of the lock's connection fails."""
        while True:
            try:
                await connection.fetchval("SELECT 1", timeout=self.check)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                return
            await anyio.sleep(self.check)

    async def _record_term(self) -> int:
        """The next term, appended: its number is the stream's next version + 1."""
        while True:
            version = await self.store.current_version(LEADERSHIP_STREAM)
            term = 1 if version is None else version + 2
            elected = LeaderElected(self.daemon, socket.gethostname(), os.getpid(), term)
            event = NewEvent(type="LeaderElected", data=msgspec.json.encode(elected))
            try:
                await self.store.append(
                    LEADERSHIP_STREAM, [event], NO_STREAM if version is None else version
                )
            except WrongExpectedVersion:
                continue  # another term was recorded since (a deposed leader's, late)
            return term


async def current_term(store: EventStore) -> tuple[LeaderElected, int] | None:
    """The newest term recorded, and when (microseconds since the epoch)."""
    version = await store.current_version(LEADERSHIP_STREAM)
    if version is None:
        return None
    async for record in store.read_stream(LEADERSHIP_STREAM, version):
        return msgspec.json.decode(record.data, type=LeaderElected), record.recorded_at_us
    return None
