"""subscribe: catch-up, then live, with no gap or duplicate at the hand-over."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from eventstore import EventStore, StoreClosed

from .conftest import StoreFactory, event

pytestmark = pytest.mark.anyio


async def test_catch_up_then_live_without_gap_or_duplicate(make_store: StoreFactory) -> None:
    store = await make_store(page_size=7)
    # Only the in-process signal may wake it: a missed wake-up hangs and fails.
    store.external_poll_interval = None
    await store.append("s", [event() for _ in range(20)])
    received: list[int] = []

    async def subscriber() -> None:
        async for record in store.subscribe(from_position=5):
            received.append(record.position)
            if record.position == 120:
                return

    async def writer() -> None:
        for _ in range(100):
            await store.append("t", [event()])
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(subscriber)
            tasks.start_soon(writer)
    assert received == list(range(5, 121))


async def test_a_waiting_subscriber_wakes_on_append(store: EventStore) -> None:
    store.external_poll_interval = None
    delivered = anyio.Event()

    async def subscriber() -> None:
        async for _ in store.subscribe():
            delivered.set()
            return

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(subscriber)
            await anyio.sleep(0.05)  # let it catch up and wait
            await store.append("s", [event()])
            await delivered.wait()


async def test_closing_the_store_ends_a_waiting_subscription(store: EventStore) -> None:
    store.external_poll_interval = None
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:

            async def subscriber() -> None:
                with pytest.raises(StoreClosed):
                    async for _ in store.subscribe():
                        pass

            tasks.start_soon(subscriber)
            await anyio.sleep(0.05)
            await store.close()
