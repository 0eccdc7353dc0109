"""Backups and restores, side by side with the tools alone, in one run.

--real (the default): on the local hypervisors (real containerd, the real
etcd image), a cluster whose etcd holds about --megabytes of ConfigMaps:

- `oneinfra cluster backup` (etcdctl snapshot save in the member, etcdutl
  snapshot status, read out through CRI, sealed, recorded), against
  `etcdctl snapshot save` run by hand in the same container through CRI;
- `oneinfra cluster restore --wait` (the snapshot carried in through CRI,
  etcdutl snapshot restore, etcd started again, the API ready, recorded),
  against `etcdutl snapshot restore` of the same snapshot by hand, on this
  host, into a fresh directory.

--scheduled: the real daemon over 100 fake hypervisors (as fleet_bench),
100 clusters backed up every minute: the daemon's CPU and the no-op
passes with the schedules and without, side by side.

    .venv/bin/python benchmarks/backup_bench.py [--megabytes 100] [--runs 3]
    .venv/bin/python benchmarks/backup_bench.py --scheduled [--clusters 100]
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
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import fleet_bench, time_to_ready
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub
from oneinfra.local import config
from oneinfra.runtime.cri import HypervisorClient
from oneinfra.runtime.etcdctl import Etcd
from oneinfra.storage.keystore import KeyStore, read_master_key
from oneinfra.storage.sealedfile import read_sealed

CONFIG_MAP = 900 * 1024  # bytes of data a ConfigMap carries (the API takes 1 MiB at most)
ETCDUTL = Path.home() / ".cache/oneinfra/bin"  # the local builds' etcd binaries


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}),
          flush=True)  # fmt: skip


def cli(root: Path, *args: str, timeout: float = 600) -> Any:
    env = dict(os.environ, ONEINFRA_SOCKET=str(root / "oneinfra.sock"))
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", *args, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"oneinfra {' '.join(args)}: {result.stderr}")
    return json.loads(result.stdout) if result.stdout.strip() else None


def timed(call: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    value = call()
    return time.perf_counter() - began, value


def fill(root: Path, kubeconfig: Path, megabytes: int) -> None:
    """ConfigMaps of CONFIG_MAP bytes each, up to about `megabytes`."""
    kubectl = str(Path(sys.executable).parent / "kubectl")
    count = megabytes * 1024 * 1024 // CONFIG_MAP
    for start in range(0, count, 10):
        items = [{"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"big-{i}", "namespace": "default"},
                  "data": {"blob": os.urandom(CONFIG_MAP // 2).hex()}}
                 for i in range(start, min(count, start + 10))]  # fmt: skip
        manifest = root / "fill.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "create", "-f", str(manifest)],
                       check=True, capture_output=True, timeout=300)  # fmt: skip


async def by_hand_save(endpoint: str, container: str, port: int) -> float:
    """`etcdctl snapshot save` in the member's container, as an operator
    would run it through crictl exec."""
    client = HypervisorClient(endpoint, timeout=30)
    try:
        etcd = Etcd(client, container, port)
        began = time.perf_counter()
        await etcd.run_long(600, "snapshot", "save", "/var/lib/etcd/by-hand.db")
        took = time.perf_counter() - began
        await client.exec_sync(container, ["etcdutl", "version"], 10)  # the tool is there
        return took
    finally:
        client.close()


def etcd_member(cluster: dict[str, Any]) -> tuple[str, str, int]:
    """The hypervisor endpoint, etcd container id and client port of the
    cluster's first member."""
    member = next(c for c in cluster["components"] if c["role"] == "control-plane")
    hv = next(h for h in config.hypervisors() if h.name == member["hypervisor"])

    async def find() -> str:
        client = HypervisorClient(f"unix://{hv.socket}", timeout=30)
        try:
            found = await client.list_containers({
                "oneinfra.io/cluster-id": cluster["clusterId"],
                "oneinfra.io/component": member["name"], "oneinfra.io/role": "etcd",
            })  # fmt: skip
            return next(c.id for c in found if c.state == 1)  # running
        finally:
            client.close()

    return f"unix://{hv.socket}", anyio.run(find), int(member["ports"]["etcd-client"])


def plain_snapshot(root: Path, backup: dict[str, Any], cluster: dict[str, Any], out: Path) -> None:
    state = root / "state"
    keys = KeyStore(state / "keys.db", read_master_key(state / "master.key"))
    try:
        key = next(keys.get(k) for k in keys_of(root, cluster["name"]))
    finally:
        keys.close()
    with out.open("wb") as file:
        for chunk in read_sealed(Path(backup["location"]), cluster["name"], cluster["clusterId"],
                                 backup["id"], key):  # fmt: skip
            file.write(chunk)


def keys_of(root: Path, name: str) -> list[str]:
    env = dict(os.environ, ONEINFRA_SOCKET=str(root / "oneinfra.sock"))
    lines = subprocess.run(
        [sys.executable, "-m", "oneinfra", "history", "--cluster", name, "-o", "json"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.splitlines()  # fmt: skip
    return [json.loads(e["dataJson"])["key_id"] for e in map(json.loads, lines)
            if e["type"] == "ClusterCreated"]  # fmt: skip


def by_hand_restore(snapshot: Path, directory: Path) -> float:
    etcdutl = next(ETCDUTL.glob("etcd-v*/etcdutl"))
    target = directory / f"restored-{time.monotonic_ns()}"
    began = time.perf_counter()
    subprocess.run([str(etcdutl), "snapshot", "restore", str(snapshot), "--data-dir", str(target),
                    "--bump-revision", "1000000000", "--mark-compacted"],
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - began


def real(args: argparse.Namespace) -> None:
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "oneinfra", "local", "up"], cwd=repo, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        daemon = time_to_ready.start_daemon(root)
        try:
            for hv in config.hypervisors():
                cli(root, "hypervisor", "add", hv.name, "--endpoint", f"unix://{hv.socket}",
                    "--ip-address", hv.address, f"--{hv.role}",
                    "--data-dir", str(hv.data_dir))  # fmt: skip
            cluster = cli(root, "cluster", "create", "big", "--wait", "--timeout", "5m")
            kubeconfig = root / "big.kubeconfig"
            env = dict(os.environ, ONEINFRA_SOCKET=str(root / "oneinfra.sock"))
            kubeconfig.write_text(subprocess.run(
                [sys.executable, "-m", "oneinfra", "cluster", "kubeconfig", "big"],
                capture_output=True, text=True, env=env, check=True).stdout)  # fmt: skip
            fill(root, kubeconfig, args.megabytes)
            endpoint, container, port = etcd_member(cluster)
            ours, theirs, backup = [], [], None
            for _ in range(args.runs):  # alternating, so that both see the same machine
                theirs.append(anyio.run(by_hand_save, endpoint, container, port))
                took, backup = timed(lambda: cli(root, "cluster", "backup", "big"))
                ours.append(took)
            assert backup is not None
            tag = {"megabytes": round(backup["size"] / 2**20, 1), "runs": args.runs}
            emit("etcdctl_snapshot_save_median", statistics.median(theirs), "s", **tag)
            emit("oneinfra_backup_median", statistics.median(ours), "s", **tag)
            emit("backup_vs_etcdctl", statistics.median(ours) / statistics.median(theirs),
                 "ratio", target=1.2, **tag)  # fmt: skip
            sealed = Path(backup["location"]).stat().st_size
            emit("backup_file_vs_snapshot_size", sealed / backup["size"], "ratio", **tag)
            snapshot = root / "plain.db"
            plain_snapshot(root, backup, cluster, snapshot)
            ours, theirs = [], []
            for _ in range(args.runs):
                theirs.append(by_hand_restore(snapshot, root))
                restore = ("cluster", "restore", "big", "--backup", backup["id"], "--wait",
                           "--timeout", "10m")  # fmt: skip
                took, _ = timed(lambda r=restore: cli(root, *r))
                ours.append(took)
            emit("etcdutl_snapshot_restore_median", statistics.median(theirs), "s", **tag)
            emit("oneinfra_restore_to_ready_median", statistics.median(ours), "s", **tag)
            emit("restore_vs_etcdutl", statistics.median(ours) / statistics.median(theirs),
                 "ratio", target=1.2, **tag)  # fmt: skip
            # Where a restore's time goes: the daemon says it for each member.
            said = re.findall(r"carried in in ([0-9.]+) s, etcdutl snapshot restore in ([0-9.]+) s",
                              (root / "daemon.log").read_text())  # fmt: skip
            if said:
                emit("restore_carry_in_median", statistics.median(float(a) for a, _ in said), "s",
                     **tag)  # fmt: skip
                emit("restore_etcdutl_in_pod_median",
                     statistics.median(float(b) for _, b in said), "s", **tag)  # fmt: skip
            cli(root, "cluster", "delete", "big", "--wait", "--timeout", "5m")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)


# -- scheduled backups over fake hypervisors -------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scheduled(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with AsyncExitStack() as stack:
            fakes = await fleet_bench.serve_fakes(stack, root, args.latency)
            for fake in fakes.values():
                fake.snapshot = os.urandom(1024 * 1024)  # a megabyte each
            daemon = await anyio.to_thread.run_sync(fleet_bench.start_daemon, root)
            channel = Channel(path=str(root / "oneinfra.sock"))
            stub = FleetStub(channel)
            try:
                await fleet_bench.register(root, list(fakes))
                for n in range(args.clusters):
                    await stub.CreateCluster(
                        api.CreateClusterRequest(name=f"c{n}", control_plane_replicas=3)
                    )
                await fleet_bench.wait_for(lambda: fleet_bench.all_running(fakes, args.clusters),
                                           600, "convergence")  # fmt: skip
                tag = {
                    "clusters": args.clusters,
                    "hypervisors": len(fakes),
                    "window_s": args.window,
                }
                idle = await window(daemon.pid, fakes, args)
                for n in range(args.clusters):
                    await stub.ScheduleBackups(api.ScheduleBackupsRequest(
                        name=f"c{n}", every_seconds=60, keep=3))  # fmt: skip
                before = await backups_taken(stub, args.clusters)
                busy = await window(daemon.pid, fakes, args)
                taken = await backups_taken(stub, args.clusters) - before
                emit("daemon_cpu_without_backups", idle[0] / args.window * 60, "s/min", **tag)
                emit("daemon_cpu_backups_every_minute", busy[0] / args.window * 60, "s/min",
                     backups=taken, **tag)  # fmt: skip
                emit("noop_pass_p99_without_backups", idle[1], "s", **tag)
                emit("noop_pass_p99_backups_every_minute", busy[1], "s", **tag)
                emit("noop_pass_p99_backups_vs_none", busy[1] / idle[1], "ratio", **tag)
            finally:
                channel.close()
                daemon.send_signal(signal.SIGTERM)
                await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))


async def window(pid: int, fakes: dict[str, Any], args: argparse.Namespace) -> tuple[float, float]:
    """The daemon's CPU seconds over the window, and the p99 of the no-op
    passes of one resync period within it."""
    began = cpu_seconds(pid)
    started = time.monotonic()
    passes, _ = await fleet_bench.noop_period(fakes, args.latency)
    await anyio.sleep(max(0.0, args.window - (time.monotonic() - started)))
    return cpu_seconds(pid) - began, fleet_bench.p99(passes)


async def backups_taken(stub: FleetStub, clusters: int) -> int:
    total = 0
    for n in range(clusters):
        total += len((await stub.ListBackups(api.NameRequest(name=f"c{n}"))).backups)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scheduled", action="store_true")
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--window", type=float, default=120.0)
    args = parser.parse_args()
    if args.scheduled:
        anyio.run(scheduled, args)
    else:
        real(args)


if __name__ == "__main__":
    main()
