"""Runs a real daemon in a child process, and the real CLI against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> Samples:
    """The daemon's metrics, by (name, sorted labels)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Daemon:
    """Without `reconcile`, the daemon keeps its log and touches no
    hypervisor: the tests of commands register hypervisors that do not exist."""

    def __init__(self, root: Path, *extra: str, reconcile: bool = False) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.socket = root / "oneinfra.sock"
        self.extra = extra if reconcile else (*extra, "--no-reconcile")
        self.process: subprocess.Popen[str] | None = None
        address = (
            extra[extra.index("--metrics-address") + 1] if "--metrics-address" in extra else ""
        )
        self.metrics_port = int(address.rsplit(":", 1)[1]) if address else None

    def scrape(self) -> Samples:
        assert self.metrics_port is not None, "started without --metrics-address"
        return scrape(self.metrics_port)

    @property
    def log(self) -> Path:
        """Its stderr: a file, not a pipe that fills once nobody reads it
        (the reconciler says every action it takes)."""
        return self.root / "daemon.log"

    def start(self, env: dict[str, str] | None = None) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(self.state_dir),
                 "--socket", str(self.socket), *self.extra],
                stderr=stderr, text=True, env=env,
            )  # fmt: skip
        began = self.log.stat().st_size
        deadline = time.monotonic() + 60
        while "serving on" not in self.log.read_text()[began:]:  # the daemon says when it serves
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {self.log.read_text()}")
            time.sleep(0.02)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ONEINFRA_SOCKET=str(self.socket))
        result = subprocess.run(
            [sys.executable, "-m", "oneinfra", *args],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.cli(*args, "-o", "json", timeout=timeout).stdout)

    def add_hypervisors(self, private: int = 3) -> None:
        self.cli("hypervisor", "add", "pub", "--endpoint", "unix:///run/hv/pub.sock",
                 "--ip-address", "192.0.2.1", "--public")  # fmt: skip
        for i in range(private):
            self.cli("hypervisor", "add", f"priv{i}", "--endpoint", f"unix:///run/hv/priv{i}.sock",
                     "--ip-address", f"198.51.100.{i + 1}", "--private")  # fmt: skip
