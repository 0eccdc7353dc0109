"""The daemon against a hostile local user (issue: the probe's defects): fuzzed
commands, oversized and garbage messages on the socket, idle connections
past the file limit, a full state directory, a tampered or cut log, files
others could read. Each a real daemon on a real socket. A longer run of the
same is benchmarks/hostile_bench.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.daemon.wire import QuietAccept
from tests.hostile import PREFACE, RawClient, Reply, cli, daemon, frame, fuzzed, rss_kib

INTERNAL = {2, 13}  # UNKNOWN, INTERNAL: what no request may end in
OK, INVALID_ARGUMENT, FAILED_PRECONDITION, RESOURCE_EXHAUSTED = 0, 3, 9, 8


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    with daemon(tmp_path):
        client = RawClient(tmp_path / "oneinfra.sock")
        for request in (
            api.RegisterHypervisorRequest(name="pub", endpoint="unix:///hv/pub.sock",
                                          role="public", ip_address="192.0.2.1"),
            api.RegisterHypervisorRequest(name="priv", endpoint="unix:///hv/priv.sock",
                                          role="private", ip_address="192.0.2.2"),
        ):  # fmt: skip
            assert client.call("RegisterHypervisor", request.SerializeToString()).status == OK
        client.close()
        yield tmp_path


def head(root: Path) -> int:
    client = RawClient(root / "oneinfra.sock")
    reply = client.call("LogHead", b"")
    client.close()
    assert reply.status == OK
    return api.LogHeadReply.FromString(reply.data[5:]).position


def call(root: Path, method: str, request: bytes) -> Reply:
    client = RawClient(root / "oneinfra.sock")
    try:
        return client.call(method, request)
    finally:
        client.close()


def test_a_one_megabyte_name_is_refused_in_one_short_line(running: Path) -> None:
    name = "a" * 1_000_000
    reply = call(running, "CreateCluster", api.CreateClusterRequest(name=name).SerializeToString())
    assert reply.status == FAILED_PRECONDITION
    assert "1000000 characters" in reply.message and len(reply.message) < 300
    listed = call(running, "ListClusters", b"")  # nobody was kept waiting
    assert listed.status == OK


def test_a_request_declaring_gigabytes_is_refused_unread(running: Path) -> None:
    pid = int((running / "state" / "daemon.lock").read_text())
    before = rss_kib(pid)
    client = RawClient(running / "oneinfra.sock")
    reply = client.call("ListClusters", b"\0" * (16 * 1024 * 1024), declared=2**31)
    client.close()
    assert reply.status == RESOURCE_EXHAUSTED and "the limit is" in reply.message
    assert rss_kib(pid) - before < 64 * 1024  # KiB: nothing like the 16 MB sent was kept
    assert call(running, "ListClusters", b"").status == OK


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("IssueKubeconfig", api.IssueKubeconfigRequest(cluster="c", user="u" * 65)),
        ("IssueKubeconfig", api.IssueKubeconfigRequest(cluster="c", user="é" * 40)),
        ("IssueKubeconfig", api.IssueKubeconfigRequest(cluster="c", groups=["g" * 100])),
        ("History", api.HistoryRequest(since_position=2**63)),
        ("History", api.HistoryRequest(since_position=2**64 - 1)),
        ("Replay", api.ReplayRequest(position=2**63 + 5)),
        ("WatchCluster", api.WatchClusterRequest(name="c", deleted_at=2**64 - 1)),
        ("VerifyLog", api.VerifyRequest(anchor_position=2**63, anchor_hash="ab" * 32)),
        ("VerifyLog", api.VerifyRequest(anchor_position=1, anchor_hash="not hex")),
        ("Replay", api.ReplayRequest(time="99999-01-01T00:00:00")),
        ("CreateCluster", api.CreateClusterRequest(name="c", vpn_cidr="nonsense")),
        ("LabelHypervisor", api.LabelHypervisorRequest(name="pub", remove=["bad key!"])),
    ],
)
def test_what_ended_in_an_internal_error_is_a_clear_refusal(
    running: Path, method: str, request_: object
) -> None:
    call(running, "CreateCluster", api.CreateClusterRequest(name="c").SerializeToString())
    before = head(running)
    reply = call(running, method, request_.SerializeToString())  # type: ignore[attr-defined]
    assert reply.status not in INTERNAL and reply.status != OK, reply
    assert reply.message and len(reply.message) < 300
    assert head(running) == before  # a refusal appends nothing


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(attempt=fuzzed())
def test_fuzzed_commands_end_in_an_answer_or_a_refusal_never_an_internal_error(
    running: Path, attempt: tuple[str, bytes]
) -> None:
    method, request = attempt
    before = head(running)
    reply = call(running, method, request)
    assert reply.status is not None and reply.status not in INTERNAL, (method, reply)
    if reply.status != OK:
        assert head(running) == before, f"{method} was refused and appended"
        assert len(reply.message) < 1100


def test_bytes_that_are_no_request_are_refused(running: Path) -> None:
    for garbage in (b"\xff" * 40, os.urandom(300), b"\x0a\xff\xff\xff\xff\x0f"):
        reply = call(running, "CreateCluster", garbage)
        assert reply.status == INVALID_ARGUMENT and "does not decode" in reply.message


def test_garbage_on_the_socket_leaves_the_daemon_serving_and_quiet(running: Path) -> None:
    path = running / "oneinfra.sock"
    for payload in (os.urandom(4096), PREFACE + os.urandom(2048), b"GET / HTTP/1.1\r\n\r\n",
                    PREFACE + frame(4, 0, 0, b"") + frame(0, 0, 1, b"\0" * 100),
                    PREFACE + struct_length(2**24 - 1)):  # fmt: skip
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(payload)
    # A frame of a type HTTP/2 does not define is ignored (RFC 9113), and the
    # connection goes on serving.
    client = RawClient(path)
    client.sock.sendall(frame(0xF0, 0, 0, b"an extension we do not know"))
    assert client.call("ListClusters", b"").status == OK
    client.close()
    assert call(running, "ListClusters", b"").status == OK
    assert "Traceback" not in (running / "daemon.log").read_text()


def struct_length(length: int) -> bytes:
    """A frame header declaring `length` bytes, then nothing."""
    return length.to_bytes(3, "big") + bytes([0, 0]) + bytes(4)


def test_a_peer_that_never_reads_its_acknowledgements_is_cut_off(running: Path) -> None:
    pid = int((running / "state" / "daemon.lock").read_text())
    before = rss_kib(pid)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(running / "oneinfra.sock"))
        sock.settimeout(20)
        sock.sendall(PREFACE + frame(4, 0, 0, b""))
        settings_frame = frame(4, 0, 0, b"")
        try:
            for _ in range(200):
                sock.sendall(settings_frame * 5000)  # 9 bytes each, 9 of ack back
        except OSError:  # reset: the daemon closed it
            pass
    assert rss_kib(pid) - before < 64 * 1024
    assert call(running, "ListClusters", b"").status == OK
    assert "Traceback" not in (running / "daemon.log").read_text()


def test_idle_connections_past_the_file_limit_lock_nobody_out(tmp_path: Path) -> None:
    with daemon(tmp_path, open_files=256):
        idle = []
        for _ in range(400):  # more than the daemon may have files open
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(tmp_path / "oneinfra.sock"))
            sock.sendall(PREFACE + frame(4, 0, 0, b""))
            idle.append(sock)
        listed = cli(tmp_path, "cluster", "list")
        assert listed.returncode == 0, listed.stderr
        for sock in idle:
            sock.close()
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log and len(log.splitlines()) < 20


def test_a_daemon_at_its_limit_of_busy_connections_is_said_so_in_one_line(
    tmp_path: Path,
) -> None:
    with daemon(tmp_path, open_files=48):  # room for 8 connections of one uid
        env = dict(os.environ, ONEINFRA_SOCKET=str(tmp_path / "oneinfra.sock"))
        followers = [
            subprocess.Popen([sys.executable, "-m", "oneinfra", "history", "--follow"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(12)
        ]  # fmt: skip
        try:
            for _ in range(600):  # those past the limit end at once, whichever they are
                if sum(f.poll() is not None for f in followers) >= 4:
                    break
                time.sleep(0.05)
            refused = cli(tmp_path, "cluster", "list")
        finally:
            for follower in followers:
                follower.kill()
        errors = [f.stderr.read() for f in followers if f.stderr]
    assert refused.returncode == 1 and "limit of open connections" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert not any("Traceback" in e for e in errors)
    assert (tmp_path / "daemon.log").read_text().count("refused a connection") == 1


def start_again(root: Path) -> subprocess.CompletedProcess[str]:
    """The daemon started once more on root's state (refused, these tests expect)."""
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(root / "state"),
         "--socket", str(root / "again.sock"), "--no-reconcile"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_flipped_byte_keeps_the_daemon_from_serving_and_says_where(tmp_path: Path) -> None:
    with daemon(tmp_path):
        for name in ("a", "b"):
            address = "192.0.2.9" if name == "a" else "192.0.2.8"
            cli(tmp_path, "hypervisor", "add", name, "--endpoint", f"unix:///hv/{name}.sock",
                "--ip-address", address, "--public")  # fmt: skip
    events = tmp_path / "state" / "events.db"
    with sqlite3.connect(events) as db:
        db.execute("UPDATE events SET data = replace(data, 'hv/b', 'hv/x') WHERE position = 2")
    started = start_again(tmp_path)
    assert started.returncode == 1
    assert "does not verify" in started.stderr and "position 2" in started.stderr
    assert "oneinfra eventstore verify" in started.stderr
    assert not (tmp_path / "again.sock").exists()


def test_a_deleted_or_swapped_row_keeps_the_daemon_from_serving(tmp_path: Path) -> None:
    with daemon(tmp_path):
        for i in range(4):
            cli(tmp_path, "hypervisor", "add", f"h{i}", "--endpoint", f"unix:///hv/{i}.sock",
                "--ip-address", f"192.0.2.{i + 1}", "--public")  # fmt: skip
    events = tmp_path / "state" / "events.db"
    (tmp_path / "state" / "verified").unlink()  # no shortcut: a walk from the first record
    with sqlite3.connect(events) as db:
        db.execute("DELETE FROM events WHERE position = 2")
    started = start_again(tmp_path)
    assert started.returncode == 1 and "position 2" in started.stderr


def test_a_log_cut_short_is_told_by_a_head_kept_elsewhere(tmp_path: Path) -> None:
    with daemon(tmp_path):
        for i in range(3):
            cli(tmp_path, "hypervisor", "add", f"h{i}", "--endpoint", f"unix:///hv/{i}.sock",
                "--ip-address", f"192.0.2.{i + 1}", "--public")  # fmt: skip
        anchor = cli(tmp_path, "audit", "head").stdout.strip()
        position, digest = anchor.split(":")
        assert int(position) == 3 and len(digest) == 64
        assert cli(tmp_path, "audit", "verify", "--head", anchor).returncode == 0
        wrong = cli(tmp_path, "audit", "verify", "--head", f"{position}:{'0' * 64}")
        assert wrong.returncode == 1 and "not the anchor's" in wrong.stderr
    events = tmp_path / "state" / "events.db"
    with sqlite3.connect(events) as db:
        db.execute("DELETE FROM events WHERE position = 3")  # the newest: the chain still holds
    whole = cli(tmp_path, "eventstore", "verify", str(events))
    assert whole.returncode == 0  # a hash chain alone cannot tell
    anchored = cli(tmp_path, "eventstore", "verify", str(events), "--head", anchor)
    assert anchored.returncode == 1 and "missing" in anchored.stdout
    refused = start_again(tmp_path)
    assert refused.returncode == 1 and "missing" in refused.stderr  # its own checkpoint knows


def test_every_store_file_is_private_and_an_open_state_directory_is_closed(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    with daemon(tmp_path):
        cli(tmp_path, "hypervisor", "add", "h", "--endpoint", "unix:///hv/h.sock",
            "--ip-address", "192.0.2.1", "--public")  # fmt: skip
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
        assert {"events.db", "events.db-wal", "keys.db", "master.key"} <= set(modes)
        assert all(mode & 0o077 == 0 for mode in modes.values()), modes
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert "was open to others (mode 755); now 700" in (tmp_path / "daemon.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_every_exit_says_why(tmp_path: Path, sig: signal.Signals) -> None:
    with daemon(tmp_path) as process:
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert f"stopping on {sig.name}" in log and f"stopped (on {sig.name})" in log


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="mounts a tmpfs")
def test_a_full_state_directory_is_said_so_and_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)], check=True)
    try:
        with daemon(tmp_path) as process:
            cli(tmp_path, "hypervisor", "add", "pub", "--endpoint", "unix:///hv/p.sock",
                "--ip-address", "192.0.2.1", "--public")  # fmt: skip
            cli(tmp_path, "hypervisor", "add", "priv", "--endpoint", "unix:///hv/q.sock",
                "--ip-address", "192.0.2.2", "--private")  # fmt: skip
            before = head(tmp_path)
            filler = state / "filler"
            with filler.open("wb") as file, pytest.raises(OSError):
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
            refused = [cli(tmp_path, "cluster", "create", f"c{i}") for i in range(3)]
            assert all(r.returncode == 1 for r in refused)
            assert any("the state directory is full" in r.stderr for r in refused), refused
            assert all("Traceback" not in r.stderr for r in refused)
            assert head(tmp_path) == before  # nothing refused was stored
            filler.unlink()
            assert cli(tmp_path, "cluster", "create", "after").returncode == 0
            with filler.open("wb") as file, pytest.raises(OSError):
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0  # a snapshot that does not fit is skipped
        assert "no snapshot on the way out" in (tmp_path / "daemon.log").read_text()
        filler.unlink()
        with daemon(tmp_path):
            assert "after" in cli(tmp_path, "cluster", "list").stdout  # acknowledged: kept
    finally:
        subprocess.run(["umount", "--lazy", str(state)], check=False)
        shutil.rmtree(state, ignore_errors=True)


def test_failed_accepts_are_said_once_in_a_while_and_the_retry_after_a_close_not_at_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = QuietAccept()
    loop = asyncio.new_event_loop()
    try:
        for _ in range(1000):  # a flood of failed accepts: no file descriptor left
            handler(loop, {"message": "socket.accept() out of system resource",
                           "exception": OSError(24, "Too many open files")})  # fmt: skip
        retry = "<TimerHandle BaseSelectorEventLoop._start_serving(...)>"
        handler(loop, {"message": "Exception in callback", "exception": ValueError("fd -1"),
                       "handle": retry})  # fmt: skip
    finally:
        loop.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cannot accept connections" in said[0]
