"""Child process: append batches forever, acknowledging each once append returns.

Usage: appender.py STORE SEED. Prints 'ACK <batch> <first> <last> <size>' after
each append returns; the parent kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import random
import sys
import uuid

import anyio

from eventstore import NewEvent, open_store


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    async with await open_store(path) as store:
        while True:
            batch = uuid.uuid4().hex
            size = rng.randint(1, 20)
            # The batch's id and size ride in every event, so the parent can
            # tell a whole batch from a partial one even if it was never acknowledged.
            metadata = f"{batch}:{size}".encode()
            events = [
                NewEvent(type="T", data=rng.randbytes(rng.randint(0, 2000)), metadata=metadata)
                for _ in range(size)
            ]
            result = await store.append(f"stream-{rng.randint(0, 4)}", events)
            print("ACK", batch, result.first_position, result.last_position, size, flush=True)


anyio.run(main, sys.argv[1], int(sys.argv[2]))
