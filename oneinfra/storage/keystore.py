"""Data keys at rest: wrapped by the master key, in a small store of their
own, and a destroyed data key cannot come back. (Private keys are sealed
with a data key: pki/sealing.py.)

The event log is immutable, so data keys cannot live in it: they live in a
small key store beside it. Events hold only sealed keys and a data key's id.
Destroying a cluster's data key (crypto-shredding) leaves its history
readable for audits and its private keys unrecoverable.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DomainError, SecretsError, StateFull
from ..pki.sealing import KEY_BYTES, NONCE_BYTES


def load_or_create_master_key(path: Path) -> bytes:
    """The daemon's master key: made on first start, mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_master_key(path)
    with os.fdopen(fd, "wb") as file:
        file.write(os.urandom(KEY_BYTES))
        file.flush()
        os.fsync(file.fileno())
    return read_master_key(path)


def read_master_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except OSError as error:
        raise SecretsError(f"cannot read the master key {path}: {error.strerror}") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(
            f"the master key {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            "make it 0600"
        )
    if len(key) != KEY_BYTES:
        raise SecretsError(f"the master key {path} has {len(key)} bytes, not {KEY_BYTES}")
    return key


class KeyStore:
    """Data keys, wrapped by the master key, in their own SQLite file.

    secure_delete overwrites a destroyed key's bytes, and the rollback
    journal (not WAL) leaves no copy behind after the commit.
    """

    def __init__(self, path: Path, master_key: bytes) -> None:
        self._master = AESGCM(master_key)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS data_keys "
                "(key_id TEXT PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)"
            )
            rows = self._db.execute("SELECT key_id, nonce, wrapped FROM data_keys").fetchall()
        except sqlite3.Error as error:
            raise SecretsError(f"cannot use the key store {path}: {error}") from error
        try:
            self._keys = {
                key_id: self._master.decrypt(nonce, wrapped, key_id.encode())
                for key_id, nonce, wrapped in rows
            }
        except InvalidTag as error:
            raise SecretsError(
                f"the key store {path} was not written with this master key"
            ) from error

    def get(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise DomainError(
                f"data key {key_id} is destroyed or unknown: its secrets cannot be recovered"
            ) from None

    def items(self) -> list[tuple[str, bytes]]:
        return list(self._keys.items())

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def put(self, key_id: str, key: bytes) -> None:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = self._master.encrypt(nonce, key, key_id.encode())
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO data_keys VALUES (?, ?, ?)", (key_id, nonce, wrapped)
            )
        except sqlite3.Error as error:
            if getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
                raise StateFull("the state directory is full (the key store)") from error
            raise SecretsError(f"the key store cannot store a key: {error}") from error
        self._keys[key_id] = key

    def destroy(self, key_ids: Iterable[str]) -> None:
        """Forget the keys; a key the file cannot drop now (a full disk) is
        dropped at the next start, which keeps only the keys of what exists
        (retain)."""
        for key_id in key_ids:
            self._keys.pop(key_id, None)
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))

    def retain(self, live: set[str]) -> list[str]:
        """Destroy every key not in `live` (after a crash between append and destroy)."""
        dead = [key_id for key_id in self._keys if key_id not in live]
        self.destroy(dead)
        return dead

    # -- what the daemon calls: the same for every key store ------------------------

    async def save(self, key_id: str, key: bytes) -> None:
        """Keep a new key (before the event that names it is appended)."""
        self.put(key_id, key)

    async def forget(self, key_ids: Iterable[str]) -> None:
        self.destroy(key_ids)

    async def keep_only(self, live: set[str]) -> list[str]:
        return self.retain(live)

    async def refresh(self, live: set[str]) -> None:
        """Take up keys other daemons saved and drop those they destroyed:
        nobody else writes a file key store, so there is nothing to do."""

    async def refresh_some(self, key_ids: set[str]) -> None:
        """Take up these keys if another daemon saved them (refresh, for a few)."""

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
