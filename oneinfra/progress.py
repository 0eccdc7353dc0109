"""`--wait`: follow a cluster until it is ready (or gone), showing on a
terminal which component is where and what it waits for; elsewhere (a log,
a pipe) a line at each change."""

from __future__ import annotations

import sys
from typing import TextIO

import anyio

from .api.oneinfra import v1 as api


class WaitFailed(Exception):
    """The cluster did not get there in time; the message says where it is."""


def describe(cluster: api.Cluster) -> list[str]:
    status = cluster.status or api.ClusterStatus()
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

    def show(self, lines: list[str]) -> None:
        if lines == self.shown:
            return
        if self.live:
            if self.shown:
                self.stream.write(f"\x1b[{len(self.shown)}F\x1b[J")  # up, and clear below
            self.stream.write("\n".join(lines) + "\n")
        else:
            for line in lines:
                if line not in self.shown:
                    self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = lines


def ready(cluster: api.Cluster, replicas: int | None) -> bool:
    if not (cluster.status and cluster.status.ready):
        return False
    planes = [c for c in cluster.components if c.role == "control-plane"]
    return replicas is None or len(planes) == replicas


async def wait_ready(
    stub: api.FleetStub, name: str, seconds: float, replicas: int | None = None
) -> api.Cluster:
    """The cluster once it is ready (with `replicas` control planes)."""
    display = Display()
    last: api.Cluster | None = None
    with anyio.move_on_after(seconds):
        async for progress in stub.watch_cluster(api.WatchClusterRequest(name=name)):
            if progress.cluster is None:
                raise WaitFailed(f"cluster {name} was deleted while waiting for it")
            last = progress.cluster
            display.show(describe(last) + [f"  {line}" for line in progress.remaining])
            if ready(last, replicas) and not progress.remaining:
                return last
    where = describe(last)[0] if last else f"cluster {name}: no news"
    raise WaitFailed(f"not ready after {seconds:g} s; {where}")


async def wait_gone(
    stub: api.FleetStub, name: str, cluster_id: str, deleted_at: int, seconds: float
) -> None:
    display = Display()
    remaining: list[str] = []
    request = api.WatchClusterRequest(name=name, deleted_at=deleted_at, cluster_id=cluster_id)
    with anyio.move_on_after(seconds):
        async for progress in stub.watch_cluster(request):
            remaining = list(progress.remaining)
            display.show([f"cluster {name}: removing", *(f"  {r}" for r in remaining)])
            if progress.gone:
                return
    raise WaitFailed(f"still there after {seconds:g} s: {'; '.join(remaining) or 'unknown'}")
