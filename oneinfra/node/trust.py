"""`oneinfra node rotate-trust`: a worker's side of its cluster's CA
rotation, run on the worker (as root) between `cluster rotate-ca --phase
prepare` and `--phase complete`. The kubelet trusts the CA file join wrote
and holds certificates of the old CA; after complete, neither works. So:

1. the CAs trusted now (the new first, then the old), read from
   cluster-info over a connection the current CA file verifies, are
   written over the kubelet's CA file: its client-CA file too, so that it
   takes the API server's new kubelet-client certificate by itself;
2. a client certificate from the new CA: a CSR filed with its current one
   (still accepted between the phases), approved as any renewal of the
   kubelet's own (kubeadm's selfnodeclient rule), written where the kubelet
   keeps them;
3. its serving certificate dropped: it asks for one again as it starts
   (the daemon approves it, the new CA signs it);
4. the kubelet restarted (it reads its kubeconfig's CA only at start):
   its systemd unit, or (--no-restart) left to the caller.

Pods keep running through the kubelet's restart.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import JoinError
from . import kubelet
from .join import CSR_URL, TIMEOUT, base64_text, file_csr, get, systemd_runs
from .kubelet import NodeSettings

CLUSTER_INFO_URL = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_CURRENT = "kubelet-client-current.pem"
SERVING_CURRENT = "kubelet-server-current.pem"


def kubelet_client(settings: NodeSettings, anonymous: bool = False) -> httpx.Client:
    """The API as the kubelet reaches it: its server, its CA file, its
    current client certificate (not `anonymous`: cluster-info is for
    anyone, and a node may not read it as itself)."""
    try:
        config: Any = yaml.safe_load(settings.kubeconfig.read_text())
        server = str(config["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as error:
        raise JoinError(
            f"this machine has not joined a cluster ({settings.kubeconfig}: {error})"
        ) from None
    current = settings.cert_dir / CLIENT_CURRENT
    if not current.exists():
        raise JoinError(f"the kubelet has no client certificate yet ({current})")
    try:
        verify = ssl.create_default_context(cafile=str(settings.ca_file))
        if not anonymous:
            verify.load_cert_chain(str(current))  # certificate and key, in the one file
    except (OSError, ValueError) as error:
        raise JoinError(f"cannot use the kubelet's CA or certificate: {error}") from None
    return httpx.Client(base_url=server, verify=verify, timeout=TIMEOUT)


def trusted_now(client: httpx.Client) -> str:
    """The CAs the cluster trusts now (PEM bundle), as cluster-info says."""
    data = get(client, CLUSTER_INFO_URL, "cluster-info").get("data") or {}
    try:
        cluster = yaml.safe_load(data["kubeconfig"])["clusters"][0]["cluster"]
        bundle = base64.b64decode(cluster["certificate-authority-data"]).decode()
        x509.load_pem_x509_certificates(bundle.encode())
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError) as error:
        raise JoinError(f"cluster-info is not a kubeconfig with a CA: {error}") from None
    return bundle


def signing_request(node: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The kubelet's own kind of client CSR, under a name of its own."""
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
    ])  # fmt: skip
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": f"oneinfra-rotate-{node[:200]}-{secrets.token_hex(4)}"},
        "spec": {
            "request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }


def new_client_certificate(
    client: httpx.Client, node: str, signer: x509.Certificate, timeout: float
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A client certificate of the new CA for this node: the key and its PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = signing_request(node, key)
    name = request["metadata"]["name"]
    file_csr(client, request, "the kubelet's new client CSR")
    deadline = time.monotonic() + timeout
    while True:
        status = get(client, f"{CSR_URL}/{name}", "the kubelet's new client CSR").get("status")
        issued = (status or {}).get("certificate")
        if issued:
            pem = base64_text(issued)
            certificate = x509.load_pem_x509_certificate(pem.encode())
            if certificate.issuer != signer.subject:
                raise JoinError(
                    "the controller manager signed with the old CA: the rotation's prepare "
                    "is not rolled out yet; run this again in a minute"
                )
            return key, pem
        if time.monotonic() > deadline:
            raise JoinError(
                f"the kubelet's new client CSR {name} was not signed in {timeout:.0f} s: is "
                f"the cluster's controller manager running?"
            )
        time.sleep(0.5)


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def install_client_certificate(settings: NodeSettings, key: ec.EllipticCurvePrivateKey,
                               pem: str) -> Path:  # fmt: skip
    """Where the kubelet keeps its own: a dated file of certificate and key,
    and kubelet-client-current.pem linked to it."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    path = settings.cert_dir / f"kubelet-client-{stamp}.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    write_atomically(path, pem + key_pem)
    link = settings.cert_dir / f".{CLIENT_CURRENT}.{secrets.token_hex(4)}"
    link.symlink_to(path)
    os.replace(link, settings.cert_dir / CLIENT_CURRENT)
    return path


def rotate_trust(
    settings: NodeSettings, restart: bool, say: Callable[[str], None], timeout: float = 60.0
) -> bool:
    """The node's part of a rotation; False when there was nothing to do
    (it trusts the cluster's CAs already, and its certificate is the new CA's)."""
    with kubelet_client(settings, anonymous=True) as anyone:
        bundle = trusted_now(anyone)
    with kubelet_client(settings) as client:
        signer = x509.load_pem_x509_certificates(bundle.encode())[0]
        current = x509.load_pem_x509_certificate((settings.cert_dir / CLIENT_CURRENT).read_bytes())
        if settings.ca_file.read_text() == bundle and current.issuer == signer.subject:
            say("the kubelet trusts the cluster's CAs and holds the new CA's certificate already")
            return False
        # The CA file first: the daemon takes the CSR below as word that it
        # is written (the bundle keeps the old CA, so nothing breaks meanwhile).
        write_atomically(settings.ca_file, bundle, 0o644)
        say(f"CA file {settings.ca_file}: {bundle.count('BEGIN CERTIFICATE')} CAs trusted")
        key, pem = new_client_certificate(client, settings.node_name, signer, timeout)
    say(f"client certificate of {signer.subject.rfc4514_string()}: "
        f"{install_client_certificate(settings, key, pem)}")  # fmt: skip
    (settings.cert_dir / SERVING_CURRENT).unlink(missing_ok=True)
    if restart:
        restart_kubelet()
        say(f"{kubelet.UNIT_NAME} restarted: it asks for a new serving certificate")
    return True


def restart_kubelet() -> None:
    if not systemd_runs():
        raise JoinError(
            "systemd does not run here: restart the kubelet yourself (--no-restart says so)"
        )
    done = subprocess.run(["systemctl", "restart", kubelet.UNIT_NAME],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise JoinError(f"systemctl restart {kubelet.UNIT_NAME} failed: {done.stderr.strip()}")
