"""Tamper evidence: any changed byte of the log is found, and named by position."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from eventstore import SQLiteEventStore, VerifyReport

from .helpers import fill_sync, run_module, tamper


def verify(path: Path) -> VerifyReport:
    async def run() -> VerifyReport:
        async with await SQLiteEventStore.open(path, read_only=True) as store:
            return await store.verify()

    return anyio.run(run)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    fill_sync(path)
    return path


def test_an_untouched_log_verifies(log: Path) -> None:
    report = verify(log)
    assert report.ok and report.records_checked == 30 and report.head_position == 30
    assert report.first_bad_position is None


def test_a_flipped_byte_of_data_is_found_at_its_position(log: Path) -> None:
    tamper(
        log,
        "UPDATE events SET data = CAST(substr(data, 1, 2) AS BLOB) || X'00' "
        "|| CAST(substr(data, 4) AS BLOB) WHERE position = 17",
    )
    report = verify(log)
    assert not report.ok and report.first_bad_position == 17
    assert report.records_checked == 16


@pytest.mark.parametrize(
    ("sql", "position"),
    [
        ("UPDATE events SET stream_version = 99 WHERE position = 4", 4),
        ("UPDATE events SET type = 'Forged' WHERE position = 1", 1),
        ("UPDATE events SET metadata = X'01' WHERE position = 30", 30),
        ("UPDATE events SET recorded_at_us = recorded_at_us + 1 WHERE position = 9", 9),
        ("UPDATE events SET stream_id = 'stream-9' WHERE position = 12", 12),
        ("UPDATE events SET hash = zeroblob(32) WHERE position = 20", 20),
        ("UPDATE events SET event_id = X'00' WHERE position = 6", 6),
        ("DELETE FROM events WHERE position = 11", 11),
    ],
)
def test_every_kind_of_change_is_named(log: Path, sql: str, position: int) -> None:
    tamper(log, sql)
    report = verify(log)
    assert not report.ok
    assert report.first_bad_position == position


def test_cli_verify_exits_non_zero_and_names_the_position(log: Path) -> None:
    assert run_module("eventstore", "verify", str(log)).returncode == 0
    tamper(log, "UPDATE events SET data = X'ff' WHERE position = 23")
    result = run_module("eventstore", "verify", str(log))
    assert result.returncode == 1
    assert "position 23" in result.stdout


def test_oneinfra_cli_verifies_a_store_too(log: Path) -> None:
    ok = run_module("oneinfra", "eventstore", "verify", "--json", str(log))
    assert ok.returncode == 0 and '"ok": true' in ok.stdout
    tamper(log, "DELETE FROM events WHERE position = 2")
    broken = run_module("oneinfra", "eventstore", "verify", str(log))
    assert broken.returncode == 1 and "position 2" in broken.stdout


def test_cli_on_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_module("eventstore", "verify", str(tmp_path / "nope.db"))
    assert result.returncode == 2
    assert "no event store at" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nope.db").exists()
