"""Workers joining: from the join command started to the Node Ready, for
`oneinfra node join` (through `oneinfra local join`) and stock `kubeadm
join` on the same machine, in the same run, alternating; five workers
joined at once to one cluster, to all Ready; and the daemon's CPU per node
per minute while the cluster and its nodes are steady.

Each time includes making the token (`cluster join-command`), as a user
would run it, and the pod network starting on the node (a node is Ready
once its CNI configuration is written).

Brings the local hypervisors down and up with five workers first
(oneinfra local; as root).

    .venv/bin/python benchmarks/join_bench.py [--runs 5] [--steady 60]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.time_to_ready import start_daemon
from oneinfra.runtime.tls import client_context

WORKERS = 5
POLL = 0.05


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}),
          flush=True)  # fmt: skip


def oneinfra(socket: Path, *args: str) -> str:
    env = dict(os.environ, ONEINFRA_SOCKET=str(socket))
    done = subprocess.run([sys.executable, "-m", "oneinfra", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"oneinfra {' '.join(args)}: {done.stderr}")
    return done.stdout


def api_client(kubeconfig: str, http2: bool = False) -> httpx.Client:
    config = yaml.safe_load(kubeconfig)
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    tls = client_context(
        base64.b64decode(cluster["certificate-authority-data"]).decode(),
        base64.b64decode(user["client-certificate-data"]).decode(),
        base64.b64decode(user["client-key-data"]),
    )
    return httpx.Client(verify=tls, timeout=2.0, base_url=cluster["server"], http2=http2)


def ready(client: httpx.Client, node: str) -> bool:
    try:
        reply = client.get(f"/api/v1/nodes/{node}")
    except httpx.HTTPError:
        return False
    if reply.status_code != 200:
        return False
    conditions = reply.json().get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def join(socket: Path, worker: str, kubeadm: bool) -> None:
    words = oneinfra(socket, "cluster", "join-command", "bench").splitlines()[0].split()
    endpoint, token, ca_hash = words[3], words[5], words[7]
    how = ["--kubeadm"] if kubeadm else []
    oneinfra(socket, "local", "join", worker, endpoint, "--token", token,
             "--discovery-token-ca-cert-hash", ca_hash, *how)  # fmt: skip


def timed_join(socket: Path, client: httpx.Client, worker: str, kubeadm: bool) -> float:
    started = time.monotonic()
    join(socket, worker, kubeadm)
    while not ready(client, worker):
        time.sleep(POLL)
    return time.monotonic() - started


def leave(socket: Path, client: httpx.Client, worker: str) -> None:
    oneinfra(socket, "local", "leave", worker)
    client.delete(f"/api/v1/nodes/{worker}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_up(*flags: str) -> list[dict[str, Any]]:
    """The local hypervisors brought down, then up with `flags`: the machines."""
    local = [sys.executable, "-m", "oneinfra", "local"]
    subprocess.run([*local, "down"], check=True, capture_output=True)
    up = [*local, "up", *flags, "-o", "json"]
    found: list[dict[str, Any]] = json.loads(
        subprocess.run(up, check=True, stdout=subprocess.PIPE, text=True).stdout
    )
    return found


def add_hypervisors(socket: Path, machines: list[dict[str, Any]]) -> None:
    for hv in (m for m in machines if m["role"] != "worker"):
        oneinfra(socket, "hypervisor", "add", hv["name"], "--endpoint", hv["endpoint"],
                 "--ip-address", hv["address"], f"--{hv['role']}",
                 "--data-dir", hv["dataDir"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady CPU")
    args = parser.parse_args()
    machines = local_up("--workers", str(WORKERS))
    with tempfile.TemporaryDirectory(prefix="oneinfra-join-bench-") as tmp:
        root = Path(tmp)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root)
        try:
            add_hypervisors(socket, machines)
            oneinfra(socket, "cluster", "create", "bench", "--wait", "--timeout", "5m")
            client = api_client(oneinfra(socket, "cluster", "kubeconfig", "bench"))
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed_join(socket, client, "w0", kubeadm=False))
                theirs.append(timed_join(socket, client, "w1", kubeadm=True))
                leave(socket, client, "w0")
                leave(socket, client, "w1")
            emit("node_join_to_ready", statistics.median(ours), "s",
                 runs=[round(t, 2) for t in ours])  # fmt: skip
            emit("kubeadm_join_to_ready", statistics.median(theirs), "s",
                 runs=[round(t, 2) for t in theirs])  # fmt: skip
            emit("node_join_over_kubeadm_join", statistics.median(ours) / statistics.median(theirs),
                 "ratio")  # fmt: skip

            workers = [f"w{i}" for i in range(WORKERS)]
            started = time.monotonic()
            threads = [threading.Thread(target=join, args=(socket, w, False)) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            while not all(ready(client, w) for w in workers):
                time.sleep(POLL)
            emit("five_workers_at_once_all_ready", time.monotonic() - started, "s")

            time.sleep(10)  # let the joins settle
            before, at = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(args.steady)
            used = cpu_seconds(daemon.pid) - before
            minutes = (time.monotonic() - at) / 60
            emit("daemon_cpu_per_node_per_minute", used / minutes / WORKERS, "cpu-s",
                 nodes=WORKERS, clusters=1)  # fmt: skip
            for worker in workers:
                oneinfra(socket, "local", "leave", worker)
            oneinfra(socket, "cluster", "delete", "bench", "--wait", "--timeout", "5m")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
