"""The daemon's life (the composition root): its state directory (private,
locked, one daemon each), the log verified before it is served, the store
and the key store opened, the state rebuilt, the API served on its thread,
the command worker, the reconciler and the collector run until a signal,
then a clean stop. Every exit says why, on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import os
import signal
import stat
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio

from eventstore import (
    NO_STREAM,
    EventStore,
    EventStoreError,
    NewEvent,
    WrongExpectedVersion,
    open_store,
)
from eventstore.locate import is_url, redacted

from ..backup.service import Backups
from ..errors import DaemonError, OneinfraError
from ..paths import chosen_socket, default_state_dir
from ..reconcile.board import StatusBoard
from ..reconcile.controller import Controller, Options
from ..reconcile.statusfollower import follow_status
from ..storage.checkpoint import CHECKPOINT, Verified, verify_since_checkpoint
from ..storage.keystore import KeyStore, load_or_create_master_key
from . import gc
from .api import FleetServer
from .apithread import ApiThread
from .decisions import DecisionLock
from .leadership import Leadership
from .logs import configure, say
from .mainloop import MainLoop
from .metrics import Metrics, parse_address, serve_metrics
from .notify import Notifier, keep_watchdog, watchdog_interval
from .service import FleetService
from .wire import raise_file_limit

DEFAULT_OPTIONS = Options()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PRIVATE_UMASK = 0o077  # every file the daemon makes: its owner's only
STORE_VARIABLE = "ONEINFRA_STORE"
FLEET_ID_STREAM = "fleet-id"


def prepare_directories(state_dir: Path, socket_path: Path) -> int:
    """Make the state and socket directories, the state one private; returns
    the state dir's lock."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keep_private(state_dir)
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    return lock_state_dir(state_dir)


def keep_private(state_dir: Path) -> None:
    """A state directory (and what it holds) that others may read is made
    the owner's alone, and the daemon says so: keys.db and the log are
    secrets."""
    for path in [state_dir, *state_dir.iterdir()]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        if path.name == "master.key":
            continue  # refused, not tightened: a key others could read may have leaked
        if info.st_uid != os.geteuid():
            raise DaemonError(
                f"{path} is open to others (mode {stat.S_IMODE(info.st_mode):o}) and not "
                "ours to change; make it private to the daemon's user"
            )
        private = stat.S_IMODE(info.st_mode) & 0o700
        os.chmod(path, private)
        say(f"{path} was open to others (mode {stat.S_IMODE(info.st_mode):o}); now {private:o}")


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


async def verified_store(target: str | Path, state_dir: Path) -> tuple[EventStore, Verified]:
    """The store (a file, or a PostgreSQL database), once its chain verifies
    from the last verified start on; a log that was altered is refused, and
    the refusal says where."""
    store = await open_store(target)
    path = redacted(target) if isinstance(target, str) else target
    try:
        checked = await verify_since_checkpoint(store, state_dir / CHECKPOINT)
    except BaseException:
        await store.close()
        raise
    if not checked.ok:
        await store.close()
        where = max(1, (checked.bad_position or 1) - 3)
        raise DaemonError(
            f"the event log {path} does not verify: {checked.problem}"
            + (f" (position {checked.bad_position})" if checked.bad_position else "")
            + ". The daemon serves no altered log. Inspect it, read-only, with "
            f"'oneinfra eventstore verify {path}' and "
            f"'oneinfra eventstore dump {path} --from {where} --limit 10'; "
            "restore the state directory from a backup"
        )
    return store, checked


async def serve(
    state_dir: Path,
    socket_path: Path,
    *,
    socket_group: str | None = None,
    master_key: Path | None = None,
    on_ready: Callable[[], None] | None = None,
    reconcile: Options | None = DEFAULT_OPTIONS,
    metrics_address: str | None = None,
    notifier: Notifier | None = None,
    backup_dir: Path | None = None,
    store_target: str | None = None,
) -> str:
    """Run until SIGTERM, SIGINT or SIGHUP: then finish the command in hand,
    close the store, and return what stopped it. store_target: the event
    log's URL or file (default events.db in the state directory)."""
    os.umask(PRIVATE_UMASK)
    raise_file_limit()
    lock = prepare_directories(state_dir, socket_path)
    master = load_or_create_master_key(master_key or state_dir / "master.key")
    # A PostgreSQL store may be shared by several daemons: the keys and the
    # fleet's id live in its database, one daemon leads, the others follow.
    shared = store_target if store_target is not None and is_url(store_target) else None
    keys = await open_keys(shared, state_dir, master)
    try:
        target = store_target if store_target is not None else state_dir / "events.db"
        store, checked = await verified_store(target, state_dir)
        async with store:
            decisions = DecisionLock(shared) if shared is not None else None
            service = await FleetService.open(store, keys, decisions=decisions)
            metrics = Metrics() if metrics_address is not None else None
            fleet = await shared_fleet_id(store, state_dir) if shared else own_fleet_id(state_dir)
            if reconcile is not None:
                reconcile = dataclasses.replace(reconcile, fleet=fleet)
                if metrics is not None:
                    reconcile = dataclasses.replace(
                        reconcile, observe_pass=metrics.pass_done, observe_cri=metrics.cri_call
                    )
            controller = Controller(service, reconcile) if reconcile else None
            board = controller.board if controller else None
            backups = (
                Backups(controller.shared, backup_dir or state_dir / "backups")
                if controller
                else None
            )
            leadership = (
                Leadership(shared, store, str(state_dir))
                if shared is not None and controller is not None
                else None
            )
            store_name = redacted(shared) if shared is not None else str(target)
            # On a shared store, what the leader records, for when this one stands by.
            followed = StatusBoard() if shared is not None else None
            server = FleetServer(service, board, MainLoop(asyncio.get_running_loop()), backups,
                                 leadership, store_name, followed)  # fmt: skip
            metrics_server = None
            if metrics_address is not None and metrics is not None:  # both, or neither
                service.observer = metrics
                metrics_server = serve_metrics(metrics_address, service, board, metrics)
            gc.after_start()
            api_thread = ApiThread(server, socket_path, socket_group)
            await api_thread.start()

            def ready() -> None:
                if on_ready is not None:
                    on_ready()  # the first line: scripts and tests wait for it
                if metrics_server is not None:
                    say(f"metrics on {metrics_server.url}")
                if checked.checked:
                    say(f"log verified from position {checked.since} to {checked.head_position}")

            try:
                stopped_by = await run_until_signal(
                    service, controller, api_thread, ready, notifier or Notifier(None), backups,
                    leadership=leadership, follow=shared is not None, followed=followed,
                )  # fmt: skip
                await snapshot_if_it_fits(service)
                await checkpoint_on_the_way_out(store, state_dir)
            finally:
                remove_socket(socket_path)
                if metrics_server is not None:
                    metrics_server.stop()
    finally:
        await keys.aclose()
        os.close(lock)
    return stopped_by


async def open_keys(shared: str | None, state_dir: Path, master: bytes) -> KeyStore:
    if shared is None:
        return KeyStore(state_dir / "keys.db", master)
    from ..storage.pgkeys import PostgresKeyStore

    keys = await PostgresKeyStore.open(shared, master)
    local = state_dir / "keys.db"
    if local.exists():  # a log moved here by `eventstore copy`: its keys come along
        file_keys = KeyStore(local, master)
        try:
            if taken := await keys.take_up(file_keys):
                say(f"took up {taken} data key(s) from {local} into the shared store")
        finally:
            file_keys.close()
    return keys


async def run_until_signal(
    service: FleetService,
    controller: Controller | None,
    api_thread: ApiThread,
    on_ready: Callable[[], None],
    notifier: Notifier,
    backups: Backups | None = None,
    *,
    leadership: Leadership | None = None,
    follow: bool = False,
    followed: StatusBoard | None = None,
) -> str:
    """The command worker, the collector, the reconciler and the backups' schedule, until a stop
    signal; then each stopped in turn. The signal's name. systemd, when it
    runs the daemon, is told when it serves, stops, and is well. On a
    shared store (follow), the state folds what other daemons append (and
    `followed` the status the leader records), and the reconciler and the
    backups run only while this daemon leads."""
    stopped_by = "?"
    following = anyio.CancelScope()
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        collector = gc.Collector()
        tasks.start_soon(collector.run)
        if follow:

            async def fold_others() -> None:
                def outage(error: Exception) -> None:
                    say(f"cannot follow the shared store ({error}); trying again")

                with following:
                    async with anyio.create_task_group() as folding:
                        if followed is not None:
                            folding.start_soon(follow_status, service.store, followed, outage)
                        await service.follow(outage)
                        folding.cancel_scope.cancel()  # the store closed

            tasks.start_soon(fold_others)
        if leadership is not None:

            async def lead() -> None:
                async with anyio.create_task_group() as leading:
                    if controller is not None:
                        await leading.start(controller.run)
                    if backups is not None:
                        leading.start_soon(backups.run)

            tasks.start_soon(leadership.run, lead)
        else:
            if controller is not None:
                await tasks.start(controller.run)
            if backups is not None:
                tasks.start_soon(backups.run)
        watchdog = anyio.CancelScope()
        if (interval := watchdog_interval()) is not None:

            def alive() -> bool:
                return service.accepting and api_thread.answering(within=2 * interval)

            async def ping() -> None:
                with watchdog:
                    await keep_watchdog(notifier, interval, alive)

            tasks.start_soon(ping)
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            on_ready()
            notifier.send("READY=1", "STATUS=serving")
            async for received in signals:
                stopped_by = signal.Signals(received).name
                break
        notifier.send("STOPPING=1", f"STATUS=stopping on {stopped_by}")
        say(f"stopping on {stopped_by}")
        watchdog.cancel()  # no pings once stopping: TimeoutStopSec rules now
        collector.stop()
        if backups is not None:
            backups.stop()  # a backup cut short leaves a part file, swept by the next start
        if controller is not None:
            controller.stop()  # crash-safe at any point: the next start goes on
        if leadership is not None:
            leadership.stop()
        following.cancel()
        if not await api_thread.stop():  # open calls are cancelled; no new ones
            say("the API thread did not stop in time; leaving it behind")
        service.stop_accepting()  # the worker finishes what it holds
    return stopped_by


async def checkpoint_on_the_way_out(store: EventStore, state_dir: Path) -> None:
    """What this run appended, verified and checkpointed: the next start
    then knows the head it left, and tells a log cut short since."""
    try:
        checked = await verify_since_checkpoint(store, state_dir / CHECKPOINT)
    except (EventStoreError, OSError) as error:
        say(f"no checkpoint on the way out ({error})")
        return
    if not checked.ok:
        say(f"the log does not verify on the way out: {checked.problem}")


async def snapshot_if_it_fits(service: FleetService) -> None:
    """The shutdown snapshot, skipped (with a word) when it cannot be
    written: snapshots are disposable, the next start folds the log."""
    try:
        await service.snapshot()
    except EventStoreError as error:
        say(f"no snapshot on the way out ({error}); the next start folds the log instead")


def own_fleet_id(state_dir: Path) -> str:
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


async def shared_fleet_id(store: EventStore, state_dir: Path) -> str:
    """The fleet's id in a shared store's log (stream "fleet-id"), so every
    daemon on it labels and finds the same pods: the first daemon records
    it, taking the state directory's if it has one (a log copied from a
    file store keeps its fleet's pods)."""
    async for record in store.read_stream(FLEET_ID_STREAM):
        return record.data.decode()
    path = state_dir / "fleet-id"
    fleet = path.read_text().strip() if path.exists() else uuid.uuid4().hex[:16]
    try:
        await store.append(
            FLEET_ID_STREAM, [NewEvent(type="FleetIdentified", data=fleet.encode())], NO_STREAM
        )
    except WrongExpectedVersion:
        return await shared_fleet_id(store, state_dir)  # another daemon recorded it first
    return fleet


def announce(state_dir: Path, socket_path: Path) -> Callable[[], None]:
    def ready() -> None:
        say(f"serving on {socket_path} (state in {state_dir})")

    return ready


def chosen_store(option: str | None) -> str | None:
    """--store, else $ONEINFRA_STORE, else None (the state directory's file).
    A URL is kept as given; anything else is a file's path."""
    chosen = option or os.environ.get(STORE_VARIABLE) or None
    if chosen is None or is_url(chosen):
        return chosen
    return str(Path(chosen).absolute())


def run_from_command_line(args: argparse.Namespace) -> int:
    """`oneinfra daemon ...`: serve until stopped; the exit code, and a line
    on stderr saying why it stopped, whatever the reason."""
    configure(args.log_format)
    if args.resync <= 0:
        say("--resync must be a positive number of seconds")
        return 2

    if args.metrics_address is not None:
        try:
            parse_address(args.metrics_address)  # refused before anything is touched
        except DaemonError as error:
            say(str(error))
            return 2
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    socket = chosen_socket(args.socket)  # the same rule as every client command
    store_target = chosen_store(args.store)
    try:
        stopped_by = anyio.run(
            lambda: serve(
                state_dir,
                socket,
                socket_group=args.socket_group,
                master_key=Path(args.master_key) if args.master_key else None,
                on_ready=announce(state_dir, socket),
                reconcile=None if args.no_reconcile else Options(resync=args.resync),
                metrics_address=args.metrics_address,
                notifier=Notifier.from_environment(),
                backup_dir=Path(args.backup_dir) if args.backup_dir else None,
                store_target=store_target,
            ),
            backend_options={"use_uvloop": True},
        )
    except (OneinfraError, EventStoreError, OSError) as error:
        say(str(error))
        return 1
    except KeyboardInterrupt:
        say("stopped on SIGINT while starting")
        return 1
    except BaseException as error:
        say(f"stopped by an unexpected error: {type(error).__name__}: {error}")
        traceback.print_exc()
        return 1
    say(f"stopped (on {stopped_by})")
    return 0
