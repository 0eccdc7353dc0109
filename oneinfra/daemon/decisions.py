"""One decision at a time across the daemons sharing a PostgreSQL store.

Decisions are safe anywhere without it (the store refuses an append whose
expected version is stale), but under load they are wasted: a daemon whose
decision (a cluster's whole PKI: milliseconds) lost the race decides again,
and can lose again. Three daemons creating at once exhausted the retries.
So each decision takes a session advisory lock, catches up, decides and
appends, then lets go: nobody's work is thrown away. If the lock's
connection is lost mid-decision, the server lets go of the lock, and the
expected version still keeps the log right.
"""

from __future__ import annotations

import asyncpg

from eventstore.locate import redacted

from ..errors import Conflict

LOCK_KEY = 0x4F4E4443  # "ONDC"
TIMEOUT = 30.0
LOST = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)


class DecisionLock:
    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> None:
        for attempt in (1, 2):
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self.url, timeout=TIMEOUT)
                await self._connection.execute(
                    "SELECT pg_advisory_lock($1)", LOCK_KEY, timeout=TIMEOUT
                )
                return
            except LOST as error:
                self._drop()
                if attempt == 2:
                    raise Conflict(
                        f"could not take the decision lock in {redacted(self.url)} "
                        f"({error or type(error).__name__}); nothing was done, try again"
                    ) from error

    async def __aexit__(self, *_: object) -> None:
        if self._connection is None:
            return
        try:
            await self._connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        except LOST:
            self._drop()  # the server lets go with the session

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.terminate()
            self._connection = None

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close(timeout=5)
            self._connection = None
