"""Certificates that renew, on real containerd: a cluster made with
two-minute leaves has every leaf renewed by the daemon at 2/3 of their life,
and its API server serves the new certificate, still answering; one asked
for (`renew-certificates --certificate apiserver`) is renewed alone; `cluster
show` gives every certificate's expiry."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.oneinfra.daemon import Daemon

from .fleet import WAIT, eventually, fleet, kubeconfig, kubectl

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
