"""Child process: race another process for each version of one stream.

Usage: contender.py STORE ROUNDS. Opens the store, waits for a line on stdin
(the start signal, so both contenders start together), then for each
round appends with the exact expected version of that round and prints
'round won|lost'. Any error but WrongExpectedVersion ends it non-zero.
"""

from __future__ import annotations

import random
import sys

import anyio

from eventstore import NO_STREAM, NewEvent, WrongExpectedVersion, open_store


async def main(path: str, rounds: int) -> None:
    async with await open_store(path) as store:
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        for round_ in range(rounds):
            expected = NO_STREAM if round_ == 0 else round_ - 1
            try:
                await store.append("contested", [NewEvent(type="T", data=b"")], expected)
                print(round_, "won", flush=True)
            except WrongExpectedVersion:
                print(round_, "lost", flush=True)
            # Without a pause the holder of SQLite's lock keeps winning (its busy
            # handler backs off in milliseconds); a jitter lets either lead.
            await anyio.sleep(random.uniform(0, 0.003))


anyio.run(main, sys.argv[1], int(sys.argv[2]))
