"""Runs a real daemon in a child process, and the real CLI against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


class Daemon:
    """Without `reconcile`, the daemon keeps its log and touches no
    hypervisor: the tests of commands register hypervisors that do not exist."""

    def __init__(self, root: Path, *extra: str, reconcile: bool = False) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.socket = root / "oneinfra.sock"
        self.extra = extra if reconcile else (*extra, "--no-reconcile")
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Daemon:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(self.state_dir),
             "--socket", str(self.socket), *self.extra],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stderr is not None
        line = self.process.stderr.readline()  # the daemon says when it serves
        assert "serving on" in line, line + self.process.stderr.read()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        if self.process.stderr:
            self.process.stderr.close()
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
