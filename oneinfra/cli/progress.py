"""`--wait`: follow a cluster until it is ready (or gone), showing on a
terminal which component is where and what it waits for, redrawn in place
(rich); elsewhere (a log, a pipe) a line at each change."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.live import Live

import asyncio

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..api.pb.oneinfra.v1.fleet_grpc import FleetStub
from ..errors import WaitFailed
from ..model.kinds import CONTROL_PLANE
from .output import replies


def describe(cluster: api.Cluster) -> list[str]:
    status = cluster.status
    lines = [f"cluster {cluster.name}: {status.phase or 'pending'}: {status.reason}"]
    for c in cluster.components:
        lines.append(f"  {c.name:<18} on {c.hypervisor:<16} {c.phase:<9} {c.reason}")
    return lines


class Display:
    """Redraws its lines in place on a terminal; prints changes elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.shown: list[str] = []
        self._drawing: Live | None = None

    def show(self, lines: list[str]) -> None:
        if lines == self.shown:
            return
        if self.live:
            from rich.text import Text

            self.drawing().update(Text("\n".join(lines)), refresh=True)
        else:
            for line in lines:
                if line not in self.shown:
                    self.stream.write(line + "\n")
            self.stream.flush()
        self.shown = lines

    def drawing(self) -> Live:
        if self._drawing is None:
            from rich.console import Console
            from rich.live import Live

            self._drawing = Live(console=Console(file=self.stream), auto_refresh=False)
            self._drawing.start()
        return self._drawing

    def close(self) -> None:
        """The last drawing stays on the terminal."""
        if self._drawing is not None:
            self._drawing.stop()


def ready(cluster: api.Cluster, replicas: int | None) -> bool:
    if not cluster.status.ready or cluster.restoring_backup:  # a restore: once it is complete
        return False
    planes = [c for c in cluster.components if c.role == CONTROL_PLANE]
    return replicas is None or len(planes) == replicas


async def wait_ready(
    stub: FleetStub, name: str, seconds: float, replicas: int | None = None
) -> api.Cluster:
    """The cluster once it is ready (with `replicas` control planes)."""
    display = Display()
    last: api.Cluster | None = None
    request = api.WatchClusterRequest(name=name)
    try:
        async with asyncio.timeout(seconds):
            async for progress in replies(stub.WatchCluster, request):
                if not progress.HasField("cluster"):
                    raise WaitFailed(f"cluster {name} was deleted while waiting for it")
                last = progress.cluster
                display.show(describe(last) + [f"  {line}" for line in progress.remaining])
                if ready(last, replicas) and not progress.remaining:
                    return last
    except TimeoutError:
        pass
    finally:
        display.close()
    where = describe(last)[0] if last else f"cluster {name}: no news"
    raise WaitFailed(f"not ready after {seconds:g} s; {where}")


async def wait_gone(
    stub: FleetStub, name: str, cluster_id: str, deleted_at: int, seconds: float
) -> None:
    display = Display()
    remaining: list[str] = []
    request = api.WatchClusterRequest(name=name, deleted_at=deleted_at, cluster_id=cluster_id)
    try:
        async with asyncio.timeout(seconds):
            async for progress in replies(stub.WatchCluster, request):
                remaining = list(progress.remaining)
                display.show([f"cluster {name}: removing", *(f"  {r}" for r in remaining)])
                if progress.gone:
                    return
    except TimeoutError:
        pass
    finally:
        display.close()
    raise WaitFailed(f"still there after {seconds:g} s: {'; '.join(remaining) or 'unknown'}")
