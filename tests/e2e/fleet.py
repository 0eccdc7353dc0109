"""What the e2e tests of whole clusters share: a daemon of their own over
the local hypervisors (a module's fixture), and kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oneinfra.local import config
from tests.oneinfra.daemon import Daemon, free_port

KUBECTL = str(Path(sys.executable).parent / "kubectl")
WAIT = "3m"


@pytest.fixture(scope="module")
def fleet(
    hypervisors: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Daemon, list[dict[str, Any]]]]:
    daemon = Daemon(tmp_path_factory.mktemp("fleet"), "--resync", "5", "--metrics-address",
                    f"127.0.0.1:{free_port()}", reconcile=True).start()  # fmt: skip
    for hv in hypervisors:
        daemon.cli(
            "hypervisor", "add", hv["name"], "--endpoint", hv["endpoint"],
            "--ip-address", hv["address"], f"--{hv['role']}",
            "--data-dir", str(data_dir(hv["name"])),
        )  # fmt: skip
    yield daemon, hypervisors
    for cluster in daemon.json("cluster", "list"):
        daemon.cli("cluster", "delete", cluster["name"], "--wait", "--timeout", WAIT, timeout=240)
    daemon.stop()


def data_dir(hypervisor: str) -> Path:
    return config.STATE / "hypervisors" / hypervisor / "data"


def create(daemon: Daemon, name: str, replicas: int = 1) -> dict[str, Any]:
    created = daemon.json(
        "cluster", "create", name, "--control-plane-replicas", str(replicas),
        "--wait", "--timeout", WAIT, timeout=240,
    )  # fmt: skip
    assert created["status"]["ready"] is True
    return dict(created)


def kubeconfig(daemon: Daemon, name: str, directory: Path) -> Path:
    path = directory / f"{name}.kubeconfig"
    path.write_text(daemon.cli("cluster", "kubeconfig", name).stdout)
    return path


def kubectl(config_file: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", str(config_file), "--request-timeout", "10s", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


def eventually(check: Any, what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.5)


def local(*args: str) -> subprocess.CompletedProcess[str]:
    """`oneinfra local ...`: a local worker joined, left, rotated."""
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", "local", *args],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def new_token(daemon: Daemon, cluster: str) -> tuple[str, str, str]:
    """A fresh token with its endpoint and CA hash, from `join-command`'s line."""
    line = daemon.cli("cluster", "join-command", cluster).stdout.splitlines()[0]
    words = line.split()  # oneinfra node join ENDPOINT --token T --discovery-token-ca-cert-hash H
    return words[3], words[5], words[7]


def join(worker: str, endpoint: str, token: str, ca_hash: str, *extra: str) -> Any:
    return local("join", worker, endpoint, "--token", token,
                 "--discovery-token-ca-cert-hash", ca_hash, *extra)  # fmt: skip


def nodes(config_file: Path) -> dict[str, bool]:
    """name -> Ready."""
    found = json.loads(kubectl(config_file, "get", "nodes", "-o", "json").stdout)["items"]
    return {
        n["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
        )
        for n in found
    }
