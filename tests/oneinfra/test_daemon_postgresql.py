"""The daemon with its event log in PostgreSQL (--store, $ONEINFRA_STORE):
the same fleet across restarts and kills, a log moved from SQLite by
`eventstore copy`, an unreachable server refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from eventstore import PostgreSQLEventStore
from tests.pgserver import PostgresServer, free_port, running_postgres

from .daemon import Daemon


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.process is not None:
            daemon.stop(signal.SIGKILL)


def head_in(url: str) -> int:
    async def read() -> int:
        async with await PostgreSQLEventStore.open(url, create=False) as store:
            return await store.head_position()

    return anyio.run(read)


def eventstore_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", "eventstore", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_fleet_lives_in_postgresql_across_a_kill_and_a_restart(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    daemon = Daemon(tmp_path, "--store", url).start()
    daemons.append(daemon)
    daemon.add_hypervisors()
    daemon.cli("cluster", "create", "prod", "--control-plane-replicas", "3")
    before = (daemon.json("cluster", "list"), daemon.json("hypervisor", "list"))
    daemon.stop(signal.SIGKILL)
    daemon.start()
    assert (daemon.json("cluster", "list"), daemon.json("hypervisor", "list")) == before
    assert "ok:" in daemon.cli("audit", "verify").stdout
    assert not (daemon.state_dir / "events.db").exists()
    assert head_in(url) > 0
    assert eventstore_cli("verify", url).stdout.startswith("ok: ")


def test_the_environment_names_the_store_when_no_option_does(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    daemon = Daemon(tmp_path).start(env={**os.environ, "ONEINFRA_STORE": url})
    daemons.append(daemon)
    daemon.add_hypervisors()
    daemon.cli("cluster", "create", "prod")
    assert not (daemon.state_dir / "events.db").exists()
    assert head_in(url) > 0


def test_an_unreachable_store_stops_the_daemon_in_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    store = f"postgresql://fleet:hunter2@127.0.0.1:{free_port()}/fleet"
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(tmp_path / "state"),
         "--socket", str(tmp_path / "s.sock"), "--store", store, "--no-reconcile"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot connect to {store.replace('hunter2', '***')}" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_log_copied_from_sqlite_to_postgresql_serves_the_same_fleet(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    on_sqlite = Daemon(tmp_path).start()
    daemons.append(on_sqlite)
    on_sqlite.add_hypervisors()
    on_sqlite.cli("cluster", "create", "prod", "--control-plane-replicas", "3")
    before = on_sqlite.json("cluster", "list")
    assert on_sqlite.stop(signal.SIGTERM) == 0
    copied = eventstore_cli("copy", str(on_sqlite.state_dir / "events.db"), url)
    assert copied.returncode == 0, copied.stderr
    on_postgresql = Daemon(tmp_path, "--store", url).start()  # the same state dir and keys
    daemons.append(on_postgresql)
    assert on_postgresql.json("cluster", "list") == before
    on_postgresql.cli("cluster", "scale", "prod", "--control-plane-replicas", "1")
    assert "ok:" in on_postgresql.cli("audit", "verify").stdout


def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def leadership_terms(url: str) -> list[dict[str, object]]:
    async def read() -> list[dict[str, object]]:
        async with await PostgreSQLEventStore.open(url, create=False) as store:
            return [json.loads(r.data) async for r in store.read_stream("leadership")]

    return anyio.run(read)


def test_two_daemons_on_one_store_each_serve_what_the_other_decided(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    first = Daemon(tmp_path / "a", "--store", url).start()
    daemons.append(first)
    master = str(first.state_dir / "master.key")
    second = Daemon(tmp_path / "b", "--store", url, "--master-key", master).start()
    daemons.append(second)
    first.add_hypervisors()
    until(lambda: len(second.json("hypervisor", "list")) == 4, "the second sees the hypervisors")
    second.cli("cluster", "create", "prod")  # decided on what the first appended
    until(
        lambda: [c["name"] for c in first.json("cluster", "list")] == ["prod"], "the first sees it"
    )
    # The cluster's data key was made by the second; the first reads it from the database.
    kubeconfig = first.cli("cluster", "kubeconfig", "prod", "--user", "alice").stdout
    assert "client-key-data" in kubeconfig
    first.cli("cluster", "delete", "prod")
    until(lambda: second.json("cluster", "list") == [], "the second sees it deleted")


def test_a_daemon_with_another_master_key_is_refused_in_one_line(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    first = Daemon(tmp_path / "a", "--store", url).start()
    daemons.append(first)
    first.add_hypervisors()
    first.cli("cluster", "create", "prod")
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(tmp_path / "b"),
         "--socket", str(tmp_path / "b.sock"), "--store", url, "--no-reconcile"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "was not written with this master key" in result.stderr
    assert "--master-key" in result.stderr and "Traceback" not in result.stderr


def leader_and_standby(tmp_path: Path, url: str, daemons: list[Daemon]) -> tuple[Daemon, Daemon]:
    """Two reconciling daemons on one store: the first leads (term 1), the
    second, with its master key, stands by."""
    first = Daemon(tmp_path / "a", "--store", url, reconcile=True).start()
    daemons.append(first)
    until(lambda: "leading (term 1)" in first.log.read_text(), "the first leads")
    master = str(first.state_dir / "master.key")
    second = Daemon(tmp_path / "b", "--store", url, "--master-key", master, reconcile=True)
    daemons.append(second.start())
    until(lambda: "standing by" in second.log.read_text(), "the second stands by")
    return first, second


def test_one_daemon_leads_and_another_takes_over_when_it_is_killed(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    first, second = leader_and_standby(tmp_path, url, daemons)
    leading, standing = first.json("info"), second.json("info")
    assert (leading["role"], standing["role"]) == ("leading", "standing by")
    assert leading["leader"] == standing["leader"] == str(first.state_dir)
    assert standing["term"] == 1 and standing["store"] == url
    first.stop(signal.SIGKILL)
    until(lambda: "leading (term 2)" in second.log.read_text(), "the second takes over")
    terms = leadership_terms(url)
    assert [t["term"] for t in terms] == [1, 2]
    assert [t["daemon"] for t in terms] == [str(first.state_dir), str(second.state_dir)]
    second.stop(signal.SIGTERM)
    assert "leading (term 3)" not in second.log.read_text()


@pytest.mark.slow
def test_daemons_ride_out_a_postgresql_restart_and_lose_nothing_acknowledged(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    with running_postgres() as server:
        url = server.url()
        first = Daemon(tmp_path / "a", "--store", url, reconcile=True).start()
        daemons.append(first)
        master = str(first.state_dir / "master.key")
        second = Daemon(tmp_path / "b", "--store", url, "--master-key", master, reconcile=True)
        daemons.append(second.start())
        first.add_hypervisors()
        until(lambda: "leading (term 1)" in first.log.read_text(), "the first leads")
        acknowledged: list[str] = []
        refused: list[str] = []
        for round_ in range(3):
            for number, daemon in enumerate((first, second)):
                name = f"c{round_}-{number}"
                result = daemon.cli("cluster", "create", name, check=False, timeout=60)
                (acknowledged if result.returncode == 0 else refused).append(name)
            if round_ == 0:
                server.stop(how=signal.SIGINT)  # commands now fail cleanly, in one line
                for daemon in (first, second):
                    down = daemon.cli("cluster", "create", "while-down", check=False)
                    assert down.returncode == 1 and "Traceback" not in down.stderr
                    assert len(down.stderr.strip().splitlines()) == 1, down.stderr
                server.start()
                until(lambda: "leading (term 2)" in first.log.read_text() + second.log.read_text(),
                      "a leader again after the restart", timeout=30)  # fmt: skip

        assert first.process is not None and first.process.poll() is None, first.log.read_text()
        assert second.process is not None and second.process.poll() is None
        assert len(acknowledged) == 6, (refused, second.log.read_text())

        def names(daemon: Daemon) -> list[str]:
            return sorted(c["name"] for c in daemon.json("cluster", "list"))

        until(lambda: names(first) == names(second) == sorted(acknowledged), "both agree")
        assert eventstore_cli("verify", url).stdout.startswith("ok: ")


def cluster_status(daemon: Daemon, name: str) -> tuple[str, str, list[tuple[str, str]]]:
    shown = daemon.json("cluster", "show", name)
    components = [(c["name"], c.get("phase", "")) for c in shown["components"]]
    return shown["status"].get("phase", ""), shown["status"].get("reason", ""), components


def test_a_daemon_standing_by_shows_the_status_its_leader_recorded(
    tmp_path: Path, url: str, daemons: list[Daemon]
) -> None:
    first, second = leader_and_standby(tmp_path, url, daemons)
    first.add_hypervisors()  # unreachable: the leader records them so, and the cluster failing
    second.cli("cluster", "create", "prod")
    until(lambda: cluster_status(first, "prod")[0] not in ("", "pending"), "the leader's verdict")
    until(lambda: cluster_status(second, "prod") == cluster_status(first, "prod"),
          "the same status on the daemon standing by")  # fmt: skip
    phase, reason, components = cluster_status(second, "prod")
    assert phase == "failed" and "unreachable" in reason
    assert all(p == "failed" for _, p in components)
