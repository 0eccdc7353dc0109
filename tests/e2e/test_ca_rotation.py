"""A CA rotation on real containerd, on a 3-replica cluster, with clients
asking through the ingress every 100 ms all along: prepare rolls new CAs
out one replica at a time and a client holding a kubeconfig from before
keeps working (every new leaf is chained to the old CA); a kubeconfig issued
after prepare works through complete; after complete the old one fails
with a TLS error."""

from __future__ import annotations

import base64
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from benchmarks.join_bench import api_client
from benchmarks.renewal_bench import Client, replicas, started_since
from tests.oneinfra.daemon import Daemon

from .fleet import WAIT, create, eventually, fleet, kubeconfig, kubectl

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


def test_a_two_phase_ca_rotation_breaks_no_client_until_the_old_ca_is_dropped(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, _ = fleet
    create(daemon, "rotated", replicas=3)
    try:
        before = kubeconfig(daemon, "rotated", tmp_path)
        old_ca = ca_name(before)
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
        new_client = client_of(after)
        assert kubectl(before, "get", "--raw", "/readyz").stdout == "ok"
        assert kubectl(after, "get", "--raw", "/readyz").stdout == "ok"
        status = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "status").stdout
        assert "old and new CAs trusted" in status

        # Complete (forced: the hour pods' tokens take is not waited for
        # here): the new kubeconfig's client never fails, the old one is
        # refused at the TLS handshake.
        refused = daemon.cli("cluster", "rotate-ca", "rotated", "--phase", "complete", check=False)
        assert refused.returncode != 0 and "service-account tokens" in refused.stderr
        since = time.time_ns()
        daemon.json("cluster", "rotate-ca", "rotated", "--phase", "complete", "--force")
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
        history = daemon.cli("history", "--cluster", "rotated").stdout
        assert "CARotationPrepared" in history and "CARotationCompleted" in history
    finally:
        daemon.cli("cluster", "delete", "rotated", "--wait", "--timeout", WAIT, timeout=300,
                   check=False)  # fmt: skip
