"""A CA rotation on real containerd, on a 3-replica cluster with two
joined workers and a pod on one, with clients asking through the ingress
every 100 ms all along: prepare rolls new CAs out one replica at a time and
a client holding a kubeconfig from before keeps working (every new leaf is
chained to the old CA); the workers take the new CAs (`local rotate-trust`:
`node rotate-trust` in them); a kubeconfig issued after prepare works
through complete; after complete the old one fails with a TLS error. The
nodes stay Ready, the pod keeps running, logs and exec work throughout."""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from benchmarks.join_bench import api_client
from benchmarks.renewal_bench import Client, replicas, started_since
from oneinfra.render.addons import TRUST_ANNOTATION
from tests.oneinfra.daemon import Daemon

from .fleet import (
    WAIT,
    create,
    eventually,
    fleet,
    join,
    kubeconfig,
    kubectl,
    local,
    new_token,
    nodes,
)

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e

ROLLOUT = 400  # seconds: three replicas, one at a time


def issuer_served(endpoint: str) -> str | None:
    """The common name of the CA that signed what a replica serves."""
    host, _, port = endpoint.rpartition(":")
    try:
        pem = ssl.get_server_certificate((host, int(port)), timeout=2)
    except OSError:
        return None
    issuer = x509.load_pem_x509_certificate(pem.encode()).issuer
    return str(issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def ca_name(config_file: Path) -> str:
    cluster = yaml.safe_load(config_file.read_text())["clusters"][0]["cluster"]
    pem = base64.b64decode(cluster["certificate-authority-data"])
    subject = x509.load_pem_x509_certificate(pem).subject
    return str(subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def rolled_out(daemon: Daemon, endpoints: dict[str, str], since_ns: int) -> bool:
    """Every replica's API server and controller manager started since."""
    return (
        all(started_since("rotated", cri, since_ns) for cri in endpoints.values())
        and daemon.json("cluster", "show", "rotated")["status"]["ready"]
    )


def client_of(config_file: Path) -> Client:
    client = Client(api_client(config_file.read_text(), http2=True))
    client.start()
    return client


def serving_problem(config_file: Path, pod: dict[str, Any]) -> str:
    """What stops the workers from serving ("" when nothing): both nodes
    Ready, the pod the one it was (not restarted), and its kubelet reached
    by logs and exec."""
    ready = nodes(config_file)
    if ready != {"w0": True, "w1": True}:
        return f"nodes {ready}"
    found = kubectl(config_file, "get", "pod", "sleeper", "-o", "json", check=False)
    if found.returncode != 0:
        return f"the pod: {found.stderr.strip()}"
    now = json.loads(found.stdout)
    statuses = now["status"].get("containerStatuses") or [{}]
    if now["metadata"]["uid"] != pod["metadata"]["uid"] or statuses[0].get("restartCount") != 0:
        raise AssertionError(f"the pod was started again: {statuses}")
    logs = kubectl(config_file, "logs", "sleeper", check=False)
    if "awake" not in logs.stdout:
        return f"logs: {logs.stderr.strip()}"
    executed = kubectl(config_file, "exec", "sleeper", "--", "echo", "inside", check=False)
    return "" if executed.stdout.strip() == "inside" else f"exec: {executed.stderr.strip()}"


def workers_serve(config_file: Path, pod: dict[str, Any], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while problem := serving_problem(config_file, pod):
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}: {problem}"
        time.sleep(1)


def addons_restarted(config_file: Path) -> bool:
    """The cluster's own workloads started again for the rotation, and Ready."""
    found = kubectl(config_file, "-n", "kube-system", "get", "pods", "-o", "json", check=False)
    if found.returncode != 0:
        return False
    pods = json.loads(found.stdout)["items"]
    return bool(pods) and all(
        TRUST_ANNOTATION in (p["metadata"].get("annotations") or {})
        and p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
        for p in pods
    )


def test_a_two_phase_ca_rotation_breaks_no_client_until_the_old_ca_is_dropped(
    fleet: tuple[Daemon, list[dict[str, Any]]],
    workers: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    daemon, _ = fleet
    create(daemon, "rotated", replicas=3)
    try:
        before = kubeconfig(daemon, "rotated", tmp_path)
        old_ca = ca_name(before)
        for worker in ("w0", "w1"):
            joined = join(worker, *new_token(daemon, "rotated"))
            assert joined.returncode == 0, joined.stderr
        eventually(lambda: nodes(before) == {"w0": True, "w1": True}, "w0 and w1 Ready")
        kubectl(before, "run", "sleeper", "--image=docker.io/library/busybox:1.35",
                "--restart=Never", '--overrides={"spec": {"nodeName": "w0"}}', "--",
                "sh", "-c", "echo awake; exec sleep 3600")  # fmt: skip
        kubectl(before, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s")
        pod = json.loads(kubectl(before, "get", "pod", "sleeper", "-o", "json").stdout)
        workers_serve(before, pod, "logs and exec on w0", 90)
        old_client = client_of(before)
        endpoints = replicas(daemon.socket, "rotated")
        eventually(lambda: old_client.ok > 5, "the old kubeconfig's client answered")

        # Prepare: every replica, one at a time, serves a certificate of
        # the new CA; the old kubeconfig's client never fails.
        since = time.time_ns()
        shown = daemon.json("cluster", "rotate-ca", "rotated", "--phase", "prepare")
        assert shown["caRotation"]["preparedAt"] and not shown["caRotation"].get("completedAt")
        after = tmp_path / "after.kubeconfig"
        after.write_text(daemon.cli("cluster", "kubeconfig", "rotated").stdout)
        new_ca = ca_name(after)
        assert new_ca != old_ca and new_ca.startswith("kubernetes-")
        eventually(lambda: rolled_out(daemon, endpoints, since), "prepare rolled out", ROLLOUT)
        eventually(lambda: all(issuer_served(e) == new_ca for e in endpoints),
                   "every replica serving from the new CA")  # fmt: skip
        assert old_client.failed == 0, old_client.why
        workers_serve(after, pod, "the workers serving after prepare", 90)

        # Complete would cut the workers off: refused, naming them.
        early = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "complete", check=False)
        assert early.returncode != 0 and "'w0', 'w1'" in early.stderr, early.stderr
        assert "node rotate-trust" in early.stderr
        status = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "status").stdout
        assert "still on the old CA: w0, w1" in status, status

        # The workers' side: the new CAs trusted, client certificates of the
        # new CA, kubelets restarted (their pods are not); the cluster's own
        # workloads started again by prepare (they read the CAs as they start).
        for worker in ("w0", "w1"):
            rotated = local("rotate-trust", worker)
            assert rotated.returncode == 0, rotated.stderr
            assert "2 CAs trusted" in rotated.stderr, rotated.stderr
        workers_serve(after, pod, "the workers serving after rotate-trust")
        eventually(lambda: addons_restarted(after), "the cluster's workloads started again", 300)
        again = local("rotate-trust", "w0")
        assert again.returncode == 0 and "already" in again.stderr, again.stderr
        eventually(lambda: daemon.cli("history", "--cluster", "rotated").stdout.count(
            "NodeTrustRotated") == 2, "both workers recorded as trusting the new CA")  # fmt: skip
        new_client = client_of(after)
        assert kubectl(before, "get", "--raw", "/readyz").stdout == "ok"
        assert kubectl(after, "get", "--raw", "/readyz").stdout == "ok"
        status = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "status").stdout
        assert "old and new CAs trusted; run 'oneinfra node rotate-trust'" in status
        assert "still on the old CA" not in status, status

        # Complete: the new kubeconfig's client never fails, the old one is
        # refused at the TLS handshake; the old service-account key is
        # accepted on for pods' tokens, an hour after prepare.
        since = time.time_ns()
        daemon.json("cluster", "rotate-ca", "rotated", "--phase", "complete")
        eventually(lambda: rolled_out(daemon, endpoints, since), "complete rolled out", ROLLOUT)
        old_client.stopped.set()
        new_client.stopped.set()
        new_client.join()
        assert new_client.failed == 0 and new_client.ok > 50, new_client.why
        rejected = kubectl(before, "get", "--raw", "/readyz", check=False)
        assert rejected.returncode != 0
        assert any(w in rejected.stderr.lower() for w in ("certificate", "tls", "x509")), (
            rejected.stderr
        )
        assert kubectl(after, "get", "--raw", "/readyz").stdout == "ok"
        workers_serve(after, pod, "the workers serving after complete")
        csrs = json.loads(kubectl(after, "get", "csr", "-o", "json").stdout)["items"]
        renewed = [c for c in csrs if c["metadata"]["name"].startswith("oneinfra-rotate-")]
        assert len(renewed) == 2 and all(c["status"].get("certificate") for c in renewed)
        status = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "status").stdout
        assert "old service-account key accepted until" in status, status
        history = daemon.cli("history", "--cluster", "rotated").stdout
        assert "CARotationPrepared" in history and "CARotationCompleted" in history
    finally:
        for worker in ("w0", "w1"):
            local("leave", worker)
        daemon.cli("cluster", "delete", "rotated", "--wait", "--timeout", WAIT, timeout=300,
                   check=False)  # fmt: skip
