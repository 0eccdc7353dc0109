"""A worker's side of the cluster's VPN, pure: what the `oneinfra-vpn`
ConfigMap says, the request that registers the worker's public key (a CSR
for the `oneinfra.io/vpn-peer` signer), what its answer grants (the
certificate the daemon signs with the cluster's CA: the node's VPN address
in it), and the script that brings the tunnel up.

The worker's private key is made here and stays here: only its public half
goes out, in the request's annotation.
"""

from __future__ import annotations

import base64
import ipaddress
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..errors import JoinError, shown
from ..pki import wireguard
from ..pki.csr import NODE_PREFIX
from ..render.vpn import MTU, WORKER_INTERFACE

INTERFACE = WORKER_INTERFACE
KEEPALIVE = 25  # seconds: NAT mappings stay open, as wg-quick users set it
PEER_USAGE = "ipsec tunnel"  # the CSR's usage; no client or server auth: it proves no identity


@dataclass(frozen=True)
class VpnInfo:
    endpoint: str  # host:port (UDP) of the server
    server_public_key: str
    server_address: str
    network: str
    signer: str
    public_key_annotation: str
    pod_network: str = ""  # the cluster's pod CIDR, routed through the tunnel


def vpn_info(data: Any) -> VpnInfo:
    """The ConfigMap's data, each field checked: a cluster that says
    something else is refused before anything is made."""
    if not isinstance(data, dict):
        raise JoinError("the cluster's oneinfra-vpn ConfigMap has no data")
    fields = ("endpoint", "serverPublicKey", "serverAddress", "network", "peerSigner",
              "publicKeyAnnotation")  # fmt: skip
    missing = [f for f in fields if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        raise JoinError(f"the cluster's oneinfra-vpn ConfigMap lacks {', '.join(missing)}")
    try:
        network = ipaddress.ip_network(data["network"])
        server = ipaddress.ip_address(data["serverAddress"])
    except ValueError as error:
        raise JoinError(f"the cluster's oneinfra-vpn ConfigMap: {error}") from None
    if server not in network:
        raise JoinError(f"the VPN server's address {server} is not in its network {network}")
    pod_network = data.get("podNetwork") or ""
    try:
        pods = str(ipaddress.ip_network(pod_network)) if pod_network else ""
    except ValueError as error:
        raise JoinError(f"the cluster's oneinfra-vpn ConfigMap: {error}") from None
    key = wireguard.parsed_public_key(data["serverPublicKey"])
    if key is None:
        raise JoinError(f"the VPN server's key {shown(data['serverPublicKey'])} is not one")
    return VpnInfo(
        endpoint=data["endpoint"],
        server_public_key=key,
        server_address=str(server),
        network=str(network),
        signer=data["peerSigner"],
        public_key_annotation=data["publicKeyAnnotation"],
        pod_network=pods,
    )


def peer_request(node: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The PEM request, CN=system:node:NODE: which node the key is for."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{NODE_PREFIX}{node}")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return request.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)


def signing_request(
    name: str, node: str, public_key: str, info: VpnInfo, key: ec.EllipticCurvePrivateKey
) -> dict[str, Any]:
    """The CertificateSigningRequest object the worker files with its token."""
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name, "annotations": {info.public_key_annotation: public_key}},
        "spec": {
            "signerName": info.signer,
            "request": base64.b64encode(peer_request(node, key)).decode(),
            "usages": [PEER_USAGE],
        },
    }


class Denied(JoinError):
    """The daemon refused the peer: the reason is its own words."""


def answer(csr: Any, ca_pem: str, node: str, info: VpnInfo) -> str | None:
    """The node's VPN address once the request is granted, None while it
    waits; Denied with the daemon's reason. The certificate must be the
    cluster CA's, for this node, with one address of the VPN's network."""
    status = (csr or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Denied", "Failed") and condition.get("status") == "True":
            raise Denied(
                f"the cluster refused this worker's VPN key: {condition.get('message') or '?'}"
            )
    issued = status.get("certificate")
    if not issued:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(base64.b64decode(issued))
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise JoinError(f"the VPN peer certificate is not the cluster CA's: {error}") from None
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [f"{NODE_PREFIX}{node}"]:
        raise JoinError(f"the VPN peer certificate is for {names}, not node {node}")
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise JoinError("the VPN peer certificate names no address") from None
    addresses = sans.get_values_for_type(x509.IPAddress)
    network = ipaddress.ip_network(info.network)
    if len(addresses) != 1 or addresses[0] not in network:
        raise JoinError(f"the VPN peer certificate names {addresses}, not one address of {network}")
    return str(addresses[0])


def tunnel_script(info: VpnInfo, address: str, key_file: Path) -> str:
    """Idempotent: the interface made anew (kernel WireGuard where the host
    has it, else wireguard-go), the server its only peer, routing the whole
    VPN network and the pod network (other nodes and their pods are reached
    through it; this node's own pods stay on its bridge, a narrower route)."""
    prefix = ipaddress.ip_network(info.network).prefixlen
    q = shlex.quote
    routed = ",".join([info.network, *([info.pod_network] if info.pod_network else [])])
    return "\n".join(
        [
            "#!/bin/sh",
            "# Written by oneinfra node join: this worker's end of its cluster's VPN.",
            "set -e",
            f"ip link del {INTERFACE} 2>/dev/null || true",
            f"if ! ip link add {INTERFACE} type wireguard 2>/dev/null; then",
            f"  wireguard-go {INTERFACE}  # no kernel WireGuard: userspace, it forks",
            "fi",
            f"wg set {INTERFACE} private-key {q(str(key_file))} peer {info.server_public_key} "
            f"endpoint {q(info.endpoint)} allowed-ips {routed} "
            f"persistent-keepalive {KEEPALIVE}",
            f"ip addr add {address}/{prefix} dev {INTERFACE}",
            f"ip link set {INTERFACE} mtu {MTU} up",
            *([f"ip route replace {info.pod_network} dev {INTERFACE}"] if info.pod_network else []),
            "",
        ]
    )
