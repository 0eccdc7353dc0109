"""Snapshots: disposable, keyed by (name, position), outside the hash chain."""

from __future__ import annotations

import pytest

from eventstore import EventStore, InvalidArgument

from .conftest import event

pytestmark = pytest.mark.anyio


async def test_latest_snapshot_at_or_before_a_position(store: EventStore) -> None:
    await store.append("s", [event() for _ in range(10)])
    await store.save_snapshot("fleet", 3, b"three")
    await store.save_snapshot("fleet", 8, b"eight")
    await store.save_snapshot("other", 9, b"nine")
    latest = await store.latest_snapshot("fleet")
    assert latest is not None and (latest.position, latest.data) == (8, b"eight")
    earlier = await store.latest_snapshot("fleet", max_position=7)
    assert earlier is not None and earlier.data == b"three"
    assert await store.latest_snapshot("fleet", max_position=2) is None
    assert await store.latest_snapshot("nobody") is None


async def test_saving_at_the_same_key_replaces(store: EventStore) -> None:
    await store.append("s", [event()])
    await store.save_snapshot("p", 1, b"old")
    await store.save_snapshot("p", 1, b"new")
    latest = await store.latest_snapshot("p")
    assert latest is not None and latest.data == b"new"


async def test_deleting_snapshots_leaves_the_log_verified(store: EventStore) -> None:
    await store.append("s", [event() for _ in range(3)])
    await store.save_snapshot("p", 1, b"a")
    await store.save_snapshot("p", 2, b"b")
    assert await store.delete_snapshots("p") == 2
    assert await store.latest_snapshot("p") is None
    assert (await store.verify()).ok


@pytest.mark.parametrize(
    ("name", "position", "data", "message"),
    [
        ("", 0, b"", "name must be a non-empty string"),
        ("p", 5, b"", "beyond the head of the log"),
        ("p", -1, b"", "at least 0"),
        ("p", 1, "text", "data must be bytes"),
    ],
)
async def test_bad_snapshots_are_refused(
    store: EventStore, name: str, position: int, data: bytes, message: str
) -> None:
    await store.append("s", [event()])
    with pytest.raises(InvalidArgument, match=message):
        await store.save_snapshot(name, position, data)
    assert await store.latest_snapshot("p") is None
