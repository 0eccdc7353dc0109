"""The daemon's Prometheus metrics, scraped from a real daemon over HTTP:
commands counted by kind and result as they are decided, the state read at
each scrape, /healthz; off unless asked for, and a bad address refused; the
reconciler's passes and clusters' phases, in process over fake CRI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from oneinfra.daemon.metrics import Metrics, StateCollector
from oneinfra.model import commands as cmd
from tests.debian import debian_tool

from .daemon import Daemon, free_port, scrape
from .fakefleet import fake_fleet


def test_commands_and_the_state_are_in_the_metrics(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(tmp_path, "--metrics-address", f"127.0.0.1:{port}").start()
    try:
        daemon.add_hypervisors()
        daemon.cli("cluster", "create", "prod")
        refused = daemon.cli("cluster", "create", "prod", check=False)
        assert refused.returncode != 0
        found = scrape(port)
        ok = ("command", "RegisterHypervisor"), ("result", "ok")
        assert found[("oneinfra_commands_total", ok)] == 4  # a public and three private
        created = ("command", "CreateCluster")
        assert found[("oneinfra_commands_total", (created, ("result", "ok")))] == 1
        assert found[("oneinfra_commands_total", (created, ("result", "refused")))] == 1
        assert found[("oneinfra_append_seconds_count", ())] == 5  # the refusal appends nothing
        head = int(daemon.cli("audit", "head").stdout.split(":")[0])
        assert found[("oneinfra_log_position", ())] == head
        # Without a reconciler nothing is observed: the cluster is pending,
        # none of its components runs, and its certificates expire in a year.
        assert found[("oneinfra_clusters", (("phase", "pending"),))] == 1
        assert found[("oneinfra_components_not_running", (("cluster", "prod"),))] == 2
        expiry = found[("oneinfra_certificate_expiry_seconds", (("cluster", "prod"),))]
        assert 364 * 86_400 < expiry <= 365 * 86_400
        for path in ("/healthz", "/readyz"):
            health = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert health.status_code == 200 and health.text == "ok\n"
    finally:
        assert daemon.stop() == 0


def listening_tcp_ports(pid: int) -> set[int]:
    """The TCP ports the process listens on (its sockets, as /proc has them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_are_off_unless_asked_and_a_bad_address_is_refused(tmp_path: Path) -> None:
    port = free_port()
    on = Daemon(tmp_path / "on", "--metrics-address", f":{port}").start()  # loopback's
    off = Daemon(tmp_path / "off").start()
    try:
        assert on.process is not None and off.process is not None
        assert listening_tcp_ports(on.process.pid) == {port}
        assert listening_tcp_ports(off.process.pid) == set()
    finally:
        on.stop()
        off.stop()
    bad = subprocess.run(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(tmp_path / "bad"),
         "--socket", str(tmp_path / "bad.sock"), "--no-reconcile", "--metrics-address", "nowhere"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--metrics-address 'nowhere' is not HOST:PORT" in bad.stderr
    assert not (tmp_path / "bad").exists()  # refused before anything is touched


@pytest.mark.anyio
async def test_the_reconcilers_passes_and_the_clusters_phases_are_counted(tmp_path: Path) -> None:
    """In process, against fake CRI hypervisors: every pass is counted by
    hypervisor and result, and the cluster, once ready, is in its phase
    with every component running."""
    metrics = Metrics()
    async with fake_fleet(tmp_path, metrics, observe_pass=metrics.pass_done,
                          observe_cri=metrics.cri_call) as (service, controller):  # fmt: skip
        metrics.registry.register(StateCollector(service, controller.board, time.time))
        await service.execute(cmd.CreateCluster(name="prod"))

        def sample(name: str, **labels: str) -> float | None:
            return metrics.registry.get_sample_value(name, labels)

        deadline = anyio.current_time() + 20
        while sample("oneinfra_clusters", phase="ready") != 1:
            assert anyio.current_time() < deadline, "the cluster ready in the metrics"
            await anyio.sleep(0.05)
        assert sample("oneinfra_components_not_running", cluster="prod") == 0
        for hypervisor in ("pub", "priv0"):
            assert (sample("oneinfra_reconcile_passes_total", hypervisor=hypervisor,
                           result="ok") or 0) >= 1  # fmt: skip
            assert (sample("oneinfra_reconcile_pass_seconds_count", hypervisor=hypervisor)
                    or 0) >= 1  # fmt: skip
        assert sample("oneinfra_commands_total", command="CreateCluster", result="ok") == 1
        for method in (
            "list_pod_sandbox",
            "list_containers",
            "run_pod_sandbox",
            "create_container",
        ):
            assert (sample("oneinfra_cri_calls_total", hypervisor="priv0", method=method,
                           result="ok") or 0) >= 1, method  # fmt: skip
            assert (sample("oneinfra_cri_call_seconds_count", method=method) or 0) >= 1


def test_promtool_finds_nothing_to_fix_in_what_is_served(tmp_path: Path) -> None:
    tool = debian_tool("promtool", "prometheus")
    port = free_port()
    daemon = Daemon(tmp_path, "--metrics-address", f"127.0.0.1:{port}").start()
    try:
        daemon.add_hypervisors()
        daemon.cli("cluster", "create", "prod")
        daemon.cli("cluster", "create", "prod", check=False)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        daemon.stop()
    checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "oneinfra_commands_total" in text and "oneinfra_certificate_expiry_seconds" in text
