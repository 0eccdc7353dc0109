"""The e2e environment for the tests: brought up once per session, taken down after.

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


def cannot_run() -> str | None:
    if sys.platform != "linux":
        return "the e2e environment needs Linux"
    if os.geteuid() != 0:
        return "the e2e environment needs root (namespaces, containerd, apt)"
    return None


def env(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.env", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )


@pytest.fixture(scope="session")
def hypervisors() -> Iterator[list[dict[str, Any]]]:
    reason = cannot_run()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"e2e tests cannot run under CI: {reason}")
        pytest.skip(reason)
    env("down")  # a clean slate: nothing left by a demo or an earlier run shares it
    started = env("up")
    if started.returncode != 0:
        pytest.fail(f"the e2e environment did not come up:\n{started.stderr[-5000:]}")
    yield json.loads(started.stdout)
    stopped = env("down")
    assert stopped.returncode == 0, stopped.stderr
