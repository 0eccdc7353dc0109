"""Data keys in the event log's PostgreSQL database, for daemons that share
it: each key wrapped by the master key (every daemon host has the same
master key file), in a table beside the log's.

A destroyed key's row is deleted and the table vacuumed, so its bytes leave
the table's pages; PostgreSQL's write-ahead log (and its archives, and any
replica's) still hold them until it is recycled. Crypto-shredding here is
as good as the database's retention of its WAL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventstore.locate import redacted
from eventstore.postgresql import is_connection_failure

from ..errors import SecretsError
from ..pki.sealing import NONCE_BYTES
from .keystore import KeyStore

CREATE = (
    "CREATE TABLE IF NOT EXISTS data_keys "
    "(key_id text PRIMARY KEY, nonce bytea NOT NULL, wrapped bytea NOT NULL)"
)
TIMEOUT = 30.0
T = TypeVar("T")


class PostgresKeyStore(KeyStore):
    """The file key store's cache and rules; its rows in PostgreSQL."""

    def __init__(self, url: str, master_key: bytes) -> None:
        # No file: the cache, the master key and a connection only.
        self._master = AESGCM(master_key)
        self._keys: dict[str, bytes] = {}
        self._url = url
        self._connection: asyncpg.Connection | None = None

    @classmethod
    async def open(cls, url: str, master_key: bytes) -> PostgresKeyStore:
        store = cls(url, master_key)
        try:
            await store._run(lambda connection: connection.execute(CREATE))
            await store._load(None)
        except BaseException:
            await store.aclose()
            raise
        return store

    async def _run(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """A query on the connection, made again once on a new connection if
        the old one was lost."""
        for attempt in (1, 2):
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(
                        self._url, timeout=TIMEOUT, command_timeout=TIMEOUT
                    )
                return await query(self._connection)
            except Exception as error:
                if not is_connection_failure(error):  # the store's rule for a lost connection
                    if isinstance(error, asyncpg.PostgresError):
                        raise SecretsError(
                            f"the key store in {redacted(self._url)}: {error}"
                        ) from error
                    raise
                if self._connection is not None:
                    self._connection.terminate()
                    self._connection = None
                if attempt == 2:
                    raise SecretsError(
                        f"cannot connect to {redacted(self._url)} (its key store): {error}"
                    ) from error
        raise AssertionError("unreachable")

    async def _load(self, wanted: set[str] | None) -> None:
        sql = "SELECT key_id, nonce, wrapped FROM data_keys"
        arguments: tuple[Any, ...] = ()
        if wanted is not None:
            sql, arguments = sql + " WHERE key_id = ANY($1::text[])", (sorted(wanted),)
        rows = await self._run(lambda connection: connection.fetch(sql, *arguments))
        for key_id, nonce, wrapped in rows:
            try:
                self._keys[key_id] = self._master.decrypt(nonce, wrapped, key_id.encode())
            except InvalidTag as error:
                raise SecretsError(
                    f"the key store in {redacted(self._url)} was not written with this "
                    "master key: give every daemon on it the same master key file (--master-key)"
                ) from error

    async def save(self, key_id: str, key: bytes) -> None:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = self._master.encrypt(nonce, key, key_id.encode())
        await self._run(lambda connection: connection.execute(
            "INSERT INTO data_keys VALUES ($1, $2, $3) ON CONFLICT (key_id) "
            "DO UPDATE SET nonce = excluded.nonce, wrapped = excluded.wrapped",
            key_id, nonce, wrapped,
        ))  # fmt: skip
        self._keys[key_id] = key

    async def take_up(self, other: KeyStore) -> int:
        """Save the keys another key store has and this one lacks; how many."""
        missing = {key_id: key for key_id, key in other.items() if key_id not in self._keys}
        for key_id, key in missing.items():
            await self.save(key_id, key)
        return len(missing)

    async def forget(self, key_ids: Iterable[str]) -> None:
        """Forget the keys; one the database cannot drop now is dropped at the
        next start (keep_only)."""
        doomed = sorted(set(key_ids))
        for key_id in doomed:
            self._keys.pop(key_id, None)
        if not doomed:
            return
        with contextlib.suppress(SecretsError):
            await self._run(lambda connection: connection.execute(
                "DELETE FROM data_keys WHERE key_id = ANY($1::text[])", doomed
            ))  # fmt: skip
            await self._run(lambda connection: connection.execute("VACUUM data_keys"))

    async def keep_only(self, live: set[str]) -> list[str]:
        await self._load(None)
        dead = [key_id for key_id in self._keys if key_id not in live]
        await self.forget(dead)
        return dead

    async def refresh(self, live: set[str]) -> None:
        missing = live - self._keys.keys()
        if missing:
            await self._load(missing)
        for key_id in [key_id for key_id in self._keys if key_id not in live]:
            del self._keys[key_id]  # another daemon destroyed it

    async def refresh_some(self, key_ids: set[str]) -> None:
        missing = key_ids - self._keys.keys()
        if missing:
            await self._load(missing)

    def put(self, key_id: str, key: bytes) -> None:
        raise TypeError("a PostgreSQL key store is written with 'await save(...)'")

    def destroy(self, key_ids: Iterable[str]) -> None:
        raise TypeError("a PostgreSQL key store is written with 'await forget(...)'")

    async def aclose(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=5)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.terminate()
