"""The log checked before it is served: a daemon starts only on a log whose
hash chain holds from the first record to the head, and which still holds
the head the daemon last left (kept in a small file beside the log, moved at
every start and clean stop), so that newest records removed are told too.

The whole chain is walked: it costs little next to rebuilding the state
(benchmarks/RESULTS.md), and a walk from a checkpoint on would miss a
record altered before it. The file beside the log is no trust anchor (who
can edit the log can edit it); a head kept away from this machine is:
`oneinfra audit head`, `audit verify --head`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eventstore import EventStore, SQLiteEventStore

CHECKPOINT = "verified"  # in the state directory: "POSITION HASH"


@dataclass(frozen=True)
class Verified:
    ok: bool
    head_position: int
    head_hash: str
    checked: int  # records walked this time
    since: int  # the position the walk started from
    problem: str = ""  # what is wrong, naming the position
    bad_position: int | None = None


def read_checkpoint(path: Path) -> tuple[int, str] | None:
    try:
        position, digest = path.read_text().split()
        if not position.isdigit() or len(bytes.fromhex(digest)) != 32:
            return None
    except (OSError, ValueError):
        return None
    return int(position), digest


def write_checkpoint(path: Path, position: int, digest: str) -> None:
    temporary = path.with_suffix(".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"{position} {digest}\n")
    os.replace(temporary, path)


async def verify_since_checkpoint(store: EventStore, checkpoint: Path) -> Verified:
    """Walk the whole chain, check the last head left is still there; on
    success, move the checkpoint to the head."""
    found = read_checkpoint(checkpoint)
    if isinstance(store, SQLiteEventStore):
        report = await store.verify(integrity=False)  # SQLite's page check reads the whole file
    else:
        report = await store.verify()
    if not report.ok:
        return Verified(
            False, report.head_position, report.head_hash, report.records_checked, 1,
            report.reason or "the chain does not verify", report.first_bad_position,
        )  # fmt: skip
    if found is not None and found[0] > 0:
        position, digest = found
        problem = await store.check_anchor(position, digest)
        if problem is not None:
            return Verified(False, report.head_position, report.head_hash,
                            report.records_checked, 1, problem, position)  # fmt: skip
    write_checkpoint(checkpoint, report.head_position, report.head_hash)
    return Verified(True, report.head_position, report.head_hash, report.records_checked, 1)
