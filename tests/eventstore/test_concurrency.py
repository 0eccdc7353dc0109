"""Concurrent writers: exactly one wins each expected version, in tasks and processes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from eventstore import NO_STREAM, EventStore, NewEvent, WrongExpectedVersion, open_store

CHILDREN = Path(__file__).parent / "children"


@pytest.mark.anyio
async def test_many_tasks_on_one_expected_version_one_wins_each_round(store: EventStore) -> None:
    for round_ in range(10):
        outcomes: list[str] = []

        async def contend(expected: int | object, outcomes: list[str]) -> None:
            try:
                await store.append("s", [NewEvent(type="T", data=b"")], expected)  # type: ignore[arg-type]
                outcomes.append("won")
            except WrongExpectedVersion:
                outcomes.append("lost")

        expected = NO_STREAM if round_ == 0 else round_ - 1
        async with anyio.create_task_group() as tasks:
            for _ in range(50):
                tasks.start_soon(contend, expected, outcomes)
        assert Counter(outcomes) == {"won": 1, "lost": 49}
    assert await store.current_version("s") == 9
    assert await store.head_position() == 10


def start_together(script: str, count: int, *args: str) -> list[tuple[str, str]]:
    """Run `count` children of a script, release them at once, return their output."""
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILDREN / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, errors) in zip(children, outputs, strict=True):
        assert child.returncode == 0, errors
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("starting_point", ["no file", "an empty file", "no file again"])
def test_processes_creating_one_new_file_together_all_succeed(
    tmp_path: Path, starting_point: str
) -> None:
    store = tmp_path / "events.db"
    if starting_point == "an empty file":
        store.touch()
    outputs = start_together("opener.py", 6, str(store))
    assert [stdout for stdout, _ in outputs] == ["ok\n"] * 6

    async def check() -> None:
        async with await open_store(store) as opened:
            assert await opened.head_position() == 6
            assert (await opened.verify()).ok

    anyio.run(check)


@pytest.mark.slow
def test_two_processes_on_one_store_one_wins_each_round(durable_target: str) -> None:
    store, rounds = durable_target, 200
    # Both open the file (racing to create it), then start appending together.
    outputs = start_together("contender.py", 2, store, str(rounds))
    winners: Counter[int] = Counter()
    wins_per_process = []
    for stdout, _ in outputs:
        wins = [int(line.split()[0]) for line in stdout.splitlines() if line.endswith("won")]
        winners.update(wins)
        wins_per_process.append(len(wins))
    assert winners == dict.fromkeys(range(rounds), 1)
    assert all(wins_per_process), f"no real contention: wins per process {wins_per_process}"

    async def check() -> None:
        async with await open_store(store) as opened:
            assert await opened.current_version("contested") == rounds - 1
            assert (await opened.verify()).ok

    anyio.run(check)
