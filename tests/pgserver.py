"""A throwaway PostgreSQL server for tests and benchmarks: Debian's
postgresql package (installed when missing, as root on Debian), initdb into
a temporary directory, its own port and socket directory, stopped and
removed afterwards. PostgreSQL refuses to run as root, so as root it runs
as the package's `postgres` user."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "postgresql"
START_TIMEOUT = 60.0
USER = "oneinfra"


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


def ensure_postgres_bin() -> Path:
    """The server's binaries, installed as the project installs what tests need;
    in CI a missing server fails, elsewhere it skips, saying what to install."""
    found = postgres_bin()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE],
                       env=env, capture_output=True, check=False)  # fmt: skip
        found = postgres_bin()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is missing and could not be installed (Debian's {PACKAGE})")
        pytest.skip(
            f"PostgreSQL (Debian's {PACKAGE} package) is missing; root on Debian installs it"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One server in a temporary directory; `url(db)` names a database on it."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="oneinfra-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = 0
        self._run_as: str | None = None
        if os.geteuid() == 0:
            self._run_as = "postgres"
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._initdb()

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            user=self._run_as,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr[-2000:]}")

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        # Tests need not survive a power cut; the benchmarks ask for durable.
        durability = [] if self.durable else ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=200", *durability,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),  # noqa: SIM115 (the child keeps it)
            user=self._run_as,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepting():
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections: {self.log_tail()}")
            time.sleep(0.05)

    def _accepting(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return result.returncode == 0

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self, *, how: signal.Signals = signal.SIGINT) -> None:
        """SIGINT: a fast shutdown (transactions in flight are aborted);
        SIGKILL: a crash, recovered from the WAL at the next start."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
            self.process.wait(timeout=60)
        self.process = None
        if how == signal.SIGKILL:
            # The postmaster's children outlive it for a moment and hold the
            # shared memory; the next start waits for them.
            time.sleep(0.5)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        subprocess.run(
            [str(self.bin_dir / "psql"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U",
             USER, "-d", "postgres", "-c", f"CREATE DATABASE {name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.url(name)


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    server = PostgresServer(ensure_postgres_bin(), durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.remove()
