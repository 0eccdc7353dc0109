"""A CA rotation's two phases, end to end, on the local hypervisors (as
root): a 3-replica cluster, `cluster rotate-ca --phase prepare` until every
replica's API server runs in a container started since and serves a
certificate of the new CA, then `--phase complete` until every one
runs again from a container started since; with clients reading a
namespace through the ingress every 100 ms all along: one with the
kubeconfig from before the rotation (it must not fail through prepare),
one with a kubeconfig issued after prepare (it must not fail through
complete). Workers are left out here: tests/e2e/test_ca_rotation.py has
them.

    .venv/bin/python benchmarks/ca_rotation_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.join_bench import add_hypervisors, api_client, emit, local_up, oneinfra
from benchmarks.renewal_bench import Client, asked_throughout, replicas, started_since
from benchmarks.time_to_ready import start_daemon


def issuer_of(endpoint: str) -> x509.Name | None:
    host, _, port = endpoint.rpartition(":")
    try:
        pem = ssl.get_server_certificate((host, int(port)), timeout=2)
    except OSError:
        return None
    return x509.load_pem_x509_certificate(pem.encode()).issuer


def phase(socket: Path, name: str, asked: list[str], client: httpx.Client,
          done: Callable[[int], bool]) -> tuple[float, Client]:  # fmt: skip
    """Seconds from the command until `done(since_ns)` holds, and the
    client that asked meanwhile."""
    with asked_throughout(client) as asking:
        started, since_ns = time.monotonic(), time.time_ns()
        oneinfra(socket, "cluster", "rotate-ca", name, *asked)
        while not done(since_ns):
            if time.monotonic() - started > 900:
                raise RuntimeError(f"rotate-ca {' '.join(asked)} not rolled out in 15 minutes")
            time.sleep(0.2)
        took = time.monotonic() - started
    return took, asking


def rotate(socket: Path, name: str) -> list[tuple[str, float, Client]]:
    """A cluster of its own (another rotation of one waits an hour for its
    old service-account key to go), rotated, deleted."""
    oneinfra(socket, "cluster", "create", name, "--control-plane-replicas", "3",
             "--wait", "--timeout", "5m")  # fmt: skip
    before = api_client(oneinfra(socket, "cluster", "kubeconfig", name), http2=True)
    found = replicas(socket, name)
    old = {e: issuer_of(e) for e in found}

    def prepared(since_ns: int) -> bool:
        return all(started_since(name, cri, since_ns) for cri in found.values()) and all(
            (issuer := issuer_of(e)) is not None and issuer != old[e] for e in found
        )

    took_prepare, old_client = phase(socket, name, ["--phase", "prepare"], before, prepared)
    after = api_client(oneinfra(socket, "cluster", "kubeconfig", name), http2=True)

    def completed(since_ns: int) -> bool:
        return all(started_since(name, cri, since_ns) for cri in found.values())

    took_complete, new_client = phase(socket, name, ["--phase", "complete"], after, completed)
    oneinfra(socket, "cluster", "delete", name, "--wait", "--timeout", "5m")
    return [("prepare", took_prepare, old_client), ("complete", took_complete, new_client)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    machines = local_up("--private", "3")
    with tempfile.TemporaryDirectory(prefix="oneinfra-rotation-bench-") as tmp:
        root = Path(tmp)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root)
        try:
            add_hypervisors(socket, machines)
            runs = [rotate(socket, f"rotated-{i}") for i in range(args.runs)]
            for index, (what, whose) in enumerate((("prepare", "before"), ("complete", "after"))):
                phases = [r[index] for r in runs]
                emit(f"ca_rotation_{what}_3_replicas", statistics.median(p[1] for p in phases),
                     "s", runs=[round(p[1], 1) for p in phases])  # fmt: skip
                emit(f"failed_requests_during_{what}_kubeconfig_from_{whose}",
                     statistics.median(p[2].failed for p in phases), "requests",
                     runs=[f"{p[2].failed}/{p[2].failed + p[2].ok}" for p in phases],
                     why=[dict(p[2].why) for p in phases], retried=[p[2].retried for p in phases],
                     http="HTTP/2")  # fmt: skip
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
