"""One name for a store, whichever its backend: a postgresql:// URL or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .store import EventStore

URL_SCHEMES = ("postgresql://", "postgres://")
ECHOED = 200  # characters of a URL a message shows


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs; a long one by
    its first characters and its length, so a message stays one short line."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        url = urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    if len(url) > ECHOED:
        return f"{url[:ECHOED]}... ({len(url)} characters)"
    return url


async def open_store(target: str | Path, **options: Any) -> EventStore:
    """Open the store a URL (PostgreSQL) or a path (an SQLite file) names;
    options go to that backend's `open`."""
    if is_url(target):
        from .postgresql import PostgreSQLEventStore

        return await PostgreSQLEventStore.open(str(target), **options)
    from .sqlite import SQLiteEventStore

    return await SQLiteEventStore.open(target, **options)
