"""The daemon's life: its state directory (locked, one daemon each), the
store and the key store opened, the state rebuilt, the API served on its
thread, the command worker, the reconciler and the collector run until
SIGTERM or SIGINT, then a clean stop (the composition root).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio

from eventstore import EventStoreError, SQLiteEventStore

from ..errors import DaemonError, OneinfraError
from ..paths import chosen_socket, default_state_dir
from ..reconcile.controller import Controller, Options
from ..storage.keystore import KeyStore, load_or_create_master_key
from . import gc
from .api import FleetServer
from .apithread import ApiThread
from .mainloop import MainLoop
from .service import FleetService

DEFAULT_OPTIONS = Options()


def prepare_directories(state_dir: Path, socket_path: Path) -> int:
    """Make the state and socket directories; returns the state dir's lock."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    return lock_state_dir(state_dir)


def remove_socket(path: Path) -> None:
    path.unlink(missing_ok=True)


def lock_state_dir(state_dir: Path) -> int:
    """One daemon per state directory: an exclusive lock held while it runs.
    The lock file holds the daemon's pid: whoever finds the lock held knows
    whom to signal (a pid in a file whose lock nobody holds is stale)."""
    fd = os.open(state_dir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise DaemonError(f"another oneinfra daemon is using {state_dir}{by}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def serve(
    state_dir: Path,
    socket_path: Path,
    *,
    socket_group: str | None = None,
    master_key: Path | None = None,
    on_ready: Callable[[], None] | None = None,
    reconcile: Options | None = DEFAULT_OPTIONS,
) -> None:
    """Run until SIGTERM or SIGINT: then finish the command in hand, close the
    store, and return."""
    lock = prepare_directories(state_dir, socket_path)
    keys = KeyStore(
        state_dir / "keys.db", load_or_create_master_key(master_key or state_dir / "master.key")
    )
    try:
        async with await SQLiteEventStore.open(state_dir / "events.db") as store:
            service = await FleetService.open(store, keys)
            if reconcile is not None:
                reconcile = dataclasses.replace(reconcile, fleet=fleet_id(state_dir))
            controller = Controller(service, reconcile) if reconcile else None
            board = controller.board if controller else None
            fleet = FleetServer(service, board, MainLoop(asyncio.get_running_loop()))
            gc.after_start()
            api_thread = ApiThread(fleet, socket_path, socket_group)
            await api_thread.start()
            try:
                async with anyio.create_task_group() as tasks:
                    await tasks.start(service.run)
                    collector = gc.Collector()
                    tasks.start_soon(collector.run)
                    if controller is not None:
                        await tasks.start(controller.run)
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        if on_ready is not None:
                            on_ready()
                        async for _ in signals:
                            break
                    collector.stop()
                    if controller is not None:
                        controller.stop()  # crash-safe at any point: the next start goes on
                    await api_thread.stop()  # open calls are cancelled; no new ones
                    service.stop_accepting()  # the worker finishes what it holds
                await service.snapshot()
            finally:
                remove_socket(socket_path)
    finally:
        keys.close()
        os.close(lock)


def fleet_id(state_dir: Path) -> str:
    """This fleet's id, made at its first start: it labels the fleet's pods,
    so that daemons sharing hypervisors never touch each other's. Kept with
    the log (back it up with it)."""
    path = state_dir / "fleet-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        fleet = uuid.uuid4().hex[:16]
        temporary = path.with_suffix(".new")
        temporary.write_text(fleet + "\n")
        os.replace(temporary, path)
        return fleet


def announce(state_dir: Path, socket_path: Path) -> Callable[[], None]:
    def ready() -> None:
        print(
            f"oneinfra daemon: serving on {socket_path} (state in {state_dir})",
            file=sys.stderr,
            flush=True,
        )

    return ready


def run_from_command_line(args: argparse.Namespace) -> int:
    """`oneinfra daemon ...`: serve until stopped; the exit code."""
    if args.resync <= 0:
        print("oneinfra daemon: --resync must be a positive number of seconds", file=sys.stderr)
        return 2

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    socket = chosen_socket(args.socket)  # the same rule as every client command
    try:
        anyio.run(
            lambda: serve(
                state_dir,
                socket,
                socket_group=args.socket_group,
                master_key=Path(args.master_key) if args.master_key else None,
                on_ready=announce(state_dir, socket),
                reconcile=None if args.no_reconcile else Options(resync=args.resync),
            )
        )
    except (OneinfraError, EventStoreError, OSError) as error:
        print(f"oneinfra daemon: {error}", file=sys.stderr)
        return 1
    return 0
