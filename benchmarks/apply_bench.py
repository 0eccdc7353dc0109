"""`oneinfra apply -f` of a directory of 1,000 clusters (one file each) to
an empty fleet, and again unchanged, beside 1,000 `CreateCluster` calls from
one client (the fastest imperative way there is) and the cost of one
`oneinfra cluster create` process. The real daemon, its SQLite store, its
reconciler off (the hypervisors named do not exist): the command path.

Prints JSON lines {"metric", "value", "unit"}; each run alternates the
sides, on a fresh daemon each.

    .venv/bin/python benchmarks/apply_bench.py --runs 3
    .venv/bin/python benchmarks/apply_bench.py --clusters 20 --runs 1   # seconds, for tests
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.time_to_ready import start_daemon
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub

HYPERVISORS = """\
apiVersion: oneinfra.io/v1
kind: Hypervisor
metadata: {{name: {name}}}
spec:
  endpoint: unix:///run/hv/{name}.sock
  ipAddress: {address}
  role: {role}
  portRange: {{low: 1024, high: 65535}}
"""
CLUSTER = """\
apiVersion: oneinfra.io/v1
kind: Cluster
metadata: {{name: {name}}}
spec:
  controlPlaneReplicas: 1
  certificateLifetime: 90d
"""
FLEET = [("public-0", "192.0.2.1", "public")] + [
    (f"private-{i}", f"198.51.100.{i + 1}", "private") for i in range(3)
]


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit, **extra}),
          flush=True)  # fmt: skip


def write_fleet(directory: Path, clusters: int) -> None:
    directory.mkdir()
    (directory / "hypervisors.yaml").write_text(
        "---\n".join(HYPERVISORS.format(name=n, address=a, role=r) for n, a, r in FLEET)
    )
    (directory / "clusters").mkdir()
    for index in range(clusters):
        name = f"c{index:04d}"
        (directory / "clusters" / f"{name}.yaml").write_text(CLUSTER.format(name=name))


def cli(socket: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(os.environ, ONEINFRA_SOCKET=str(socket))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "oneinfra", *args], capture_output=True,
                          text=True, env=env, timeout=600, check=False)  # fmt: skip
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"oneinfra {' '.join(args)}: {done.stderr}")
    return elapsed, done


def with_daemon(root: Path) -> subprocess.Popen[bytes]:
    root.mkdir()
    return start_daemon(root, "--no-reconcile")


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=120)


def apply_side(root: Path, fleet: Path, clusters: int) -> dict[str, float]:
    daemon = with_daemon(root)
    socket = root / "oneinfra.sock"
    try:
        empty, done = cli(socket, "apply", "-f", str(fleet))
        assert done.stdout.count(" created") == clusters + len(FLEET), done.stdout[-500:]
        unchanged, done = cli(socket, "apply", "-f", str(fleet))
        assert done.stdout.count(" unchanged") == clusters + len(FLEET), done.stdout[-500:]
        dry, _ = cli(socket, "apply", "-f", str(fleet), "--dry-run")
    finally:
        stop(daemon)
    return {"empty": empty, "unchanged": unchanged, "dry_run": dry}


async def creates(socket: Path, clusters: int) -> float:
    channel = Channel(path=str(socket))
    fleet = FleetStub(channel)
    try:
        for name, address, role in FLEET:
            await fleet.RegisterHypervisor(api.RegisterHypervisorRequest(
                name=name, endpoint=f"unix:///run/hv/{name}.sock", role=role,
                ip_address=address, port_range_low=1024, port_range_high=65535,
            ))  # fmt: skip
        began = time.perf_counter()
        for index in range(clusters):
            await fleet.CreateCluster(api.CreateClusterRequest(
                name=f"c{index:04d}", control_plane_replicas=1,
                certificate_lifetime_seconds=90 * 86400,
            ))  # fmt: skip
        return time.perf_counter() - began
    finally:
        channel.close()


def create_side(root: Path, clusters: int, processes: int) -> dict[str, float]:
    daemon = with_daemon(root)
    socket = root / "oneinfra.sock"
    try:
        calls = anyio.run(creates, socket, clusters)
        one = [cli(socket, "cluster", "create", f"p{i}")[0] for i in range(processes)]
    finally:
        stop(daemon)
    return {"calls": calls, "process": statistics.median(one)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=20, help="`cluster create` processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        fleet = root / "fleet"
        write_fleet(fleet, args.clusters)
        for run in range(args.runs):
            applied = apply_side(root / f"apply-{run}", fleet, args.clusters)
            created = create_side(root / f"create-{run}", args.clusters, args.processes)
            tags = {"clusters": args.clusters, "run": run + 1}
            emit("apply_to_empty", applied["empty"], "s", **tags)
            emit("apply_unchanged", applied["unchanged"], "s", **tags)
            emit("apply_dry_run", applied["dry_run"], "s", **tags)
            emit("create_calls_one_client", created["calls"], "s", **tags)
            emit("cluster_create_process_p50", created["process"] * 1000, "ms", **tags)
            emit("apply_to_empty_vs_create_calls", created["calls"] / applied["empty"], "x",
                 **tags)  # fmt: skip


if __name__ == "__main__":
    main()
