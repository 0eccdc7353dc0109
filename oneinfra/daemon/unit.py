"""The daemon as a systemd service: `oneinfra service unit` prints the
unit, `oneinfra service install` writes it.

`Type=notify`: systemd counts the daemon started once it says READY=1
(it serves), and restarts it when it misses the watchdog's pings
(notify.py). Its state and socket directories are systemd's to make, with
the modes the daemon wants; it stops on SIGTERM and finishes the command
in hand within TimeoutStopSec.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

UNIT_NAME = "oneinfra.service"
WATCHDOG_SECONDS = 60  # a pass never blocks the loop this long; a wedged daemon does
STOP_SECONDS = 90  # the command in hand, the snapshot, the checkpoint


def executable() -> list[str]:
    """How this oneinfra is run: its console script when installed, or
    this interpreter with -m."""
    found = shutil.which("oneinfra", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "oneinfra"]


def state_directory(state_dir: str) -> list[str]:
    """StateDirectory= for a state directory under /var/lib (systemd makes
    it, private); elsewhere, the daemon makes it itself."""
    name = state_dir.removeprefix("/var/lib/").strip("/")
    if not state_dir.startswith("/var/lib/") or not name or "/" in name:
        return []
    return [f"StateDirectory={name}", "StateDirectoryMode=0700"]


def render_unit(command: list[str], state_dir: str, daemon_args: list[str]) -> str:
    exec_start = shlex.join([*command, "daemon", "--state-dir", state_dir, *daemon_args])
    lines = [
        "[Unit]",
        "Description=oneinfra: isolated Kubernetes control planes on a fleet of hypervisors",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WatchdogSec={WATCHDOG_SECONDS}s",
        "Restart=on-failure",
        "RestartSec=2s",
        f"TimeoutStopSec={STOP_SECONDS}s",
        "KillMode=mixed",
        # The socket's directory, /run/oneinfra (the CLI's default), and the
        # state's: systemd makes them; the daemon keeps the state private.
        "RuntimeDirectory=oneinfra",
        "RuntimeDirectoryMode=0755",
        *state_directory(state_dir),
        "UMask=0077",
        "LimitNOFILE=1048576",  # one connection per CLI call, per hypervisor, per cluster
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def daemon_options(args: argparse.Namespace) -> list[str]:
    extra = list(args.daemon_args)
    return extra[1:] if extra[:1] == ["--"] else extra


PATH_MAX = 4096  # Linux's, for a path systemd is to read


def store_password(daemon_args: list[str]) -> bool:
    """Whether the daemon's --store URL holds a password: a unit is
    world-readable, the driver's password file is not."""
    for i, arg in enumerate(daemon_args):
        if arg == "--store" and i + 1 < len(daemon_args):
            url = daemon_args[i + 1]
        elif arg.startswith("--store="):
            url = arg.removeprefix("--store=")
        else:
            continue
        try:
            if urlsplit(url).password is not None:
                return True
        except ValueError:
            continue  # not a URL: the daemon says so when it starts
    return False


def run_service(args: argparse.Namespace) -> int:
    if not args.state_dir.startswith("/") or len(args.state_dir) > PATH_MAX:
        shown = args.state_dir[:60] + ("..." if len(args.state_dir) > 60 else "")
        why = f"is not an absolute path of at most {PATH_MAX} characters (systemd runs it from /)"
        print(f"oneinfra: --state-dir {shown!r} {why}", file=sys.stderr)
        return 2
    if store_password(daemon_options(args)):
        print(
            "oneinfra: --store's URL holds a password, and a unit is world-readable: "
            "put it in ~/.pgpass of the daemon's user (mode 0600) or $PGPASSFILE",
            file=sys.stderr,
        )
        return 2
    unit = render_unit(executable(), args.state_dir, daemon_options(args))
    if args.action == "unit":
        sys.stdout.write(unit)
        return 0
    path = Path(args.unit_dir) / UNIT_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".new")
        temporary.write_text(unit)
        temporary.chmod(0o644)
        temporary.replace(path)
    except OSError as error:
        print(f"oneinfra: cannot write {path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {path}; now: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")
    return 0
