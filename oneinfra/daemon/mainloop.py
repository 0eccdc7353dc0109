"""Hand-overs from the API's thread to the daemon's main event loop.

The main loop owns the store, the command worker and the reconciler; the API
thread serves the socket (server.ApiThread). What needs the store (commands,
watches, the audit trail) is handed to the main loop and awaited there. A
caller that goes away cancels what it handed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")
STREAM_CREDIT = 256  # items a stream's producer may run ahead of its reader


class MainLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop  # None: the caller's own loop (one thread, as in tests)

    def _elsewhere(self) -> asyncio.AbstractEventLoop | None:
        if self.loop is None or self.loop is asyncio.get_running_loop():
            return None
        return self.loop

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """fn(*args, **kwargs), awaited on the main loop."""
        loop = self._elsewhere()
        if loop is None:
            return await fn(*args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(awaited(fn(*args, **kwargs)), loop)
        return await asyncio.wrap_future(future)  # cancelling this cancels the call there

    async def stream(
        self, fn: Callable[P, AsyncIterator[T]], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[T]:
        """The items of fn(*args, **kwargs), iterated on the main loop."""
        loop = self._elsewhere()
        if loop is None:
            async for item in fn(*args, **kwargs):
                yield item
            return
        here = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        credit = asyncio.Semaphore(STREAM_CREDIT)  # used on the main loop only

        async def produce() -> None:
            try:
                async for item in fn(*args, **kwargs):
                    await credit.acquire()
                    here.call_soon_threadsafe(items.put_nowait, (True, item))
            except Exception as error:
                here.call_soon_threadsafe(items.put_nowait, (False, error))
            else:
                here.call_soon_threadsafe(items.put_nowait, (False, None))

        producer = asyncio.run_coroutine_threadsafe(produce(), loop)
        try:
            while True:
                more, value = await items.get()
                if not more:
                    if value is not None:
                        raise value
                    return
                loop.call_soon_threadsafe(credit.release)
                yield value
        finally:
            producer.cancel()


async def awaited(awaitable: Awaitable[T]) -> T:
    """A coroutine of any awaitable (run_coroutine_threadsafe takes only those)."""
    return await awaitable
