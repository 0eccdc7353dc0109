"""systemd's notify protocol (sd_notify(3)) for a `Type=notify` unit:
READY=1 once the daemon serves, STOPPING=1 when it is told to stop, and
WATCHDOG=1 every half of WatchdogSec while it is well.

A datagram of `KEY=VALUE` lines to the socket named by $NOTIFY_SOCKET (a
path, or an abstract name written with a leading "@"). The protocol is a
few lines, documented for reimplementation; without $NOTIFY_SOCKET (not
run by systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

import anyio

log = logging.getLogger("oneinfra.daemon")


def socket_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as an AF_UNIX address: "@name" is the abstract "\\0name"."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and other schemes: not ours to speak


class Notifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
        self._told_failure = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(socket_address(environ.get("NOTIFY_SOCKET", "")))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> None:
        """The assignments, one datagram; a failure is said once and
        otherwise ignored (systemd's own sd_notify is best-effort too)."""
        if self.address is None:
            return
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as error:
            if not self._told_failure:
                self._told_failure = True
                log.warning("cannot notify systemd at %r: %s", self.address, error)


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, pid: int | None = None
) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec, as systemd
    advises), or None when no watchdog is asked of this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None  # meant for another process (our parent, say)
    return int(usec) / 2_000_000


async def keep_watchdog(notifier: Notifier, interval: float, alive: Callable[[], bool]) -> None:
    """WATCHDOG=1 every `interval` while `alive()`: a daemon whose main
    loop stalls, or whose API stops answering, misses its pings and is
    restarted by systemd. Runs until cancelled."""
    while True:
        if alive():
            notifier.send("WATCHDOG=1")
        await anyio.sleep(interval)
