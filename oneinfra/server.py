"""The daemon's gRPC API on a Unix socket (grpclib, betterproto2 messages)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import errno
import fcntl
import grp
import os
import signal
import socket
import stat
import struct
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
from grpclib.const import Status
from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.protocol import Peer
from grpclib.server import Server

from eventstore import EventStoreError, SQLiteEventStore

from . import commands as cmd
from . import pauses, views
from .api.oneinfra import v1 as api
from .controller import Controller, Options
from .errors import DomainError
from .mainloop import MainLoop
from .secrets import KeyStore, load_or_create_master_key
from .service import Actor, Conflict, FleetService, Outcome, ServiceClosed
from .state import Cluster, FleetState
from .status import StatusBoard

DEFAULT_OPTIONS = Options()
WATCH_REFRESH = 2.0  # seconds: a watcher hears at least this often

T = TypeVar("T")

CALLER: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("caller", default=None)
CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation", default=None
)
CORRELATION_HEADER = "x-correlation-id"


def peer_actor(peer: Peer) -> Actor | None:
    """The caller's uid, gid and pid from the Unix socket (SO_PEERCRED).

    grpclib offers no public way to the connection's socket: it is taken from
    the transport Peer wraps; tests pin this so an upgrade cannot silently
    drop the caller's identity from the history.
    """
    transport = getattr(peer, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    size = struct.calcsize("3i")
    pid, uid, gid = struct.unpack(
        "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    )
    return Actor.from_credentials(uid, gid, pid)


async def remember_caller(event: RecvRequest) -> None:
    """Runs before each handler: the caller becomes visible to it."""
    actor = peer_actor(event.peer)
    correlation = event.metadata.get(CORRELATION_HEADER)
    handler = event.method_func

    async def with_caller(stream: Any) -> None:
        CALLER.set(actor)
        CORRELATION.set(str(correlation) if correlation else None)
        await handler(stream)

    event.method_func = with_caller


async def refusals_as_status(call: Awaitable[T]) -> T:
    """Domain refusals and daemon states as gRPC statuses with their message."""
    try:
        return await call
    except DomainError as error:
        raise GRPCError(Status.FAILED_PRECONDITION, str(error)) from None
    except Conflict as error:
        raise GRPCError(Status.ABORTED, str(error)) from None
    except ServiceClosed as error:
        raise GRPCError(Status.UNAVAILABLE, str(error)) from None
    except EventStoreError as error:
        raise GRPCError(Status.INTERNAL, f"the event store failed: {error}") from None


def parse_time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"{value!r} is not an RFC 3339 time (2026-11-24T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class FleetServer(api.FleetBase):
    """The API. Queries read the state and the board under their locks, on
    whichever loop serves the socket; what needs the store runs on the main
    loop (`main`), which owns it."""

    def __init__(
        self,
        service: FleetService,
        board: StatusBoard | None = None,
        main: MainLoop | None = None,
    ) -> None:
        self.service = service
        self.board = board or StatusBoard()  # the reconciler's; empty without one
        self.main = main or MainLoop()

    @contextlib.contextmanager
    def reading(self) -> Iterator[FleetState]:
        """The state and the board, held still while a query reads them."""
        with self.service.lock, self.board.lock:
            yield self.service.state

    def cluster_view(self, cluster: Cluster) -> api.Cluster:
        status = self.board.clusters.get(cluster.cluster_id)
        return views.cluster_view(cluster, self.service.state, status)

    async def _execute(
        self, command: cmd.Command, actor: Actor | None, correlation: str | None
    ) -> Outcome:
        return await refusals_as_status(self.service.execute(command, actor, correlation))

    async def _run(self, command: cmd.Command) -> int:
        outcome = await self.main.call(self._execute, command, CALLER.get(), CORRELATION.get())
        return outcome.position

    # -- commands -------------------------------------------------------------------

    async def register_hypervisor(self, message: api.RegisterHypervisorRequest) -> api.Hypervisor:
        await self._run(views.register_hypervisor(message))
        return await self.get_hypervisor(api.NameRequest(name=message.name))

    async def label_hypervisor(self, message: api.LabelHypervisorRequest) -> api.Hypervisor:
        await self._run(
            cmd.LabelHypervisor(
                name=message.name, set=dict(message.set), remove=list(message.remove)
            )
        )
        return await self.get_hypervisor(api.NameRequest(name=message.name))

    async def remove_hypervisor(self, message: api.NameRequest) -> api.CommandReply:
        return api.CommandReply(position=await self._run(cmd.RemoveHypervisor(name=message.name)))

    async def create_cluster(self, message: api.CreateClusterRequest) -> api.Cluster:
        await self._run(views.create_cluster(message))
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def scale_cluster(self, message: api.ScaleClusterRequest) -> api.Cluster:
        await self._run(
            cmd.ScaleCluster(
                name=message.name, control_plane_replicas=message.control_plane_replicas
            )
        )
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def delete_cluster(self, message: api.NameRequest) -> api.CommandReply:
        return api.CommandReply(position=await self._run(cmd.DeleteCluster(name=message.name)))

    async def issue_kubeconfig(self, message: api.IssueKubeconfigRequest) -> api.Kubeconfig:
        command = views.issue_kubeconfig(message)
        outcome = await self.main.call(self._execute, command, CALLER.get(), CORRELATION.get())
        (issued,) = outcome.decision.events
        assert outcome.decision.reply is not None
        return api.Kubeconfig(
            kubeconfig=outcome.decision.reply,
            serial=getattr(issued, "serial", ""),
            not_after=getattr(issued, "not_after", ""),
        )

    # -- queries --------------------------------------------------------------------

    async def get_hypervisor(self, message: api.NameRequest) -> api.Hypervisor:
        with self.reading() as state:
            hypervisor = state.hypervisors.get(message.name)
            if hypervisor is None:
                raise GRPCError(Status.NOT_FOUND, f"unknown hypervisor {message.name!r}")
            return views.hypervisor_view(hypervisor)

    async def list_hypervisors(self, message: api.ListRequest) -> api.HypervisorList:
        with self.reading() as state:
            hypervisors = sorted(state.hypervisors.items())
            return api.HypervisorList(
                hypervisors=[views.hypervisor_view(h) for _, h in hypervisors]
            )

    async def get_cluster(self, message: api.NameRequest) -> api.Cluster:
        with self.reading() as state:
            cluster = state.clusters.get(message.name)
            if cluster is None:
                raise GRPCError(Status.NOT_FOUND, f"unknown cluster {message.name!r}")
            return self.cluster_view(cluster)

    async def list_clusters(self, message: api.ListRequest) -> api.ClusterList:
        with self.reading() as state:
            clusters = sorted(state.clusters.items())
            return api.ClusterList(clusters=[self.cluster_view(c) for _, c in clusters])

    async def watch_cluster(
        self, message: api.WatchClusterRequest
    ) -> AsyncIterator[api.ClusterProgress]:
        if message.deleted_at:
            await self.main.call(self.service.wait_position, message.deleted_at)
        elif message.name not in self.service.state.clusters:
            raise GRPCError(Status.NOT_FOUND, f"unknown cluster {message.name!r}")
        last = None
        while True:
            with self.reading():
                progress = self.progress(message)
            if progress != last:
                yield progress
                last = progress
            if progress.gone:
                return
            await self.main.call(self.board_change, WATCH_REFRESH)

    async def board_change(self, seconds: float) -> None:
        """Returns at the board's next change, or after `seconds`."""
        with anyio.move_on_after(seconds):
            await self.board.changed()

    def progress(self, message: api.WatchClusterRequest) -> api.ClusterProgress:
        state = self.service.state
        cluster = state.clusters.get(message.name)
        if not message.deleted_at:
            if cluster is None:
                return api.ClusterProgress(gone=True)
            # Components scaled away that still run somewhere.
            leaving = self.board.remaining(cluster.name, cluster.cluster_id)
            lines = [
                f"{hv}: {component} (leaving)"
                for hv, names in sorted(leaving.items())
                for component in sorted(names)
                if component not in cluster.components
            ]
            return api.ClusterProgress(cluster=self.cluster_view(cluster), remaining=lines)
        cluster_id = message.cluster_id or None
        remaining = self.board.remaining(message.name, cluster_id)
        unobserved = [
            name
            for name in state.hypervisors
            if (health := self.board.hypervisors.get(name)) is None
            or health.observed_position < message.deleted_at
        ]
        lines = [f"{hv}: {', '.join(sorted(c))}" for hv, c in sorted(remaining.items())]
        for name in sorted(unobserved):
            health = self.board.hypervisors.get(name)
            why = f"unreachable: {health.error}" if health and health.error else "not observed yet"
            lines.append(f"{name}: {why}")
        return api.ClusterProgress(gone=not remaining and not unobserved, remaining=lines)

    # -- the audit trail ------------------------------------------------------------

    async def history(self, message: api.HistoryRequest) -> AsyncIterator[api.HistoryEvent]:
        async for event in self.main.stream(self.read_history, message):
            yield event

    async def read_history(self, message: api.HistoryRequest) -> AsyncIterator[api.HistoryEvent]:
        since = parse_time(message.since_time) if message.since_time else None
        events = self.service.history(
            since_position=max(1, message.since_position or 1),
            since=since,
            cluster=message.cluster,
            hypervisor=message.hypervisor,
            follow=message.follow,
        )
        async for record, _ in events:
            yield api.HistoryEvent(
                position=record.position,
                version=record.stream_version,
                type=record.type,
                schema_version=record.schema_version,
                recorded_at=record.recorded_at.isoformat(),
                data_json=record.data.decode(),
                metadata_json=record.metadata.decode(),
                hash=record.hash.hex(),
            )

    async def replay(self, message: api.ReplayRequest) -> api.FleetView:
        at = parse_time(message.time) if message.time else None
        state, last = await self.main.call(
            refusals_as_status, self.service.replay(message.position, at)
        )
        return views.fleet_view(state, last.recorded_at.isoformat() if last else "")

    async def verify_log(self, message: api.VerifyRequest) -> api.VerifyReply:
        report = await self.main.call(refusals_as_status, self.service.verify())
        return api.VerifyReply(
            ok=report.ok,
            records_checked=report.records_checked,
            head_position=report.head_position,
            head_hash=report.head_hash,
            first_bad_position=report.first_bad_position,
            reason=report.reason or "",
        )


# -- running the daemon ------------------------------------------------------------


class DaemonError(Exception):
    """The daemon cannot start; the message says why."""


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/oneinfra")
    return Path.home() / ".local" / "share" / "oneinfra"


def default_socket() -> Path:
    if os.geteuid() == 0:
        return Path("/run/oneinfra/oneinfra.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime or f"/tmp/oneinfra-{os.getuid()}") / "oneinfra.sock"


def prepare_directories(state_dir: Path, socket_path: Path) -> int:
    """Make the state and socket directories; returns the state dir's lock."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    return lock_state_dir(state_dir)


def remove_socket(path: Path) -> None:
    path.unlink(missing_ok=True)


def lock_state_dir(state_dir: Path) -> int:
    """One daemon per state directory: an exclusive lock held while it runs."""
    fd = os.open(state_dir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DaemonError(f"another oneinfra daemon is using {state_dir}") from None
    return fd


def clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a daemon that died; refuse one that answers."""
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise DaemonError(
            f"{path} exists and is not a socket; remove it or choose another --socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as error:
        if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise DaemonError(f"cannot check {path}: {error.strerror}") from None
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise DaemonError(f"a daemon already answers on {path}")


def secure_socket(path: Path, group: str | None) -> None:
    if group is None:
        os.chmod(path, 0o600)
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise DaemonError(f"unknown group {group!r} for --socket-group") from None
    os.chown(path, -1, gid)
    os.chmod(path, 0o660)


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
            pauses.after_start()
            api_thread = ApiThread(fleet, socket_path, socket_group)
            await api_thread.start()
            try:
                async with anyio.create_task_group() as tasks:
                    await tasks.start(service.run)
                    collector = pauses.Collector()
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


class ApiThread:
    """The socket's gRPC server, on a thread and event loop of its own: the
    reconciler keeps the main loop busy while a fleet converges, and a query
    would wait behind its work. The GIL hands this thread the interpreter
    within the switch interval (pauses.py sets it)."""

    def __init__(self, fleet: FleetServer, socket_path: Path, socket_group: str | None) -> None:
        self.fleet = fleet
        self.socket_path = socket_path
        self.socket_group = socket_group
        self._thread = threading.Thread(target=self._run, name="oneinfra-api", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    async def start(self) -> None:
        """Returns once the socket answers; raises what kept it from it."""
        self._thread.start()
        await anyio.to_thread.run_sync(self._started.wait)
        if self._error is not None:
            raise self._error

    async def stop(self) -> None:
        """Closes the socket, cancels the calls in hand, and waits for them."""
        self._stopping = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await anyio.to_thread.run_sync(self._thread.join)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            started = self._started.is_set()
            self._error = error
            self._started.set()  # start() raises it
            if started and not self._stopping:  # the API is gone: the daemon stops, says why
                print(f"oneinfra daemon: the API thread failed: {error!r}", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGTERM)

    async def _serve(self) -> None:
        server = Server([self.fleet])
        listen(server, RecvRequest, remember_caller)
        clear_stale_socket(self.socket_path)
        umask = os.umask(0o177)  # the socket is born 0600: no window of wider access
        try:
            await server.start(path=str(self.socket_path))
        finally:
            os.umask(umask)
        secure_socket(self.socket_path, self.socket_group)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()


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
