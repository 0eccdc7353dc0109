"""Time to ready: from `cluster create` accepted to `/readyz` ok through the
cluster's ingress, with oneinfra's whole path (the daemon's log, the
reconciler, CRI on real containerd, the real images), side by side with the
floor (the same etcd and kube-apiserver started directly as host
processes, benchmarks/control_plane_floor.py), in the same run, alternating.
For 3 replicas the floor is 3 etcd members and 3 API servers started at
once, to the first /readyz ok: on one machine, the replicas' hypervisors
share its cores, and the floor shares them alike.

Brings the local hypervisors down and up first (oneinfra local; as
root), so that nothing else runs on its hypervisors while it measures.

    .venv/bin/python benchmarks/time_to_ready.py [--runs 5] [--replicas 1 3]
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
import httpx
import yaml
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import control_plane_floor
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub
from oneinfra.cli.output import replies
from oneinfra.local import config
from oneinfra.runtime.tls import client_context as client_tls

POLL = 0.02  # seconds between probes of /readyz


def start_daemon(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = root / "daemon.log"  # a file, not a pipe nobody reads after the first line
    with log.open("wb") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(root / "state"),
             "--socket", str(root / "oneinfra.sock"), *extra],
            stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while b"serving on" not in log.read_bytes():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not start: {log.read_text()}")
        time.sleep(0.05)
    return daemon


def readyz_client(kubeconfig: str) -> tuple[httpx.Client, str]:
    config_data = yaml.safe_load(kubeconfig)
    cluster = config_data["clusters"][0]["cluster"]
    user = config_data["users"][0]["user"]

    def decoded(field: str, source: dict[str, str]) -> bytes:
        import base64

        return base64.b64decode(source[field])

    tls = client_tls(
        decoded("certificate-authority-data", cluster).decode(),
        decoded("client-certificate-data", user).decode(),
        decoded("client-key-data", user),
    )
    return httpx.Client(verify=tls, timeout=1.0), cluster["server"]


async def oneinfra_once(stub: FleetStub, name: str, replicas: int) -> float:
    await stub.CreateCluster(api.CreateClusterRequest(name=name, control_plane_replicas=replicas))
    accepted = time.monotonic()
    issued = await stub.IssueKubeconfig(api.IssueKubeconfigRequest(cluster=name))
    client, server = readyz_client(issued.kubeconfig)
    with client:
        while True:
            try:
                if client.get(f"{server}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - accepted > 300:
                raise RuntimeError(f"{name} not ready within 300 s")
            await anyio.sleep(POLL)
    elapsed = time.monotonic() - accepted
    # Gone before the next run, so that runs do not overlap.
    cluster_id = (await stub.GetCluster(api.NameRequest(name=name))).cluster_id
    reply = await stub.DeleteCluster(api.NameRequest(name=name))
    request = api.WatchClusterRequest(name=name, deleted_at=reply.position, cluster_id=cluster_id)
    async for progress in replies(stub.WatchCluster, request):
        if progress.gone:
            break
    return elapsed


async def measure(args: argparse.Namespace, socket: Path) -> dict[str, list[float]]:
    channel = Channel(path=str(socket))
    stub = FleetStub(channel)
    for hv in config.hypervisors():
        await stub.RegisterHypervisor(
            api.RegisterHypervisorRequest(
                name=hv.name, endpoint=f"unix://{hv.socket}", role=hv.role,
                ip_address=hv.address, data_dir=str(hv.data_dir),
            )
        )  # fmt: skip
    samples: dict[str, list[float]] = {}
    await oneinfra_once(stub, "warm-up", 1)  # images onto the hypervisors, caches warm
    for run in range(args.runs):
        for replicas in args.replicas:
            floor = await anyio.to_thread.run_sync(control_plane_floor.once, args.version, replicas)
            samples.setdefault(f"floor_{replicas}", []).append(floor)
            elapsed = await oneinfra_once(stub, f"ttr-{replicas}-{run}", replicas)
            samples.setdefault(f"oneinfra_{replicas}", []).append(elapsed)
    channel.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--version", default=config.KUBERNETES_VERSIONS[0])
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    for step in ("down", "up"):
        subprocess.run([sys.executable, "-m", "oneinfra", "local", step], cwd=root, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp))
        try:
            samples = anyio.run(measure, args, Path(tmp) / "oneinfra.sock")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    common = {"version": args.version, "runs": args.runs, "host": os.uname().nodename}
    for replicas in args.replicas:
        floor = statistics.median(samples[f"floor_{replicas}"])
        print(json.dumps({"metric": f"floor_{replicas}_member_time_to_ready_median",
                          "value": round(floor, 3), "unit": "s",
                          "samples": [round(s, 3) for s in samples[f"floor_{replicas}"]],
                          **common}))  # fmt: skip
        values = samples[f"oneinfra_{replicas}"]
        median = statistics.median(values)
        print(json.dumps({"metric": f"time_to_ready_{replicas}_replica_median",
                          "value": round(median, 3), "unit": "s",
                          "samples": [round(s, 3) for s in values], **common}))  # fmt: skip
        print(json.dumps({"metric": f"time_to_ready_{replicas}_replica_vs_floor",
                          "value": round(median / floor, 3), "unit": "ratio", "target": 1.2,
                          **common}))  # fmt: skip


if __name__ == "__main__":
    main()
