"""Backups, the pure parts: the sealed file (what it refuses), the schedule
(when the next is due, what is pruned), and what the decider records."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oneinfra.backup.schedule import backup_id, due_at, to_prune
from oneinfra.errors import BackupInvalid, DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model import projection
from oneinfra.storage import sealedfile as archive
from oneinfra.storage.sealedfile import Header, SealedWriter, check_file, read_sealed

from .harness import Fleet
from .test_decider import refused

KEY = bytes(range(32))
OTHER_KEY = bytes(32)


def header(cluster_id: str = "c1", backup: str = "20261207T112233Z-abcdef") -> Header:
    return Header(cluster="prod", cluster_id=cluster_id, backup_id=backup, key_id="k1",
                  nonce_prefix=os.urandom(7))  # fmt: skip


def sealed(plain: bytes, head: Header | None = None, key: bytes = KEY, pieces: int = 3) -> bytes:
    out = io.BytesIO()
    writer = SealedWriter(out, head or header(), key)
    step = max(1, len(plain) // pieces)
    for start in range(0, len(plain), step):
        writer.write(plain[start : start + step])
    writer.close()
    return out.getvalue()


def opened(tmp_path: Path, data: bytes, key: bytes = KEY, cluster_id: str = "c1") -> bytes:
    path = tmp_path / "backup"
    path.write_bytes(data)
    return b"".join(read_sealed(path, "prod", cluster_id, "20261207T112233Z-abcdef", key))


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 3 * 64 + 5), pieces=st.integers(1, 7))
def test_what_is_sealed_opens_whole(size: int, pieces: int) -> None:
    # Small chunks, so that a few hundred bytes cross several.
    original = archive.CHUNK
    archive.CHUNK = 64
    try:
        plain = os.urandom(size)
        data = sealed(plain, pieces=pieces)
        file = io.BytesIO(data)
        head, aad = archive.read_header(file)
        assert b"".join(archive.open_chunks(file, head, aad, KEY)) == plain
    finally:
        archive.CHUNK = original


def test_a_backup_file_records_its_size_and_digest(tmp_path: Path) -> None:
    plain = os.urandom(archive.CHUNK + 1000)  # two chunks
    path = tmp_path / "backup"
    path.write_bytes(sealed(plain))
    found = check_file(path, "prod", "c1", "20261207T112233Z-abcdef", KEY)
    assert found.size == len(plain) and found.sha256 == hashlib.sha256(plain).hexdigest()


@pytest.mark.parametrize("where", [40, -1, -(archive.CHUNK // 2)])
def test_a_flipped_byte_is_refused(tmp_path: Path, where: int) -> None:
    data = bytearray(sealed(os.urandom(archive.CHUNK + 1000)))
    data[where] ^= 0x01
    with pytest.raises(BackupInvalid, match=r"damaged|changed|does not open"):
        opened(tmp_path, bytes(data))


@pytest.mark.parametrize("cut", [1, 20, archive.CHUNK // 2])
def test_a_truncated_backup_is_refused(tmp_path: Path, cut: int) -> None:
    data = sealed(os.urandom(archive.CHUNK + 1000))
    with pytest.raises(BackupInvalid, match=r"cut short|missing"):
        opened(tmp_path, data[:-cut])


def test_a_whole_chunk_dropped_at_the_end_is_told(tmp_path: Path) -> None:
    data = sealed(os.urandom(archive.CHUNK + 1000))
    last = len(data) - (1000 + archive.TAG_BYTES + 4)
    with pytest.raises(BackupInvalid, match="last chunk is missing"):
        opened(tmp_path, data[:last])


def test_another_clusters_backup_is_refused_by_name(tmp_path: Path) -> None:
    data = sealed(b"etcd", header(cluster_id="c2"))
    with pytest.raises(BackupInvalid, match=r"backup of cluster prod \(c2\), not of prod \(c1\)"):
        opened(tmp_path, data)


def test_a_backup_that_does_not_open_with_the_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupInvalid, match="does not open"):
        opened(tmp_path, sealed(b"etcd"), key=OTHER_KEY)


def test_bytes_after_the_end_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupInvalid, match="after its last chunk"):
        opened(tmp_path, sealed(b"etcd") + b"x")
    with pytest.raises(BackupInvalid, match="not a oneinfra etcd backup"):
        opened(tmp_path, b"SQLite format 3\x00" + bytes(100))
    with pytest.raises(BackupInvalid, match="cannot read"):
        list(read_sealed(tmp_path / "absent", "prod", "c1", "x", KEY))


def test_backup_ids_sort_by_time() -> None:
    early = backup_id(dt.datetime(2026, 12, 7, 11, 22, 33, tzinfo=dt.UTC), b"\xab\xcd\xef")
    later = backup_id(dt.datetime(2026, 12, 7, 11, 22, 34, tzinfo=dt.UTC), b"\x00\x00\x00")
    assert early == "20261207T112233Z-abcdef" and early < later


# -- the decider and the schedule --------------------------------------------------------


@pytest.fixture
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    return fleet


def record(n: int, at: int) -> ev.Backup:
    return ev.Backup(
        backup_id=f"20261207T1122{n:02d}Z-00000{n % 10}", taken_at=at, member="control-plane-0",
        revision=10 + n, keys=5, size=1000, etcd_hash=1, sha256="ab" * 32, location=f"/b/{n}",
    )  # fmt: skip


def take(fleet: Fleet, n: int, at: int) -> None:
    cluster = fleet.state.clusters["prod"]
    fleet.run(cmd.RecordBackup(cluster="prod", cluster_id=cluster.cluster_id, backup=record(n, at)))


def test_a_backup_is_recorded_once_and_clears_a_failure(fleet: Fleet) -> None:
    cluster_id = fleet.state.clusters["prod"].cluster_id
    fleet.run(cmd.RecordBackupFailure(cluster="prod", cluster_id=cluster_id, reason="no etcd"))
    fleet.run(cmd.RecordBackupFailure(cluster="prod", cluster_id=cluster_id, reason="again"))
    failure = fleet.state.clusters["prod"].backup_failure
    assert failure is not None and failure.attempts == 2 and failure.reason == "again"
    take(fleet, 1, 1000)
    take(fleet, 1, 1000)  # asked twice: recorded once
    cluster = fleet.state.clusters["prod"]
    assert [b.backup_id for b in cluster.backups] == [record(1, 1000).backup_id]
    assert cluster.backup_failure is None


def test_a_backup_of_a_cluster_made_again_is_refused(fleet: Fleet) -> None:
    refused(fleet, cmd.RecordBackup(cluster="prod", cluster_id="another", backup=record(1, 1)),
            "deleted and made again")  # fmt: skip


def test_a_schedule_is_set_checked_and_turned_off(fleet: Fleet) -> None:
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=3600, keep=24))
    schedule = fleet.state.clusters["prod"].backup_schedule
    assert schedule is not None and (schedule.every, schedule.keep) == (3600, 24)
    assert fleet.run(cmd.ScheduleBackups(cluster="prod", every=3600, keep=24)).events == []
    refused(fleet, cmd.ScheduleBackups(cluster="prod", every=10, keep=1), "take 60 s")
    refused(fleet, cmd.ScheduleBackups(cluster="prod", every=60, keep=0), "keep 0 backups")
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=0, keep=0))
    assert fleet.state.clusters["prod"].backup_schedule is None


def test_the_next_backup_comes_after_the_last_and_backs_off_after_failures(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    assert due_at(cluster) is None  # no schedule
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=600, keep=2))
    assert due_at(cluster) == 0  # none yet: at once
    take(fleet, 1, 1000)
    assert due_at(cluster) == 1600
    fleet.clock = dt.datetime.fromtimestamp(1700, dt.UTC)
    for _ in range(3):
        fleet.run(cmd.RecordBackupFailure(cluster="prod", cluster_id=cluster.cluster_id,
                                          reason="etcd down"))  # fmt: skip
    assert due_at(cluster) == 1700 + 120  # 30 s, doubled twice
    for _ in range(10):
        fleet.run(cmd.RecordBackupFailure(cluster="prod", cluster_id=cluster.cluster_id,
                                          reason="etcd down"))  # fmt: skip
    assert due_at(cluster) == 1700 + 600  # never longer than the schedule's interval


def test_pruning_keeps_the_newest(fleet: Fleet) -> None:
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=600, keep=2))
    for n, at in enumerate([100, 100, 100, 200], start=1):  # several in one second
        take(fleet, n, at)
    cluster = fleet.state.clusters["prod"]
    old = to_prune(cluster)
    assert old == [record(1, 100).backup_id, record(2, 100).backup_id]  # the first recorded
    fleet.run(cmd.PruneBackups(cluster="prod", backup_ids=old))
    kept = [b.backup_id for b in fleet.state.clusters["prod"].backups]
    assert kept == [record(3, 100).backup_id, record(4, 200).backup_id]
    assert to_prune(fleet.state.clusters["prod"]) == []
    assert fleet.run(cmd.PruneBackups(cluster="prod", backup_ids=old)).events == []


def test_backups_survive_a_replay(fleet: Fleet) -> None:
    take(fleet, 1, 1000)
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=600, keep=2))
    replayed = projection.decode_snapshot(projection.encode_snapshot(fleet.state))
    assert replayed.clusters["prod"].backups == fleet.state.clusters["prod"].backups
    assert replayed.clusters["prod"].backup_schedule == fleet.state.clusters["prod"].backup_schedule


def test_refusals_of_records_name_the_problem(fleet: Fleet) -> None:
    cluster_id = fleet.state.clusters["prod"].cluster_id
    for backup, message in [
        (msgspec.structs.replace(record(1, 1), backup_id="../../x"), "not a backup id"),
        (msgspec.structs.replace(record(1, 1), member="nobody"), "no component"),
        (msgspec.structs.replace(record(1, 1), sha256="zz"), "not an etcd snapshot's"),
    ]:
        refused(fleet, cmd.RecordBackup(cluster="prod", cluster_id=cluster_id, backup=backup),
                message)  # fmt: skip
    with pytest.raises(DomainError, match="unknown cluster"):
        fleet.run(cmd.PruneBackups(cluster="gone", backup_ids=[]))


def test_a_restore_needs_a_backup_of_the_cluster_and_a_clone_names_one(fleet: Fleet) -> None:
    refused(fleet, cmd.RestoreCluster(cluster="prod", backup_id="20261207T112233Z-abcdef"),
            "has no backup")  # fmt: skip
    take(fleet, 1, 1000)
    backup = record(1, 1000).backup_id
    fleet.run(cmd.RestoreCluster(cluster="prod", backup_id=backup))
    prod = fleet.state.clusters["prod"]
    assert prod.etcd_restore is not None and prod.etcd_restore.backup.backup_id == backup
    assert all(c.etcd_generation == 1 and c.founding for c in prod.control_planes())
    # Completed once; a completion of another backup changes nothing.
    assert fleet.run(cmd.CompleteEtcdRestore(cluster="prod", backup_id="other")).events == []
    fleet.run(cmd.CompleteEtcdRestore(cluster="prod", backup_id=backup))
    assert prod.etcd_restore is None
    for source, message in [("prod", "not CLUSTER/BACKUP"), ("nope/x", "unknown cluster"),
                            ("prod/20990101T000000Z-000000", "has no backup")]:  # fmt: skip
        refused(fleet, cmd.CreateCluster(name="copy", from_backup=source), message)
    fleet.run(cmd.CreateCluster(name="copy", from_backup=f"prod/{backup}"))
    copy = fleet.state.clusters["copy"]
    assert copy.etcd_restore is not None and copy.etcd_restore.source_key_id == prod.key_id
    assert copy.key_id != prod.key_id and copy.etcd_token.startswith(copy.cluster_id)
