"""Reading single events of the log by position, and caching them: an event,
once stored, never changes, so a position names its content for good."""

from __future__ import annotations

from typing import TypeVar

from eventstore import EventStore, RecordedEvent

from ..model import events as ev

E = TypeVar("E", bound=ev.Event)


async def record_at(store: EventStore, position: int) -> RecordedEvent | None:
    if position < 1:
        return None
    return await store.read_at(position)


async def event_at(store: EventStore, position: int) -> ev.Event:
    record = await record_at(store, position)
    if record is None:
        raise RuntimeError(f"no event at position {position}")
    return ev.decode(record.type, record.schema_version, record.data)


class EventCache:
    """Decoded events by position, the oldest dropped first beyond `size`."""

    def __init__(self, store: EventStore, size: int = 4096) -> None:
        self._store = store
        self._size = size
        self._events: dict[int, ev.Event] = {}

    async def get(self, position: int, kind: type[E]) -> E:
        event = self._events.get(position)
        if event is None:
            event = await event_at(self._store, position)
            if len(self._events) >= self._size:
                self._events.pop(next(iter(self._events)))
            self._events[position] = event
        if not isinstance(event, kind):
            raise RuntimeError(
                f"position {position} holds {type(event).__name__}, not {kind.__name__}"
            )
        return event
