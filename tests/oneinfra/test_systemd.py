"""The daemon as a systemd service: the unit passes `systemd-analyze
verify`; against a fake notify socket, the daemon says READY=1 once it
serves, pings the watchdog while it is well, and says STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from oneinfra.daemon import notify, unit
from tests.debian import debian_tool

from .daemon import Daemon


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = debian_tool("systemd-analyze", "systemd")
    written = subprocess.run(
        [sys.executable, "-m", "oneinfra", "service", "install", "--unit-dir", str(tmp_path),
         "--", "--metrics-address", ":9100", "--log-format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = tmp_path / unit.UNIT_NAME
    assert f"wrote {path}" in written.stdout
    text = path.read_text()
    assert "Type=notify" in text and f"WatchdogSec={unit.WATCHDOG_SECONDS}s" in text
    assert "daemon --state-dir /var/lib/oneinfra --metrics-address :9100 --log-format json" in text
    assert "StateDirectory=oneinfra\nStateDirectoryMode=0700" in text
    checked = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr.strip() == "", checked.stderr  # not even a warning


def test_a_unit_on_a_shared_store_names_it_and_passes_verify(tmp_path: Path) -> None:
    analyze = debian_tool("systemd-analyze", "systemd")
    store = "postgresql://oneinfra@db.example:5432/fleet"
    subprocess.run(
        [sys.executable, "-m", "oneinfra", "service", "install", "--unit-dir", str(tmp_path),
         "--", "--store", store, "--master-key", "/etc/oneinfra/master.key"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = tmp_path / unit.UNIT_NAME
    assert f"--store {store} --master-key /etc/oneinfra/master.key\n" in path.read_text()
    checked = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("given", [["--store", "postgresql://oneinfra:s3cret@db/fleet"],
                                   ["--store=postgresql://oneinfra:s3cret@db/fleet"]])  # fmt: skip
def test_a_store_url_with_a_password_is_refused_and_nothing_written(
    tmp_path: Path, given: list[str]
) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "oneinfra", "service", "install", "--unit-dir", str(tmp_path),
         "--", *given],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "holds a password" in refused.stderr and "~/.pgpass" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_state_directory_elsewhere_is_left_to_the_daemon() -> None:
    text = unit.render_unit(["/usr/bin/oneinfra"], "/srv/oneinfra state", [])
    assert "StateDirectory" not in text
    assert "ExecStart=/usr/bin/oneinfra daemon --state-dir '/srv/oneinfra state'\n" in text


def test_install_says_why_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    failed = subprocess.run(
        [sys.executable, "-m", "oneinfra", "service", "install", "--unit-dir", str(blocker)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"oneinfra: cannot write {blocker}/oneinfra.service")


def test_the_watchdog_interval_is_half_of_watchdog_sec_and_only_for_its_pid() -> None:
    assert notify.watchdog_interval({}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert notify.watchdog_interval(mine) == 0.5
    assert notify.watchdog_interval({**mine, "WATCHDOG_PID": "1"}) is None


def test_notify_socket_addresses() -> None:
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("@abstract") == "\0abstract"
    assert notify.socket_address("vsock:2:1234") is None
    assert not notify.Notifier.from_environment({}).enabled


def test_a_notifier_reaches_an_abstract_socket() -> None:
    name = f"oneinfra-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        notify.Notifier.from_environment({"NOTIFY_SOCKET": "@" + name}).send("READY=1", "STATUS=x")
        assert listener.recv(4096) == b"READY=1\nSTATUS=x"


def test_a_notifier_without_a_listener_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    gone = notify.Notifier("/nonexistent/notify.sock")
    gone.send("READY=1")
    gone.send("WATCHDOG=1")  # best effort: no exception, no second word
    assert [r.getMessage()[:22] for r in caplog.records] == ["cannot notify systemd "]


@pytest.mark.anyio
async def test_the_watchdog_is_pinged_only_while_alive() -> None:
    sent: list[str] = []
    alive = True

    class Recorder(notify.Notifier):
        def send(self, *assignments: str) -> None:
            sent.extend(assignments)

    with anyio.move_on_after(0.35):
        await notify.keep_watchdog(Recorder(None), 0.05, lambda: alive)
    assert sent.count("WATCHDOG=1") >= 3
    sent.clear()
    alive = False
    with anyio.move_on_after(0.2):
        await notify.keep_watchdog(Recorder(None), 0.05, lambda: alive)
    assert sent == []  # a wedged daemon misses its pings, and systemd restarts it


def received(listener: socket.socket, until: float) -> list[str]:
    messages = []
    while time.monotonic() < until:
        try:
            messages.append(listener.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def test_the_daemon_says_ready_pings_its_watchdog_and_says_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(0.1)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
        daemon = Daemon(tmp_path, reconcile=True).start(env=env)
        first = received(listener, time.monotonic() + 1.0)
        assert first[0] == "READY=1\nSTATUS=serving"  # once it serves: start() saw the line
        assert first[1:].count("WATCHDOG=1") >= 5, first  # every 0.1 s, half of WatchdogSec
        assert daemon.stop() == 0
        last = received(listener, time.monotonic() + 0.3)
        assert last[-1] == "STOPPING=1\nSTATUS=stopping on SIGTERM", last


@pytest.mark.parametrize("state_dir", ["relative/dir", "", "/" + "x" * 5000])
def test_a_state_directory_systemd_cannot_use_is_refused_in_one_line(
    tmp_path: Path, state_dir: str
) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "oneinfra", "service", "install", "--unit-dir", str(tmp_path),
         "--state-dir", state_dir],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "is not an absolute path" in refused.stderr
    assert len(refused.stderr) < 200
    assert not (tmp_path / unit.UNIT_NAME).exists()  # nothing written
