"""Renewing every leaf of a cluster, end to end, on the local hypervisors
(as root): `cluster renew-certificates` until every replica's API server
serves its new certificate from a container started since (the API server
reloads its serving certificate by itself, so the new one is served before
the rollout is done) and the cluster answers again, with a client
reading a namespace through the ingress every 100 ms all along: the requests
that failed, for a 3-replica cluster (rolled one replica at a time) and
for a 1-replica one (its outage); then that one scaled to 3 replicas and
back to 1, the same client asking.

    .venv/bin/python benchmarks/renewal_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.join_bench import add_hypervisors, api_client, emit, local_up, oneinfra
from benchmarks.time_to_ready import start_daemon
from oneinfra.local import builds

CRICTL = builds.crictl().binary("crictl")

EVERY = 0.1  # seconds between the client's requests


ASKED = "/api/v1/namespaces/default"  # what a client reads: served from etcd


class Client(threading.Thread):
    """GET a namespace through the ingress every 100 ms, on one kept-alive
    connection as clients do, counting what fails and why. (Not /readyz:
    an API server told to stop answers it 500 on purpose while it still
    serves everything else, so that the ingress drops it first.)"""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.client, self.ok, self.retried, self.stopped = client, 0, 0, threading.Event()
        self.why: Counter[str] = Counter()
        self.outcomes: list[tuple[float, str]] = []  # each request's time, why it failed or ""

    @property
    def failed(self) -> int:
        return sum(self.why.values())

    def run(self) -> None:
        while not self.stopped.is_set():
            when, why = time.monotonic(), ""
            try:
                reply = self.get()
                why = "" if reply.status_code == 200 else f"HTTP {reply.status_code}: {said(reply)}"
            except httpx.HTTPError as error:
                why = type(error).__name__
            self.outcomes.append((when, why))
            if why:
                self.why[why] += 1
            else:
                self.ok += 1
            time.sleep(EVERY)

    def get(self) -> httpx.Response:
        """One GET, sent again once where kubectl's client would: the
        connection closed as it went out (an API server stopping sends
        GOAWAY; Go's HTTP/2 transport sends a request the server did not
        process again on a new one), or a 429/503 with Retry-After (an API
        server past its shutdown delay answers so; client-go waits and asks
        again). Such retries are counted apart."""
        try:
            reply = self.client.get(ASKED)
        except httpx.RemoteProtocolError:
            self.retried += 1
            return self.client.get(ASKED)
        wait = reply.headers.get("Retry-After")
        if reply.status_code in (429, 503) and wait is not None and wait.isdigit():
            self.retried += 1
            time.sleep(min(int(wait), 1))
            return self.client.get(ASKED)
        return reply

    def outages(self) -> list[float]:
        """Seconds from each run of failures' first request to the next success."""
        found, began = [], None
        for when, why in self.outcomes:
            if why and began is None:
                began = when
            elif not why and began is not None:
                found.append(when - began)
                began = None
        if began is not None:
            found.append(self.outcomes[-1][0] - began)
        return found


def said(reply: httpx.Response) -> str:
    """A failed reply's reason, as a Kubernetes Status (or its body) gives it."""
    try:
        return str(reply.json().get("message", ""))[:100]
    except ValueError:
        return reply.text[:100]


def serials(endpoints: list[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        try:
            pem = ssl.get_server_certificate((host, int(port)), timeout=2)
            found[endpoint] = x509.load_pem_x509_certificate(pem.encode()).serial_number
        except OSError:
            found[endpoint] = None
    return found


def replicas(socket: Path, name: str) -> dict[str, str]:
    """Each replica's API server (address:port), by its hypervisor's CRI endpoint."""
    shown = json.loads(oneinfra(socket, "cluster", "show", name, "-o", "json"))
    hypervisors = {
        h["name"]: h for h in json.loads(oneinfra(socket, "hypervisor", "list", "-o", "json"))
    }
    return {
        f"{hypervisors[c['hypervisor']]['ipAddress']}:{c['ports']['apiserver']}": hypervisors[
            c["hypervisor"]
        ]["endpoint"]
        for c in shown["components"]
        if c["role"] == "control-plane"
    }


def started_since(name: str, endpoint: str, since_ns: int) -> bool:
    """Whether the cluster's running kube-apiserver there was created after `since_ns`."""
    listed = subprocess.run(
        [str(CRICTL), "--runtime-endpoint", endpoint, "ps", "--name", "kube-apiserver",
         "--label", f"oneinfra.io/cluster={name}", "-o", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        return False
    containers = json.loads(listed.stdout).get("containers", [])
    return any(int(c["createdAt"]) > since_ns for c in containers)


@contextmanager
def asked_throughout(client: httpx.Client, after: float = 3.0) -> Iterator[Client]:
    """A Client asking from a second before what the block does until
    `after` seconds past it: what fails right after counts too."""
    asking = Client(client)
    asking.start()
    time.sleep(1.0)
    try:
        yield asking
    finally:
        time.sleep(after)
        asking.stopped.set()
        asking.join()


def renew(socket: Path, name: str, client: httpx.Client) -> tuple[float, Client]:
    """Seconds until every replica serves a new certificate and the cluster
    answers; the client that asked meanwhile."""
    found = replicas(socket, name)
    endpoints = list(found)
    before = serials(endpoints)
    with asked_throughout(client) as asking:
        started, since_ns = time.monotonic(), time.time_ns()
        oneinfra(socket, "cluster", "renew-certificates", name)
        while True:
            now = serials(endpoints)
            if all(now[e] is not None and now[e] != before[e] for e in endpoints) and all(
                started_since(name, cri, since_ns) for cri in found.values()
            ):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{name}'s certificates not all renewed in 10 minutes")
            time.sleep(0.2)
        took = time.monotonic() - started
    return took, asking


def scale(socket: Path, name: str, client: httpx.Client, replicas: int) -> tuple[float, Client]:
    """Seconds for `cluster scale --wait`, and the client that asked meanwhile."""
    # 5 s after: the replicas that left stop after --wait; what fails then counts too.
    with asked_throughout(client, after=5.0) as asking:
        started = time.monotonic()
        oneinfra(socket, "cluster", "scale", name, "--control-plane-replicas", str(replicas),
                 "--wait", "--timeout", "10m")  # fmt: skip
        took = time.monotonic() - started
    return took, asking


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--http1", action="store_true",
        help="the client on HTTP/1.1 (default HTTP/2, as kubectl and client-go)",
    )  # fmt: skip
    args = parser.parse_args()
    machines = local_up("--private", "3")
    with tempfile.TemporaryDirectory(prefix="oneinfra-renewal-bench-") as tmp:
        root = Path(tmp)
        socket = root / "oneinfra.sock"
        daemon = start_daemon(root)
        try:
            add_hypervisors(socket, machines)
            for name, count in (("three", 3), ("one", 1)):
                oneinfra(socket, "cluster", "create", name, "--control-plane-replicas",
                         str(count), "--wait", "--timeout", "5m")  # fmt: skip
                kubeconfig = oneinfra(socket, "cluster", "kubeconfig", name)
                client = api_client(kubeconfig, http2=not args.http1)
                http = client.get("/version").http_version  # what was negotiated
                runs = [renew(socket, name, client) for _ in range(args.runs)]
                emit(f"renew_every_leaf_{count}_replica", statistics.median(r[0] for r in runs),
                     "s", runs=[round(r[0], 1) for r in runs])  # fmt: skip
                emit(f"failed_requests_during_renewal_{count}_replica",
                     statistics.median(r[1].failed for r in runs), "requests",
                     runs=[f"{r[1].failed}/{r[1].failed + r[1].ok}" for r in runs],
                     why=[dict(r[1].why) for r in runs], every_ms=int(EVERY * 1000),
                     retried=[r[1].retried for r in runs],
                     outages_s=[[round(o, 1) for o in r[1].outages()] for r in runs],
                     http=http)  # fmt: skip
                if count == 1:  # 1 -> 3 -> 1, the same client asking
                    for before, replicas in ((1, 3), (3, 1)):
                        took, asking = scale(socket, name, client, replicas)
                        emit(f"scale_{before}_to_{replicas}_replicas", took, "s",
                             failed=f"{asking.failed}/{asking.failed + asking.ok}",
                             why=dict(asking.why), retried=asking.retried,
                             outages_s=[round(o, 1) for o in asking.outages()],
                             http=http)  # fmt: skip
                oneinfra(socket, "cluster", "delete", name, "--wait", "--timeout", "5m")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
