"""The local hypervisors for the tests (`oneinfra local`): brought up once per
session, taken down after.

Where it cannot run (not Linux, not root) the tests are skipped with the
reason; under CI=true that is a failure, so CI never silently runs none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
WORKERS = 5  # test_workers: w0-w2 join directly; test_vpn_workers: w2 and, behind NAT, w3, w4
BEHIND_NAT = 2


def cannot_run() -> str | None:
    if sys.platform != "linux":
        return "local hypervisors need Linux"
    if os.geteuid() != 0:
        return "local hypervisors need root (namespaces, containerd, apt)"
    return None


def local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", "local", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )


def local_up(request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    """`local up`, its progress shown as it goes (the first run builds for
    minutes; a CI log shows a line every ~10 s), its JSON kept."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "oneinfra",
                "local",
                "up",
                "--workers",
                str(WORKERS),
                "--behind-nat",
                str(BEHIND_NAT),
                "-o",
                "json",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=3600,
        )


@pytest.fixture(scope="session")
def machines(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """Every local machine: the hypervisors, and the workers (role "worker")."""
    reason = cannot_run()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"e2e tests cannot run under CI: {reason}")
        pytest.skip(reason)
    local("down")  # a clean slate: nothing left by a demo or an earlier run shares it
    started = local_up(request)
    if started.returncode != 0:
        pytest.fail("the local hypervisors did not come up (their output is above)")
    yield json.loads(started.stdout)
    stopped = local("down")
    assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="session")
def hypervisors(machines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in machines if m["role"] != "worker"]


@pytest.fixture(scope="session")
def workers(machines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in machines if m["role"] == "worker"]
