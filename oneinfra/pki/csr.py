"""Whether a kubelet's serving-certificate request may be approved: the
check kubeadm leaves to the user (its csrapproving controller signs only
client certificates). Pure: the request and the Node it names, in; a
refusal's reason, or None, out.

A kubelet asks, as `system:node:NAME` of group `system:nodes`, for a
certificate for its own names and addresses only; anything else (another
node's name, an address the Node does not have, a client usage) is refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import shown

NODE_PREFIX = "system:node:"
NODES = "system:nodes"
BOOTSTRAPPERS = "system:bootstrappers"
PEER_USAGES = ["ipsec tunnel"]  # a VPN peer's request: it authenticates nobody to the API
IPSEC_TUNNEL = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6")  # id-kp-ipsecTunnel, its EKU
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}
NAME_TYPES = {"Hostname", "InternalDNS", "ExternalDNS"}
ADDRESS_TYPES = {"InternalIP", "ExternalIP"}


@dataclass(frozen=True)
class ServingRequest:
    name: str  # the CSR object's
    request_pem: bytes
    username: str
    groups: list[str]
    usages: list[str]


def node_of(username: str) -> str | None:
    return username.removeprefix(NODE_PREFIX) if username.startswith(NODE_PREFIX) else None


def serving_refusal(
    csr: ServingRequest, node_addresses: list[tuple[str, str]] | None
) -> str | None:
    """None when the request is the node's own; else why not, in a line.
    `node_addresses`: the Node's status.addresses (type, address), None
    when no Node of that name exists."""
    node = node_of(csr.username)
    if node is None or NODES not in csr.groups:
        return f"asked by {shown(csr.username)}, not a node (system:node:NAME of system:nodes)"
    if node_addresses is None:
        return f"no Node {shown(node)} is registered"
    if not set(csr.usages) <= SERVING_USAGES or "server auth" not in csr.usages:
        return f"usages {sorted(csr.usages)} are not a serving certificate's"
    request = signed_request(csr.request_pem)
    if isinstance(request, str):
        return request
    subject = request.subject
    common_names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organizations = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common_names != [csr.username] or organizations != [NODES]:
        return f"its subject is {shown(subject.rfc4514_string())}, not CN={csr.username},O={NODES}"
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it names no DNS name or address"
    names = set(sans.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    if len(names) + len(addresses) != len(list(sans)):
        return "it names more than DNS names and IP addresses (an email or a URI)"
    own_names = {a for t, a in node_addresses if t in NAME_TYPES}
    own_addresses = {str(ipaddress.ip_address(a)) for t, a in node_addresses if t in ADDRESS_TYPES}
    if not names | addresses:
        return "it names no DNS name or address"
    foreign = sorted((names - own_names) | (addresses - own_addresses))
    if foreign:
        return f"it names {', '.join(shown(f) for f in foreign[:3])}, not node {node}'s own"
    return None


def signed_request(pem: bytes) -> x509.CertificateSigningRequest | str:
    """The request, or why it is not one whose signature holds."""
    try:
        request = x509.load_pem_x509_csr(pem)
    except ValueError:
        return "the request is not a PEM certificate request"
    if not request.is_signature_valid:
        return "the request's signature does not hold"
    return request


def common_name(request_pem: bytes) -> str | None:
    """The subject's CN of a PEM request, None if it is not one."""
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError:
        return None
    names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def requested_names(request_pem: bytes) -> list[str]:
    """The DNS names and addresses a request asks for, in its order."""
    try:
        request = x509.load_pem_x509_csr(request_pem)
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    return [str(v) for v in (*sans.get_values_for_type(x509.DNSName),
                             *sans.get_values_for_type(x509.IPAddress))]  # fmt: skip


@dataclass(frozen=True)
class PeerRequest:
    """A worker's request to be a peer of its cluster's VPN (signer
    oneinfra.io/vpn-peer): its public key in an annotation, its node in CN."""

    name: str
    request_pem: bytes
    username: str
    groups: list[str]
    usages: list[str]
    public_key: str  # the annotation's, '' without one
    approved: bool = False  # approved, its certificate not on it yet (a pass cut short)


def peer_node(csr: PeerRequest) -> tuple[str, ec.EllipticCurvePublicKey] | str:
    """The node the request is for and its key to certify; or why it is
    refused, in a line. A bootstrapping worker (a join token's user) may ask
    for any node, as it may for its kubelet's first certificate; a node only
    for itself."""
    request = signed_request(csr.request_pem)
    if isinstance(request, str):
        return request
    names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    node = node_of(str(names[0])) if len(names) == 1 and len(request.subject) == 1 else None
    if not node:
        return f"its subject is {shown(request.subject.rfc4514_string())}, not CN=system:node:NAME"
    asker = node_of(csr.username)
    if not (BOOTSTRAPPERS in csr.groups or (NODES in csr.groups and asker == node)):
        return f"asked by {shown(csr.username)}, neither a joining worker nor node {node} itself"
    if csr.usages != PEER_USAGES:
        return f"usages {sorted(csr.usages)} are not a VPN peer's ({PEER_USAGES[0]!r} only)"
    if not csr.public_key:
        return "it carries no WireGuard public key (its vpn.oneinfra.io/public-key annotation)"
    key = request.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "its key is not an elliptic-curve key"
    return node, key
