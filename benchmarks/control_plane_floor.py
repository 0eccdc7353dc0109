"""The floor for time-to-ready: etcd and kube-apiserver started directly as
host processes, with the flags oneinfra's containers get, timed from start
to /readyz ok. No orchestrator can beat it; the reconciler's time-to-ready
is compared against it.

Needs the binaries the local hypervisors build (oneinfra local up).

    .venv/bin/python benchmarks/control_plane_floor.py [--runs 5] [--version v1.37.2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oneinfra.local import config, sources
from tests.e2e import controlplane

# kube-apiserver refuses a loopback --advertise-address. It only publishes it
# (for the kubernetes service's endpoints); it listens on 0.0.0.0, so clients
# here reach it on 127.0.0.1 and nothing needs to reach this address.
ADVERTISE = "10.213.1.1"


def once(version: str, members: int = 1) -> float:
    """Seconds from starting `members` etcd members and as many API servers
    (each on its own member) to the first /readyz ok: what an ingress needs."""
    found = sources.current()
    kube, etcd = found.kubernetes[version], found.etcd
    ports = [
        controlplane.Ports(
            etcd_client=33790 + 20 * i, etcd_peer=33800 + 20 * i, apiserver=36443 + i
        )
        for i in range(members)
    ]
    initial = ",".join(f"m{i}=https://127.0.0.1:{p.etcd_peer}" for i, p in enumerate(ports))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        controlplane.write_pki(root / "pki", "127.0.0.1")
        commands: dict[str, list[str]] = {}
        for i, p in enumerate(ports):
            etcd_cmd = controlplane.etcd_command(
                str(root / "pki"), str(root / f"etcd-{i}"), "127.0.0.1", p, f"m{i}", initial
            )
            api_cmd = controlplane.apiserver_command(str(root / "pki"), ADVERTISE, p)
            etcd_cmd[0] = str(etcd["etcd"])
            api_cmd[0] = str(kube["kube-apiserver"])
            commands[f"etcd-{i}"], commands[f"kube-apiserver-{i}"] = etcd_cmd, api_cmd
        started = time.monotonic()
        logs = {name: (root / f"{name}.log").open("w") for name in commands}
        processes = [
            subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)
            for name, cmd in commands.items()
        ]
        try:
            while not any(
                controlplane.readyz(root / "pki", "127.0.0.1", p.apiserver) for p in ports
            ):
                if time.monotonic() - started > 120:
                    tails = {n: (root / f"{n}.log").read_text()[-2000:] for n in logs}
                    raise RuntimeError(f"kube-apiserver did not become ready within 120 s: {tails}")
                time.sleep(0.05)
            return time.monotonic() - started
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for log in logs.values():
                log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--version", default=config.KUBERNETES_VERSIONS[0])
    parser.add_argument("--members", type=int, default=1)
    args = parser.parse_args()
    samples = [once(args.version, args.members) for _ in range(args.runs)]
    for metric, value in (
        ("floor_time_to_ready_median", statistics.median(samples)),
        ("floor_time_to_ready_min", min(samples)),
        ("floor_time_to_ready_max", max(samples)),
    ):
        print(
            json.dumps(
                {
                    "metric": metric,
                    "value": round(value, 3),
                    "unit": "s",
                    "version": args.version,
                    "runs": args.runs,
                    "members": args.members,
                }
            )
        )


if __name__ == "__main__":
    main()
