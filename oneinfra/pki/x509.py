"""X.509 primitives: keys, certificates, names and SANs.

Pure given what is passed in: the time, and an entropy source from which
every private key and serial number is derived (ECDSA signatures add their
own nonce). Keys are ECDSA P-256: generating RSA keys would cost ~100 ms
each, and Kubernetes, etcd and service-account signing all accept ECDSA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Entropy = Callable[[int], bytes]

CURVE = ec.SECP256R1()
CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
CLOCK_SKEW = dt.timedelta(minutes=5)

Usages = tuple[x509.ObjectIdentifier, ...]
SERVER: Usages = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT: Usages = (ExtendedKeyUsageOID.CLIENT_AUTH,)
SERVER_AND_CLIENT: Usages = SERVER + CLIENT


def new_key(entropy: Entropy) -> ec.EllipticCurvePrivateKey:
    """A P-256 key from the entropy source: uniform over [1, n-1]."""
    secret = int.from_bytes(entropy(40)) % (CURVE_ORDER - 1) + 1
    return ec.derive_private_key(secret, CURVE)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("expected an ECDSA key")
    return key


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def load_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def first_certificate(bundle_pem: str) -> str:
    """The first certificate of a bundle (PEM): the CA itself, when a CA's
    file bundles the one it replaces after it."""
    end = "-----END CERTIFICATE-----"
    return bundle_pem[: bundle_pem.index(end) + len(end)] + "\n"


def issued_by(certificate_pem: str, ca_pem: str) -> bool:
    """Whether the CA signed the certificate (its name and signature)."""
    try:
        load_cert(certificate_pem).verify_directly_issued_by(load_cert(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def validity_of(pem: str) -> tuple[int, int]:
    """(issued, expires) in Unix seconds, as a certificate made here says:
    its notBefore is the issuing time less the skew allowed."""
    certificate = load_cert(pem)
    issued = certificate.not_valid_before_utc + CLOCK_SKEW
    return int(issued.timestamp()), int(certificate.not_valid_after_utc.timestamp())


def public_key_hash(certificate_pem: str) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the certificate's
    SubjectPublicKeyInfo (DER); of the first one, in a bundle."""
    return key_hash(load_cert(certificate_pem))


def public_key_hashes(bundle_pem: str) -> list[str]:
    """The hash of every certificate in a bundle (a CA rotation's has two)."""
    return [key_hash(c) for c in x509.load_pem_x509_certificates(bundle_pem.encode())]


def key_hash(certificate: x509.Certificate) -> str:
    info = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(info)
    return "sha256:" + digest.finalize().hex()


def serial_number(entropy: Entropy) -> int:
    # 159 bits: positive and within the 20 octets RFC 5280 allows.
    return int.from_bytes(entropy(20)) >> 1 or 1


def distinguished_name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def key_usage(certificate_signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    ca: bool,
    now: dt.datetime,
    validity: dt.timedelta,
    entropy: Entropy,
) -> x509.CertificateBuilder:
    """What every certificate here has: names, key, serial, validity, role."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial_number(entropy))
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(key_usage(certificate_signing=ca), critical=True)
    )


def issue_ca(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    entropy: Entropy,
    validity: dt.timedelta = CA_VALIDITY,
) -> x509.Certificate:
    subject, public = distinguished_name(common_name), key.public_key()
    return (
        builder(subject, subject, public, ca=True, now=now, validity=validity, entropy=entropy)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def cross_sign(
    ca: x509.Certificate,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    entropy: Entropy,
) -> x509.Certificate:
    """`ca` (its name, key and key id) vouched for by another CA: a client
    that trusts only `issuer` follows it to certificates `ca` signs, when a
    server sends it after its own. Good for no longer than either."""
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    until = min(ca.not_valid_after_utc, issuer.not_valid_after_utc)
    return (
        builder(
            ca.subject,
            issuer.subject,
            public,
            ca=True,
            now=now,
            validity=until - now,
            entropy=entropy,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def issue_leaf(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[str] = (),
    now: dt.datetime,
    entropy: Entropy,
    validity: dt.timedelta = LEAF_VALIDITY,
) -> x509.Certificate:
    leaf = (
        builder(
            distinguished_name(common_name, organizations),
            issuer.subject,
            key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key,
            ca=False,
            now=now,
            validity=validity,
            entropy=entropy,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if sans:
        leaf = leaf.add_extension(
            x509.SubjectAlternativeName([general_name(san) for san in sans]), critical=False
        )
    return leaf.sign(issuer_key, hashes.SHA256())


def general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def apiserver_sans(
    dns_domain: str,
    service_cidr: str,
    ingress_address: str | None,
    apiserver_addresses: Sequence[str],
    extra: Sequence[str],
) -> list[str]:
    """kubeadm's names for the API server, plus every address it is reached at."""
    first_service_ip = str(next(ipaddress.ip_network(service_cidr).hosts()))
    names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{dns_domain}",
        "localhost",
        first_service_ip,
        "127.0.0.1",
    ]
    if ingress_address:
        names.append(ingress_address)
    names.extend(apiserver_addresses)
    names.extend(extra)
    return list(dict.fromkeys(names))  # unique, in order


def etcd_sans(member_name: str, address: str) -> list[str]:
    return list(dict.fromkeys(["localhost", member_name, address, "127.0.0.1", "::1"]))
