"""Certificates that renew, on real containerd: a cluster made with
two-minute leaves has every leaf renewed by the daemon at 2/3 of their life,
and its API server serves the new certificate, still answering; one asked
for (`renew-certificates --certificate apiserver`) is renewed alone; `cluster
show` gives every certificate's expiry; a joined worker's kubelet rotates
its client and serving certificates, signed for the cluster's lifetime."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from oneinfra.local import config
from tests.oneinfra.daemon import Daemon

from .fleet import WAIT, eventually, fleet, kubeconfig, kubectl, local

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e


def served(endpoint: str) -> x509.Certificate | None:
    """The certificate the API server presents through the ingress, if it answers."""
    host, _, port = endpoint.removeprefix("https://").rpartition(":")
    try:
        pem = ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=5)
    except OSError:
        return None
    return x509.load_pem_x509_certificate(pem.encode())


def answers(config_file: Path) -> bool:
    return kubectl(config_file, "get", "--raw", "/readyz", check=False).stdout.strip() == "ok"


def renewals(daemon: Daemon) -> list[str]:
    history = daemon.cli("history", "--cluster", "short").stdout
    return [line for line in history.splitlines() if "CertificatesRenewed" in line]


def test_leaves_are_renewed_when_due_and_when_asked_and_the_api_keeps_answering(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, _ = fleet
    lifetimes = ["--certificate-lifetime", "2m", "--ca-lifetime", "1h"]
    created = daemon.json("cluster", "create", "short", *lifetimes, "--wait", "--timeout", WAIT,
                          timeout=240)  # fmt: skip
    try:
        assert created["certificateLifetimeSeconds"] == 120
        shown = daemon.json("cluster", "show", "short")
        listed = {c["id"]: c for c in shown["certificates"]}
        assert {"admin", "serving", "etcd_server/control-plane-0", "ca"} <= set(listed)
        assert listed["serving"]["file"] == "apiserver" and listed["ca"]["ca"] is True
        assert listed["serving"].get("renewsAt") and not listed["ca"].get("renewsAt")
        valid = next(c for c in shown["status"]["conditions"] if c["type"] == "CertificatesValid")
        # An hour-long CA is within the 30 days warned of, and nothing renews a CA.
        assert valid["status"] == "False" and "CA ca expires in 0 days" in valid["message"], valid
        assert "apiserver" not in valid["message"]  # the leaves are renewed: no word of them

        endpoint = created["apiServerEndpoint"]
        first = served(endpoint)
        assert first is not None
        lifetime = first.not_valid_after_utc - first.not_valid_before_utc
        assert 120 <= lifetime.total_seconds() <= 120 + 5 * 60  # its notBefore allows for skew
        config_file = kubeconfig(daemon, "short", tmp_path)
        assert answers(config_file)

        # Due at 80 s: the daemon renews every leaf, as itself, and the API
        # server comes back serving the new one.
        renewed = eventually(lambda: renewals(daemon), "a renewal decided by the daemon",
                             seconds=150)  # fmt: skip
        assert re.search(r' -\s+CertificatesRenewed .*reason="due".*admin.*serving', renewed[0])
        new = eventually(lambda: (c := served(endpoint)) is not None
                         and c.serial_number != first.serial_number and c,
                         "the renewed serving certificate served", seconds=120)  # fmt: skip
        assert new.subject == first.subject and new.not_valid_after_utc > first.not_valid_after_utc
        eventually(lambda: answers(config_file), "the API answering after the renewal")

        # Asked for: the serving certificate alone.
        count = len(renewals(daemon))
        before = served(endpoint)
        assert before is not None
        daemon.cli("cluster", "renew-certificates", "short", "--certificate", "apiserver")
        asked = [r for r in renewals(daemon)[count:] if 'reason="asked"' in r]
        assert asked and asked[0].endswith("certificates=serving"), asked
        eventually(lambda: (c := served(endpoint)) is not None
                   and c.serial_number != before.serial_number,
                   "the asked-for certificate served", seconds=120)  # fmt: skip
        eventually(lambda: answers(config_file), "the API answering after it")

        refused = daemon.cli("cluster", "renew-certificates", "short", "--certificate", "ca",
                             check=False)  # fmt: skip
        assert refused.returncode != 0 and "no certificate 'ca' to renew" in refused.stderr
    finally:
        daemon.cli("cluster", "delete", "short", "--wait", "--timeout", WAIT, timeout=240,
                   check=False)  # fmt: skip


def pem_serial(path: Path) -> int | None:
    """The serial of the certificate in a kubelet's PEM (key and certificate).
    Its -current.pem is a link to a path inside the worker (its
    /var/lib/kubelet/pki/...): followed here in the host's view of that
    directory."""
    try:
        pem = (path.parent / Path(os.readlink(path)).name).read_bytes()
    except OSError:
        return None
    start = pem.find(b"-----BEGIN CERTIFICATE-----")
    return x509.load_pem_x509_certificate(pem[start:]).serial_number if start >= 0 else None


def test_a_workers_kubelet_rotates_its_certificates_and_stays_ready(
    fleet: tuple[Daemon, list[dict[str, Any]]], workers: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Kubernetes' own rotation, with the cluster's leaf lifetime: the
    controller manager signs a kubelet's client certificate for two minutes,
    the kubelet files a new request before it ends (approved by the
    controller manager) and a new serving one (approved by the daemon);
    the node stays Ready, and the API server reaches the kubelet through the
    new serving certificate."""
    daemon, _ = fleet
    worker = workers[0]["name"]
    lifetimes = ["--certificate-lifetime", "2m", "--ca-lifetime", "1h"]
    daemon.json("cluster", "create", "rotating", *lifetimes, "--wait", "--timeout", WAIT,
                timeout=240)  # fmt: skip
    config_file = kubeconfig(daemon, "rotating", tmp_path)
    try:
        line = daemon.cli("cluster", "join-command", "rotating").stdout.splitlines()[0]
        endpoint, token, ca_hash = line.split()[3], line.split()[5], line.split()[7]
        joined = local("join", worker, endpoint, "--token", token,
                       "--discovery-token-ca-cert-hash", ca_hash)  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        pki = config.WorkerSpec(worker, "").own("/var/lib/kubelet") / "pki"  # its --cert-dir
        client, serving = pki / "kubelet-client-current.pem", pki / "kubelet-server-current.pem"
        first = eventually(
            lambda: node_ready(config_file, worker) and pem_serial(client) and pem_serial(serving)
            and (pem_serial(client), pem_serial(serving)),
            f"{worker} Ready with its client and serving certificates",
        )  # fmt: skip
        current = (client.parent / Path(os.readlink(client)).name).read_bytes()
        issued = x509.load_pem_x509_certificate(
            current[current.find(b"-----BEGIN CERTIFICATE-----") :]
        )
        assert issued.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=125)
        eventually(
            lambda: pem_serial(client) not in (None, first[0])
            and pem_serial(serving) not in (None, first[1]),
            "both kubelet certificates rotated", seconds=300,
        )  # fmt: skip
        eventually(lambda: node_ready(config_file, worker), f"{worker} Ready after rotating")
        # Through the API server's tunnel: a control-plane renewal (every 80 s
        # here) restarts konnectivity-server, and a call at that moment ends
        # in EOF. Asked again, as a person would.
        eventually(
            lambda: kubectl(config_file, "get", "--raw", f"/api/v1/nodes/{worker}/proxy/healthz",
                            check=False).stdout.strip() == "ok",
            "the API server reaches the kubelet through its new serving certificate",
            seconds=60,
        )  # fmt: skip
        csrs = json.loads(kubectl(config_file, "get", "csr", "-o", "json").stdout)["items"]
        signers = [c["spec"]["signerName"] for c in csrs
                   if c["spec"]["username"] in (f"system:node:{worker}",)]  # fmt: skip
        assert signers.count("kubernetes.io/kube-apiserver-client-kubelet") >= 1
        assert signers.count("kubernetes.io/kubelet-serving") >= 2
    finally:
        left = local("leave", worker)
        assert left.returncode == 0, left.stderr
        daemon.cli("cluster", "delete", "rotating", "--wait", "--timeout", WAIT, timeout=300)


def node_ready(config_file: Path, node: str) -> bool:
    found = kubectl(config_file, "get", "node", node, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    conditions = json.loads(found.stdout)["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
