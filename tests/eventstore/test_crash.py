"""Durability: a writer killed with SIGKILL at random moments loses nothing it
acknowledged, leaves no partial batch, and the chain still verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from eventstore import open_store

CHILDREN = Path(__file__).parent / "children"
KILLS = 20


def run_and_kill(store: str, seed: int, after: float) -> list[tuple[str, int, int, int]]:
    """Start an appender, SIGKILL it after `after` seconds, return what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(CHILDREN / "appender.py"), store, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(after)
    os.kill(child.pid, signal.SIGKILL)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    acknowledged = []
    for line in stdout.decode().split("\n")[:-1]:  # the last piece may be cut mid-line
        tag, batch, first, last, size = line.split()
        assert tag == "ACK"
        acknowledged.append((batch, int(first), int(last), int(size)))
    return acknowledged


async def check_store(
    store: str, acknowledged: list[tuple[str, int, int, int]], context: str
) -> None:
    async with await open_store(store) as opened:
        report = await opened.verify()
        assert report.ok, f"{context}: {report}"
        declared: dict[str, int] = {}
        positions: dict[str, list[int]] = {}
        async for record in opened.read_all():
            batch, size = record.metadata.decode().split(":")
            declared[batch] = int(size)
            positions.setdefault(batch, []).append(record.position)
    for batch, first, last, _ in acknowledged:
        assert positions.get(batch) == list(range(first, last + 1)), (
            f"{context}: acknowledged batch {batch} lost or moved"
        )
    # No partial batch: every stored batch, acknowledged or not, is whole and contiguous.
    for batch, stored in positions.items():
        assert len(stored) == declared[batch], f"{context}: partial batch {batch}"
        assert stored == list(range(stored[0], stored[0] + len(stored))), context


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(durable_target: str) -> None:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    store = durable_target
    acknowledged: list[tuple[str, int, int, int]] = []
    for kill in range(KILLS):
        # From before the file is open to well into the appends.
        acknowledged += run_and_kill(store, rng.randrange(2**32), rng.uniform(0.05, 1.0))

        anyio.run(check_store, store, acknowledged, f"seed {seed}, kill {kill}")
    assert acknowledged, f"seed {seed}: no append was ever acknowledged"
