"""Daemon benchmark: the real daemon (its socket, its SQLite store) driven
through its gRPC API, as `oneinfra` clients drive it.

Prints JSON lines {"metric", "value", "unit"}:
- round trip of `cluster create` (decision, full PKI, durable append) and of
  `cluster show`, p50 and p99, measured while the fleet grows to --clusters;
- rebuilding the state of all those clusters from the log, from the latest
  snapshot and from position 1, and walking its hash chain (what every start
  does before it serves);
- the daemon's resident memory per cluster (/proc/PID/status).

    .venv/bin/python benchmarks/daemon_bench.py              # 10,000 clusters
    .venv/bin/python benchmarks/daemon_bench.py --quick      # seconds, for tests
    .venv/bin/python benchmarks/daemon_bench.py --daemons 3  # on one PostgreSQL

With --daemons N, N daemons share one throwaway PostgreSQL store (durable),
and N clients, one per daemon, create the clusters at once: every decision
races the others' on the fleet stream's expected version.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.time_to_ready import start_daemon
from eventstore import SQLiteEventStore
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub
from oneinfra.daemon.service import SNAPSHOT_NAME, fold_from, rebuild
from oneinfra.model.state import FleetState


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit}), flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def hypervisor(name: str, role: str, address: str) -> api.RegisterHypervisorRequest:
    """Wide port ranges, so a few hypervisors hold the whole benchmark fleet."""
    return api.RegisterHypervisorRequest(
        name=name, endpoint=f"unix:///run/hv/{name}.sock", role=role, ip_address=address,
        port_range_low=1024, port_range_high=65535,
    )  # fmt: skip


async def drive(socket: Path, pid: int, clusters: int, shows: int) -> None:
    channel = Channel(path=str(socket))
    fleet = FleetStub(channel)
    await fleet.RegisterHypervisor(hypervisor("public-0", "public", "192.0.2.1"))
    for i in range(3):
        await fleet.RegisterHypervisor(hypervisor(f"private-{i}", "private", f"198.51.100.{i + 1}"))
    rss_before = rss_kib(pid)

    creates: list[float] = []
    started = time.perf_counter()
    for index in range(clusters):
        request = api.CreateClusterRequest(name=f"c{index}")
        start = time.perf_counter()
        await fleet.CreateCluster(request)
        creates.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - started
    emit("cluster_create_p50", statistics.median(creates) * 1000, "ms")
    emit("cluster_create_p99", percentile(creates, 0.99) * 1000, "ms")
    emit("cluster_create_rate", clusters / elapsed, "clusters/s")

    show: list[float] = []
    for index in range(shows):
        name = api.NameRequest(name=f"c{index * 7919 % clusters}")
        start = time.perf_counter()
        await fleet.GetCluster(name)
        show.append(time.perf_counter() - start)
    emit("cluster_show_p50", statistics.median(show) * 1000, "ms")
    emit("cluster_show_p99", percentile(show, 0.99) * 1000, "ms")

    rss_after = rss_kib(pid)
    emit("daemon_rss", rss_after / 1024, "MiB")
    emit("daemon_memory_per_cluster", (rss_after - rss_before) / clusters, "KiB")
    channel.close()


async def measure_rebuild(store_path: Path, clusters: int) -> None:
    async with await SQLiteEventStore.open(store_path, read_only=True) as store:
        snapshot = await store.latest_snapshot(SNAPSHOT_NAME)
        head = await store.head_position()
        start = time.perf_counter()
        state = await rebuild(store)
        from_snapshot = time.perf_counter() - start
        assert len(state.clusters) == clusters and snapshot is not None
        emit("rebuild_from_snapshot", from_snapshot, "s")
        emit("rebuild_events_after_snapshot", head - snapshot.position, "events")

        start = time.perf_counter()
        state = FleetState()
        await fold_from(store, state, 1)  # ignoring every snapshot
        emit("rebuild_without_snapshot", time.perf_counter() - start, "s")
        emit("rebuild_events", head, "events")
        assert len(state.clusters) == clusters

        # What a start does before it serves: the whole hash chain walked.
        start = time.perf_counter()
        report = await store.verify(integrity=False)
        emit("verify_chain_at_start", time.perf_counter() - start, "s")
        assert report.ok and report.records_checked == head


async def drive_many(sockets: list[Path], clusters: int) -> None:
    """One client per daemon, all creating at once; then the fleet each sees."""
    channels = [Channel(path=str(socket)) for socket in sockets]
    fleets = [FleetStub(channel) for channel in channels]
    await fleets[0].RegisterHypervisor(hypervisor("public-0", "public", "192.0.2.1"))
    for i in range(3):
        await fleets[0].RegisterHypervisor(
            hypervisor(f"private-{i}", "private", f"198.51.100.{i + 1}")
        )
    for fleet in fleets:  # each daemon has folded the first one's appends
        while len((await fleet.ListHypervisors(api.ListRequest())).hypervisors) < 4:  # noqa: ASYNC110 (another process)
            await anyio.sleep(0.05)
    creates: list[float] = []

    async def client(number: int, fleet: FleetStub) -> None:
        for index in range(number, clusters, len(fleets)):
            start = time.perf_counter()
            await fleet.CreateCluster(api.CreateClusterRequest(name=f"c{index}"))
            creates.append(time.perf_counter() - start)

    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for number, fleet in enumerate(fleets):
            tasks.start_soon(client, number, fleet)
    elapsed = time.perf_counter() - started
    emit("cluster_create_p50", statistics.median(creates) * 1000, "ms")
    emit("cluster_create_p99", percentile(creates, 0.99) * 1000, "ms")
    emit("cluster_create_rate", clusters / elapsed, "clusters/s")
    for fleet in fleets:
        while len((await fleet.ListClusters(api.ListRequest())).clusters) < clusters:  # noqa: ASYNC110 (another process)
            await anyio.sleep(0.1)  # followers catch up
    emit("daemons_agree", 1, "bool")
    for channel in channels:
        channel.close()


def bench_shared(args: argparse.Namespace) -> None:
    from tests.pgserver import running_postgres

    with tempfile.TemporaryDirectory() as directory, running_postgres(durable=True) as server:
        root = Path(directory)
        emit("config.clusters", args.clusters, "clusters")
        emit("config.daemons", args.daemons, "daemons")
        common = ("--no-reconcile", "--store", server.url())
        master = ("--master-key", str(root / "d0" / "state" / "master.key"))
        for i in range(args.daemons):
            (root / f"d{i}").mkdir()
        daemons = [start_daemon(root / "d0", *common)]
        daemons += [start_daemon(root / f"d{i}", *common, *master) for i in range(1, args.daemons)]
        try:
            sockets = [root / f"d{i}" / "oneinfra.sock" for i in range(args.daemons)]
            anyio.run(drive_many, sockets, args.clusters)
        finally:
            for daemon in daemons:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--shows", type=int, default=2000)
    parser.add_argument("--daemons", type=int, default=0, help="N daemons on one PostgreSQL")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clusters, args.shows = 30, 50
    if args.daemons:
        bench_shared(args)
        return
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        socket = root / "oneinfra.sock"
        # The command path alone: the hypervisors registered here do not
        # exist, and a reconciler would chase them (fleet_bench.py measures
        # the daemon with its reconciler, against fake hypervisors).
        daemon = start_daemon(root, "--no-reconcile")
        emit("config.clusters", args.clusters, "clusters")
        try:
            anyio.run(drive, socket, daemon.pid, args.clusters, args.shows)
        finally:
            daemon.send_signal(signal.SIGTERM)  # it snapshots on the way out
            daemon.wait(timeout=120)
        anyio.run(measure_rebuild, root / "state" / "events.db", args.clusters)


if __name__ == "__main__":
    main()
