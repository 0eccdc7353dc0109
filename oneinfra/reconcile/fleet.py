"""What the reconciler is given: the fleet it drives (the daemon's service,
seen through the little it needs of it) and its options."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from eventstore import EventStore

from ..model import commands as cmd
from ..model.decider.context import Decision
from ..model.state import FleetState
from ..runtime.cri import DEFAULT_TIMEOUT
from ..runtime.probe import readyz

RESYNC = 30.0  # seconds between passes of a converged hypervisor or a ready cluster
QUICK = 0.25  # seconds between passes while something is under way
MAX_BACKOFF = 60.0  # seconds, for a hypervisor that keeps failing
# Probes of API servers a second, fleet-wide: a cluster alone is probed each
# `quick`, but a thousand starting at once (a restore onto new machines)
# would take more than a core probing 4,000 times a second. They share this.
PROBE_RATE = 200.0

Probe = Callable[[str, ssl.SSLContext], Awaitable[str | None]]  # endpoint, TLS -> why not ready


class DataKeys(Protocol):
    def get(self, key_id: str) -> bytes: ...


class Executed(Protocol):
    @property
    def decision(self) -> Decision: ...


class Fleet(Protocol):
    """The desired state and the log it comes from (daemon.service.FleetService)."""

    @property
    def store(self) -> EventStore: ...

    @property
    def state(self) -> FleetState: ...

    @property
    def keys(self) -> DataKeys: ...

    async def wait_position(self, position: int) -> None:
        """Returns once the state has folded the log up to `position`."""

    async def execute(self, command: cmd.Command) -> Executed:
        """Decided and appended as the daemon itself (no actor): what a
        cluster asks of it (a worker's VPN key). Raises DomainError."""


def no_pass_observer(hypervisor: str, result: str, seconds: float) -> None:
    pass


CriObserver = Callable[[str, str, str, float], None]  # hypervisor, method, result, seconds


def no_cri_observer(hypervisor: str, method: str, result: str, seconds: float) -> None:
    pass


@dataclass
class Options:
    resync: float = RESYNC
    quick: float = QUICK
    max_backoff: float = MAX_BACKOFF
    cri_timeout: float = DEFAULT_TIMEOUT
    probe: Probe = readyz
    probe_rate: float = PROBE_RATE
    fleet: str = ""  # labels this daemon's pods, so that hypervisors may be shared
    # Told of every hypervisor pass: its hypervisor, "ok" or "failed", seconds.
    observe_pass: Callable[[str, str, float], None] = field(default=no_pass_observer)
    observe_cri: CriObserver = field(default=no_cri_observer)
