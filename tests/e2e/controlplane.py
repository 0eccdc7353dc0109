"""A single-member etcd and a kube-apiserver with throwaway certificates:
the same flags whether they run as host processes (the floor) or as
containers through CRI (the smoke test)."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from oneinfra.pki import x509 as pki


@dataclass(frozen=True)
class Ports:
    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 26443


def write_pki(directory: Path, address: str) -> None:
    """CA, etcd server, apiserver serving and client certs, service-account keys."""
    now = dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)

    def save(name: str, certificate: object, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.crt").write_text(pki.cert_pem(certificate))  # type: ignore[arg-type]
        (directory / f"{name}.key").write_bytes(pki.key_pem(key))
        os.chmod(directory / f"{name}.key", 0o600)

    ca_key = pki.new_key(os.urandom)
    ca = pki.issue_ca("smoke-ca", ca_key, now, os.urandom)
    save("ca", ca, ca_key)
    sans = ["localhost", "127.0.0.1", address, "kubernetes", "kubernetes.default", "10.96.0.1"]
    for name, usages, cn, orgs in (
        ("etcd", pki.SERVER_AND_CLIENT, "etcd", ()),
        ("apiserver", pki.SERVER, "kube-apiserver", ()),
        ("apiserver-etcd-client", pki.CLIENT, "kube-apiserver-etcd-client", ()),
        ("admin", pki.CLIENT, "admin", ("system:masters",)),
    ):
        key = pki.new_key(os.urandom)
        certificate = pki.issue_leaf(
            ca,
            ca_key,
            key,
            common_name=cn,
            organizations=orgs,
            usages=usages,
            sans=sans if usages != pki.CLIENT else (),
            now=now,
            entropy=os.urandom,
        )
        save(name, certificate, key)
    service_account = pki.new_key(os.urandom)
    (directory / "sa.key").write_bytes(pki.key_pem(service_account))
    (directory / "sa.pub").write_text(pki.public_pem(service_account))


def etcd_command(
    pki_dir: str,
    data_dir: str,
    address: str,
    ports: Ports,
    name: str = "smoke",
    initial_cluster: str | None = None,
) -> list[str]:
    """One member; of a cluster of several when `initial_cluster` lists them."""
    initial_cluster = initial_cluster or f"{name}=https://{address}:{ports.etcd_peer}"
    return [
        "etcd",
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls=https://127.0.0.1:{ports.etcd_client}",
        f"--advertise-client-urls=https://127.0.0.1:{ports.etcd_client}",
        f"--listen-peer-urls=https://{address}:{ports.etcd_peer}",
        f"--initial-advertise-peer-urls=https://{address}:{ports.etcd_peer}",
        f"--initial-cluster={initial_cluster}",
        "--initial-cluster-state=new",
        f"--cert-file={pki_dir}/etcd.crt",
        f"--key-file={pki_dir}/etcd.key",
        f"--trusted-ca-file={pki_dir}/ca.crt",
        "--client-cert-auth=true",
        f"--peer-cert-file={pki_dir}/etcd.crt",
        f"--peer-key-file={pki_dir}/etcd.key",
        f"--peer-trusted-ca-file={pki_dir}/ca.crt",
        "--peer-client-cert-auth=true",
        "--log-level=warn",
    ]


def apiserver_command(pki_dir: str, address: str, ports: Ports) -> list[str]:
    return [
        "kube-apiserver",
        f"--advertise-address={address}",
        f"--secure-port={ports.apiserver}",
        f"--etcd-servers=https://127.0.0.1:{ports.etcd_client}",
        f"--etcd-cafile={pki_dir}/ca.crt",
        f"--etcd-certfile={pki_dir}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={pki_dir}/apiserver-etcd-client.key",
        f"--tls-cert-file={pki_dir}/apiserver.crt",
        f"--tls-private-key-file={pki_dir}/apiserver.key",
        f"--client-ca-file={pki_dir}/ca.crt",
        f"--service-account-key-file={pki_dir}/sa.pub",
        f"--service-account-signing-key-file={pki_dir}/sa.key",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--authorization-mode=Node,RBAC",
        "--enable-priority-and-fairness=false",
    ]


def readyz(pki_dir: Path, host: str, port: int) -> bool:
    """True once /readyz answers ok to a client certificate."""
    context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    context.load_cert_chain(pki_dir / "admin.crt", pki_dir / "admin.key")
    try:
        with urllib.request.urlopen(
            f"https://{host}:{port}/readyz", context=context, timeout=2
        ) as r:
            return bool(r.status == 200 and r.read() == b"ok")
    except OSError:
        return False
