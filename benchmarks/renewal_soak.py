"""Ten minutes of two-minute certificates, under load (a long run, not in
CI): a cluster made with `--certificate-lifetime 2m` runs for 10 minutes
on the local hypervisors (as root) while a client reads a namespace
through the ingress every 100 ms, on one kept-alive connection. The
daemon renews every leaf when 2/3 of its life is gone (80 s), and the
reconciler rolls the new ones out. Reported, for 3 replicas and for 1:
how many times each certificate was renewed (the fewest and the most),
the requests that failed and why, and the outages (runs of failed
requests: how many, the longest, the median).

    .venv/bin/python benchmarks/renewal_soak.py [--minutes 10] [--replicas 3 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.join_bench import add_hypervisors, api_client, emit, local_up, oneinfra
from benchmarks.renewal_bench import Client
from benchmarks.time_to_ready import start_daemon


def renewals(socket: Path, name: str) -> Counter[str]:
    """How many times each certificate was renewed, from the cluster's history."""
    counted: Counter[str] = Counter()
    for line in oneinfra(socket, "history", "--cluster", name, "-o", "json").splitlines():
        event = json.loads(line)
        if event["type"] == "CertificatesRenewed":
            counted.update(json.loads(event["dataJson"])["certificates"].keys())
    return counted


def soak(socket: Path, replicas: int, minutes: float) -> None:
    name = f"soak{replicas}"
    oneinfra(socket, "cluster", "create", name, "--control-plane-replicas", str(replicas),
             "--certificate-lifetime", "2m", "--ca-lifetime", "1h",
             "--wait", "--timeout", "5m")  # fmt: skip
    shown = json.loads(oneinfra(socket, "cluster", "show", name, "-o", "json"))
    leaves = [c["id"] for c in shown["certificates"] if not c["ca"]]
    kubeconfig = oneinfra(socket, "cluster", "kubeconfig", name)
    recorder = Client(api_client(kubeconfig, http2=True))  # as kubectl and client-go
    recorder.start()
    time.sleep(minutes * 60)
    recorder.stopped.set()
    recorder.join()
    counted = renewals(socket, name)
    times = [counted.get(leaf, 0) for leaf in leaves]
    why = recorder.why
    down = recorder.outages()
    tag = {"replicas": replicas, "minutes": minutes, "leaf_lifetime_s": 120}
    emit("soak_renewals_per_certificate_min", min(times), "renewals", max=max(times),
         certificates=len(leaves), **tag)  # fmt: skip
    emit("soak_failed_requests", sum(why.values()), "requests",
         made=len(recorder.outcomes), why=dict(why), retried=recorder.retried,
         **tag)  # fmt: skip
    emit("soak_outages", len(down), "outages", longest_s=round(max(down, default=0), 1),
         median_s=round(statistics.median(down), 1) if down else 0, **tag)  # fmt: skip
    oneinfra(socket, "cluster", "delete", name, "--wait", "--timeout", "5m")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, nargs="+", default=[3, 1])
    args = parser.parse_args()
    machines = local_up("--private", "3")
    with tempfile.TemporaryDirectory(prefix="oneinfra-renewal-soak-") as tmp:
        root = Path(tmp)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root)
        try:
            add_hypervisors(socket, machines)
            for replicas in args.replicas:
                soak(socket, replicas, args.minutes)
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
