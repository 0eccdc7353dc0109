"""CLI benchmark: how long `oneinfra` takes to answer, as a person runs it
(the installed command, a whole process each time), against the real daemon
holding a fleet of --clusters clusters (reconciler off: the command path).

Prints JSON lines {"metric", "value", "unit"}:
- `oneinfra version` and `oneinfra cluster list`: median, min and max wall
  time of --runs runs, and the first run's (colder caches);
- the time each spends importing modules (`python -X importtime`, the sum
  of every module's own time) and how many modules it imports;
- the floors, side by side: the interpreter doing nothing, and importing
  only the libraries any client of the API needs (argparse, asyncio,
  grpclib, protobuf's messages), so that a figure can be read as a ratio.

The package's bytecode is compiled first, as an installed package has it
(these machines set PYTHONDONTWRITEBYTECODE, which would make every run
compile oneinfra's sources again).

    .venv/bin/python benchmarks/cli_bench.py              # 100 clusters, 20 runs
    .venv/bin/python benchmarks/cli_bench.py --quick      # seconds, for tests
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

COMMAND = Path(sys.executable).with_name("oneinfra")  # the installed entry point
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|")
FLOORS = {
    "floor_python": "pass",
    "floor_client_libraries": "import argparse, asyncio, grpclib.client; "
    "from oneinfra.api.pb.oneinfra.v1 import fleet_pb2",
}


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit}), flush=True)


async def fleet(socket: Path, clusters: int) -> None:
    channel = Channel(path=str(socket))
    stub = FleetStub(channel)
    await stub.RegisterHypervisor(api.RegisterHypervisorRequest(
        name="public-0", endpoint="unix:///run/hv/public-0.sock", role="public",
        ip_address="192.0.2.1", port_range_low=1024, port_range_high=65535,
    ))  # fmt: skip
    await stub.RegisterHypervisor(api.RegisterHypervisorRequest(
        name="private-0", endpoint="unix:///run/hv/private-0.sock", role="private",
        ip_address="198.51.100.1", port_range_low=1024, port_range_high=65535,
    ))  # fmt: skip
    for index in range(clusters):
        await stub.CreateCluster(api.CreateClusterRequest(name=f"c{index}"))
    channel.close()


def timed(args: list[str], env: dict[str, str], command: Path = COMMAND) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(command), *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"oneinfra {' '.join(args)}: {result.stderr.decode()}")
    return elapsed


def import_totals(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds spent importing (every module's own time, summed), and how many modules."""
    result = subprocess.run(
        [str(COMMAND), *args], env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    own = [int(m.group(1)) for m in map(IMPORT_LINE.match, result.stderr.splitlines()) if m]
    return sum(own) / 1e6, len(own)


def measure(name: str, args: list[str], env: dict[str, str], runs: int) -> None:
    first = timed(args, env)
    samples = [timed(args, env) for _ in range(runs)]
    emit(f"{name}_first", first * 1000, "ms")
    emit(f"{name}_median", statistics.median(samples) * 1000, "ms")
    emit(f"{name}_min", min(samples) * 1000, "ms")
    emit(f"{name}_max", max(samples) * 1000, "ms")
    seconds, modules = import_totals(args, env)
    emit(f"{name}_import_time", seconds * 1000, "ms")
    emit(f"{name}_modules_imported", modules, "modules")


def floors(env: dict[str, str], runs: int) -> None:
    for name, code in FLOORS.items():
        samples = [timed(["-c", code], env, Path(sys.executable)) for _ in range(runs)]
        emit(f"{name}_median", statistics.median(samples) * 1000, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.clusters, args.runs = 5, 3
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root, "--no-reconcile")
        env = {**os.environ, "ONEINFRA_SOCKET": str(socket)}
        package = Path(__file__).resolve().parents[1] / "oneinfra"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
        try:
            anyio.run(fleet, socket, args.clusters)
            emit("config.clusters", args.clusters, "clusters")
            emit("config.runs", args.runs, "runs")
            measure("version", ["version"], env, args.runs)
            measure("cluster_list", ["cluster", "list"], env, args.runs)
            floors(env, args.runs)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
