"""The cluster PKI: kubeadm's names and roles, chains that verify (cryptography
and openssl), SANs as the API server and etcd need, and no private key in clear
anywhere in the event store's files."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import anyio
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eventstore import NewEvent, SQLiteEventStore
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.pki import x509 as pki
from oneinfra.pki.certlist import KeyPair
from oneinfra.pki.sealing import SealedKey, unseal

from .harness import NOW, Fleet


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(
        cmd.CreateCluster(
            name="prod",
            control_plane_replicas=3,
            apiserver_extra_sans=["api.example.com", "203.0.113.7"],
            dns_domain="corp.internal",
        )
    )
    return fleet


def cert(pair: KeyPair) -> x509.Certificate:
    return pki.load_cert(pair.certificate)


def common_name(
    certificate: x509.Certificate, oid: x509.ObjectIdentifier = NameOID.COMMON_NAME
) -> list[str]:
    return [str(a.value) for a in certificate.subject.get_attributes_for_oid(oid)]


def sans(certificate: x509.Certificate) -> set[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in extension.get_values_for_type(x509.DNSName)} | {
        str(v) for v in extension.get_values_for_type(x509.IPAddress)
    }


def policy(ca: x509.Certificate, server: bool = False) -> verification.PolicyBuilder:
    """RFC 5280 chain verification. Servers keep the Web PKI's demand for a
    SAN; client certificates have none: Kubernetes identifies them by CN and O."""
    leaf_policy = verification.ExtensionPolicy.webpki_defaults_ee()
    if not server:
        leaf_policy = leaf_policy.may_be_present(
            x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
        )
    return (
        verification.PolicyBuilder()
        .store(verification.Store([ca]))
        .time(NOW)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy
        )
    )


def every_leaf(
    fleet: Fleet,
) -> list[tuple[str, KeyPair, KeyPair, tuple[x509.ObjectIdentifier, ...]]]:
    """(name, leaf, issuing CA, extended key usages) for every leaf of the cluster."""
    cluster = fleet.state.clusters["prod"]
    p = fleet.created("prod").pki
    leaves: list[tuple[str, KeyPair, KeyPair, pki.Usages]] = [
        ("apiserver-kubelet-client", p.apiserver_kubelet_client, p.ca, pki.CLIENT),
        ("apiserver-etcd-client", p.apiserver_etcd_client, p.etcd_ca, pki.CLIENT),
        ("front-proxy-client", p.front_proxy_client, p.front_proxy_ca, pki.CLIENT),
        ("controller-manager", p.controller_manager, p.ca, pki.CLIENT),
        ("scheduler", p.scheduler, p.ca, pki.CLIENT),
        ("admin", p.admin, p.ca, pki.CLIENT),
    ]
    leaves.append(("apiserver", apiserver_serving(fleet), p.ca, pki.SERVER))
    for member in cluster.control_planes():
        placed = fleet.at(member.placed_at)
        assert isinstance(placed, ev.ComponentPlaced)
        assert placed.etcd_server and placed.etcd_peer
        leaves.append(
            (f"etcd-server-{member.name}", placed.etcd_server, p.etcd_ca, pki.SERVER_AND_CLIENT)
        )
        leaves.append(
            (f"etcd-peer-{member.name}", placed.etcd_peer, p.etcd_ca, pki.SERVER_AND_CLIENT)
        )
    return leaves


def apiserver_serving(fleet: Fleet) -> KeyPair:
    issued = fleet.at(fleet.state.clusters["prod"].apiserver_at)
    assert isinstance(issued, ev.ApiServerCertificateIssued)
    return issued.serving


def etcd_server(fleet: Fleet, member_placed_at: int) -> KeyPair:
    placed = fleet.at(member_placed_at)
    assert isinstance(placed, ev.ComponentPlaced) and placed.etcd_server is not None
    return placed.etcd_server


def test_subjects_follow_kubeadm(fleet: Fleet) -> None:
    p = fleet.created("prod").pki
    assert common_name(cert(p.ca)) == ["kubernetes"]
    assert common_name(cert(p.etcd_ca)) == ["etcd-ca"]
    assert common_name(cert(p.front_proxy_ca)) == ["front-proxy-ca"]
    assert common_name(cert(p.apiserver_kubelet_client)) == ["kube-apiserver-kubelet-client"]
    assert common_name(cert(p.apiserver_kubelet_client), NameOID.ORGANIZATION_NAME) == [
        "system:masters"
    ]
    assert common_name(cert(p.apiserver_etcd_client)) == ["kube-apiserver-etcd-client"]
    assert common_name(cert(p.front_proxy_client)) == ["front-proxy-client"]
    assert common_name(cert(p.controller_manager)) == ["system:kube-controller-manager"]
    assert common_name(cert(p.scheduler)) == ["system:kube-scheduler"]
    for ca in (p.ca, p.etcd_ca, p.front_proxy_ca):
        assert cert(ca).extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_apiserver_sans_cover_every_way_it_is_reached(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    names = sans(cert(apiserver_serving(fleet)))
    expected = {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.corp.internal",
        "10.96.0.1",  # the first service IP
        "192.0.2.1",  # the ingress
        "api.example.com",
        "203.0.113.7",
    } | {fleet.state.hypervisors[c.hypervisor].ip_address for c in cluster.control_planes()}
    assert expected <= names


def test_etcd_sans_are_its_address_and_localhost(fleet: Fleet) -> None:
    for member in fleet.state.clusters["prod"].control_planes():
        address = fleet.state.hypervisors[member.hypervisor].ip_address
        server = etcd_server(fleet, member.placed_at)
        assert {address, "localhost", "127.0.0.1"} <= sans(cert(server))


def test_every_chain_verifies_with_cryptography(fleet: Fleet) -> None:
    for label, leaf, ca, usages in every_leaf(fleet):
        server = ExtendedKeyUsageOID.SERVER_AUTH in usages
        builder = policy(cert(ca), server)
        if server:
            # Servers here are reached by IP: verify for one of their IP SANs.
            extension = cert(leaf).extensions.get_extension_for_class(x509.SubjectAlternativeName)
            address = extension.value.get_values_for_type(x509.IPAddress)[0]
            name = x509.IPAddress(address)
            chain = builder.build_server_verifier(name).verify(cert(leaf), [])
        else:
            chain = builder.build_client_verifier().verify(cert(leaf), []).chain
        assert chain[-1] == cert(ca), label


def test_every_chain_verifies_with_openssl(fleet: Fleet, tmp_path: Path) -> None:
    for label, leaf, ca, usages in every_leaf(fleet):
        (tmp_path / "ca.pem").write_text(ca.certificate)
        (tmp_path / "leaf.pem").write_text(leaf.certificate)
        purpose = "sslserver" if ExtendedKeyUsageOID.SERVER_AUTH in usages else "sslclient"
        result = subprocess.run(
            ["openssl", "verify", "-purpose", purpose, "-CAfile", str(tmp_path / "ca.pem"),
             str(tmp_path / "leaf.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), (label, result)


def test_sealed_keys_open_with_the_data_key_and_match_their_certificates(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    data_key = fleet.keys[cluster.key_id]
    for label, leaf, _, _ in every_leaf(fleet):
        key = pki.load_key(unseal(leaf.key, data_key))
        assert key.public_key() == cert(leaf).public_key(), label


def test_a_kubeconfig_verifies_and_carries_the_requested_identity(fleet: Fleet) -> None:
    decision = fleet.run(cmd.IssueKubeconfig(cluster="prod", user="alice", groups=["devs", "ops"]))
    assert decision.reply is not None
    config = yaml.safe_load(decision.reply)
    user = config["users"][0]["user"]
    client = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert common_name(client) == ["alice"]
    assert common_name(client, NameOID.ORGANIZATION_NAME) == ["devs", "ops"]
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    policy(ca).build_client_verifier().verify(client, [])
    (issued,) = decision.events
    assert isinstance(issued, ev.KubeconfigIssued)
    assert issued.serial == format(client.serial_number, "x")


def private_key_forms(pem: bytes) -> list[bytes]:
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    scalar = key.private_numbers().private_value.to_bytes(32)  # type: ignore[union-attr]
    return [pem, pem.split(b"\n")[1], der, scalar]


def test_no_private_key_is_in_the_store_file(tmp_path: Path) -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1))
    issued = fleet.run(cmd.IssueKubeconfig(cluster="prod", user="alice"))
    assert issued.reply is not None
    path = tmp_path / "events.db"

    async def write() -> None:
        async with await SQLiteEventStore.open(path) as store:
            for event in fleet.log:
                event_type, version, data = ev.encode(event)
                await store.append(
                    ev.FLEET_STREAM, [NewEvent(type=event_type, data=data, schema_version=version)]
                )

    anyio.run(write)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    secrets: list[bytes] = []
    data_key = fleet.keys[fleet.state.clusters["prod"].key_id]
    for event in fleet.log:
        for sealed in sealed_keys(event):
            secrets += private_key_forms(unseal(sealed, data_key))
    kubeconfig_user = yaml.safe_load(issued.reply)["users"][0]["user"]
    secrets += private_key_forms(base64.b64decode(kubeconfig_user["client-key-data"]))
    secrets.append(data_key)
    assert len(secrets) > 40
    for secret in secrets:
        assert secret not in stored


def sealed_keys(value: object) -> list[SealedKey]:
    """Every SealedKey inside an event, however deep."""
    if isinstance(value, SealedKey):
        return [value]
    if hasattr(value, "__struct_fields__"):
        return [k for f in value.__struct_fields__ for k in sealed_keys(getattr(value, f))]
    return []
