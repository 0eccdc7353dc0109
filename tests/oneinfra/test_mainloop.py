"""Hand-overs from the API's thread to the main loop: results, errors,
streams longer than the credit, and cancellation both ways."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import pytest

from oneinfra.daemon.mainloop import STREAM_CREDIT, MainLoop

pytestmark = pytest.mark.anyio
T = TypeVar("T")


async def on_another_thread(body: Callable[[MainLoop], Awaitable[T]]) -> T:
    """Runs body on a new thread's own event loop, handing over to this one."""
    main = MainLoop(asyncio.get_running_loop())
    return await anyio.to_thread.run_sync(lambda: asyncio.run(awaitable(body(main))))


async def awaitable(aw: Awaitable[T]) -> T:
    return await aw


async def test_a_call_runs_on_the_main_loop_and_returns_its_result() -> None:
    main_thread = threading.get_ident()

    async def where(offset: int) -> tuple[int, int]:
        await anyio.lowlevel.checkpoint()
        return threading.get_ident(), offset + 1

    async def body(main: MainLoop) -> tuple[int, int, int]:
        thread, value = await main.call(where, 41)
        return threading.get_ident(), thread, value

    caller, ran_on, value = await on_another_thread(body)
    assert ran_on == main_thread != caller
    assert value == 42


async def test_a_call_raises_the_error_raised_on_the_main_loop() -> None:
    async def refuse() -> None:
        raise ValueError("no such cluster")

    async def body(main: MainLoop) -> str:
        try:
            await main.call(refuse)
        except ValueError as error:
            return str(error)
        return "no error"

    assert await on_another_thread(body) == "no such cluster"


async def test_a_cancelled_caller_cancels_the_call_on_the_main_loop() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    async def body(main: MainLoop) -> None:
        with anyio.move_on_after(0.2):
            await main.call(forever)

    await on_another_thread(body)
    with anyio.fail_after(5):
        await cancelled.wait()
    assert started.is_set()


async def test_a_stream_longer_than_its_credit_arrives_whole_and_in_order() -> None:
    count = STREAM_CREDIT * 3 + 7
    main_thread = threading.get_ident()
    producers: set[int] = set()

    async def numbers() -> AsyncIterator[int]:
        for n in range(count):
            producers.add(threading.get_ident())
            yield n

    async def body(main: MainLoop) -> list[int]:
        return [n async for n in main.stream(numbers)]

    assert await on_another_thread(body) == list(range(count))
    assert producers == {main_thread}


async def test_a_stream_hands_over_the_items_before_its_error_then_the_error() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("the store failed")

    async def body(main: MainLoop) -> tuple[list[int], str]:
        got: list[int] = []
        try:
            async for n in main.stream(failing):
                got.append(n)
        except RuntimeError as error:
            return got, str(error)
        return got, "no error"

    assert await on_another_thread(body) == ([1, 2], "the store failed")


async def test_a_reader_that_stops_early_stops_the_producer() -> None:
    closed = anyio.Event()

    async def endless() -> AsyncIterator[int]:
        n = 0
        try:
            while True:
                yield n
                n += 1
                await anyio.lowlevel.checkpoint()
        finally:
            closed.set()

    async def body(main: MainLoop) -> list[int]:
        got = []
        stream = main.stream(endless)
        async for n in stream:
            got.append(n)
            if n == 5:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    assert await on_another_thread(body) == [0, 1, 2, 3, 4, 5]
    with anyio.fail_after(5):
        await closed.wait()


async def test_on_its_own_loop_a_hand_over_is_a_plain_call() -> None:
    main = MainLoop(asyncio.get_running_loop())

    async def double(n: int) -> int:
        return 2 * n

    async def three() -> AsyncIterator[int]:
        for n in range(3):
            yield n

    assert await main.call(double, 4) == 8
    assert [n async for n in main.stream(three)] == [0, 1, 2]
    assert await MainLoop().call(double, 5) == 10
