"""Child process: on a line from stdin, open the store and append one event.

Usage: opener.py STORE. Several of these started together race to create the
same new file (or the same new tables in an empty database).
"""

from __future__ import annotations

import sys

import anyio

from eventstore import NewEvent, open_store


async def main(path: str) -> None:
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    async with await open_store(path) as store:
        await store.append("opened", [NewEvent(type="T", data=b"")])
    print("ok", flush=True)


anyio.run(main, sys.argv[1])
