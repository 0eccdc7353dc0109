"""Helpers for tests that work on a store file directly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio

from eventstore import NewEvent, SQLiteEventStore


async def fill(path: Path, streams: int = 3, per_stream: int = 10) -> None:
    """Interleave per_stream single appends on each of several streams."""
    async with await SQLiteEventStore.open(path) as store:
        for version in range(per_stream):
            for stream in range(streams):
                data = f"s{stream}v{version}".encode()
                await store.append(f"stream-{stream}", [NewEvent(type="T", data=data)])


def fill_sync(path: Path, streams: int = 3, per_stream: int = 10) -> None:
    anyio.run(fill, path, streams, per_stream)


def tamper(path: Path, sql: str, *parameters: object) -> None:
    """Change the file behind the store's back, as an attacker with the file would."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql, parameters)
    connection.close()


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=60, check=False
    )
