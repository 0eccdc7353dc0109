"""What the reconciler's loops share: the fleet, the options, the status
board, the doorbells, the CRI connections, what the cluster loops learned
of etcd, and the events already read."""

from __future__ import annotations

from dataclasses import dataclass

from ..storage.logreader import EventCache
from .board import StatusBoard
from .connections import Connections
from .fleet import Fleet, Options
from .membership import Memberships
from .workqueue import Doorbells


@dataclass
class Shared:
    fleet: Fleet
    options: Options
    board: StatusBoard
    doorbells: Doorbells
    connections: Connections
    memberships: Memberships
    events: EventCache
