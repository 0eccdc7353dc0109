"""Where the daemon keeps its state and serves its socket by default: one
rule, read by the daemon and by every client command."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/oneinfra")
    return Path.home() / ".local" / "share" / "oneinfra"


def default_socket() -> Path:
    if os.geteuid() == 0:
        return Path("/run/oneinfra/oneinfra.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime or f"/tmp/oneinfra-{os.getuid()}") / "oneinfra.sock"


def chosen_socket(flag: str | Path | None) -> Path:
    """--socket, then $ONEINFRA_SOCKET, then the default."""
    chosen = flag or os.environ.get("ONEINFRA_SOCKET")
    return Path(chosen) if chosen else default_socket()
