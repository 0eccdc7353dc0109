"""A Debian package's tool that a test needs, installed when missing (as
root, on Debian), as the project's scripts install what the tests need.
In CI a tool that cannot be had fails the test; elsewhere it is skipped,
and says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       env=env, capture_output=True, check=False)  # fmt: skip
        found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing and could not be installed (Debian's {package})")
        pytest.skip(f"{tool} (Debian's {package} package) is missing; root on Debian installs it")
    return found
