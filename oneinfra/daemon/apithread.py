"""The socket's gRPC server, on a thread and event loop of its own: the
reconciler keeps the main loop busy while a fleet converges, and a query
would wait behind its work."""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import anyio
import uvloop
from grpclib.events import RecvRequest, listen

from ..errors import DaemonError
from .api import FleetServer
from .callers import remember_caller
from .wire import GuardedServer, QuietAccept

log = logging.getLogger("oneinfra.daemon")

BACKLOG = 1024  # connections waiting to be accepted (a burst of CLI calls)
STOP_WITHIN = 5.0  # seconds the API has to stop on SIGTERM


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


class ApiThread:
    """The socket's gRPC server, on a thread and event loop of its own: the
    reconciler keeps the main loop busy while a fleet converges, and a query
    would wait behind its work. The GIL hands this thread the interpreter
    within the switch interval (gc.py sets it)."""

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
        self._beat = 0.0  # when its loop last ran what answering() posted

    async def start(self) -> None:
        """Returns once the socket answers; raises what kept it from it."""
        self._thread.start()
        await anyio.to_thread.run_sync(self._started.wait)
        if self._error is not None:
            raise self._error

    async def stop(self, within: float = STOP_WITHIN) -> bool:
        """Closes the socket, cancels the calls in hand, and waits for them,
        `within` seconds at most: a thread stuck in a call's work must not
        keep the daemon from stopping (it is a daemon thread: it goes with
        the process). True if it stopped."""
        self._stopping = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await anyio.to_thread.run_sync(self._thread.join, within)
        return not self._thread.is_alive()

    def answering(self, within: float) -> bool:
        """Whether its event loop ran, within the last `within` seconds, the
        beat posted by the call before; posts the next one. The watchdog
        asks it: a wedged API thread is a daemon to restart."""
        now = time.monotonic()
        if self._loop is None or not self._thread.is_alive():
            return False
        if not self._beat:
            self._beat = now  # the first call: the loop is given its chance
        self._loop.call_soon_threadsafe(self._heard)
        return now - self._beat <= within

    def _heard(self) -> None:
        self._beat = time.monotonic()

    def _run(self) -> None:
        try:
            uvloop.run(self._serve())  # as the main loop (daemon/main.py)
        except BaseException as error:
            started = self._started.is_set()
            self._error = error
            self._started.set()  # start() raises it
            if started and not self._stopping:  # the API is gone: the daemon stops, says why
                log.error("the API thread failed: %r", error)
                os.kill(os.getpid(), signal.SIGTERM)

    async def _serve(self) -> None:
        asyncio.get_running_loop().set_exception_handler(QuietAccept())
        server = GuardedServer([self.fleet])
        listen(server, RecvRequest, remember_caller)
        clear_stale_socket(self.socket_path)
        umask = os.umask(0o177)  # the socket is born 0600: no window of wider access
        try:
            await server.start(path=str(self.socket_path), backlog=BACKLOG)
        finally:
            os.umask(umask)
        reaper = asyncio.create_task(server.close_idle_connections())
        secure_socket(self.socket_path, self.socket_group)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await self._stop.wait()
        reaper.cancel()
        server.close()
        await server.wait_closed()
