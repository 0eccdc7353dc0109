"""Issues a cluster's certificates from the table (certlist) and seals their
private keys with the cluster's data key.

Pure given what it is handed: the time, the entropy, the data key. The
decider calls it and puts what it returns into events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509 as crypto_x509
from cryptography.hazmat.primitives.asymmetric import ec

from . import x509
from .certlist import (
    CA,
    CAS,
    DEFAULT_CA_LIFETIME,
    DEFAULT_LEAF_LIFETIME,
    ClusterPKI,
    KeyPair,
    Leaf,
    Scope,
    Validity,
    leaf,
    leaves,
)
from .csr import IPSEC_TUNNEL, NODE_PREFIX
from .sealing import NONCE_BYTES, SealedKey, seal, unseal


@dataclass(frozen=True)
class OpenCA:
    """A CA with its private key in the clear, for as long as a decision takes."""

    certificate: crypto_x509.Certificate
    key: ec.EllipticCurvePrivateKey


ClusterCAs = dict[str, OpenCA]  # by their field in ClusterPKI


class Issuer:
    """Issues one cluster's certificates and seals their keys with its data key."""

    def __init__(
        self,
        now: dt.datetime,
        entropy: x509.Entropy,
        key_id: str,
        data_key: bytes,
        leaf_lifetime: int = DEFAULT_LEAF_LIFETIME,
        ca_lifetime: int = DEFAULT_CA_LIFETIME,
    ) -> None:
        self.now = now
        self.entropy = entropy
        self.key_id = key_id
        self.data_key = data_key
        self.leaf_lifetime = dt.timedelta(seconds=leaf_lifetime)
        self.ca_lifetime = dt.timedelta(seconds=ca_lifetime)

    def validity(self, ca: bool = False) -> Validity:
        """What this issuer's leaves (or CAs) are good for: from now, for their lifetime."""
        lifetime = self.ca_lifetime if ca else self.leaf_lifetime
        return Validity(int(self.now.timestamp()), int((self.now + lifetime).timestamp()))

    def sealed(self, key: ec.EllipticCurvePrivateKey) -> SealedKey:
        nonce = self.entropy(NONCE_BYTES)
        return seal(self.key_id, self.data_key, x509.key_pem(key), nonce)

    def open_ca(self, pair: KeyPair) -> OpenCA:
        return OpenCA(
            x509.load_cert(pair.certificate), x509.load_key(unseal(pair.key, self.data_key))
        )

    def new_ca(self, spec: CA, common_name: str = "") -> tuple[KeyPair, OpenCA]:
        key = x509.new_key(self.entropy)
        name = common_name or spec.common_name
        certificate = x509.issue_ca(name, key, self.now, self.entropy, self.ca_lifetime)
        return KeyPair(x509.cert_pem(certificate), self.sealed(key)), OpenCA(certificate, key)

    def rotated_ca(self, spec: CA) -> tuple[KeyPair, OpenCA]:
        """A CA to replace the table's: a name of its own (the time it was
        made), so that no client confuses it with the one it replaces."""
        return self.new_ca(spec, f"{spec.common_name}-{self.now:%Y%m%d%H%M%S}")

    def cross_signed(self, new: OpenCA, old: OpenCA) -> str:
        """`new` vouched for by `old` (PEM)."""
        return x509.cert_pem(
            x509.cross_sign(new.certificate, old.certificate, old.key, self.now, self.entropy)
        )

    def service_account(self) -> tuple[str, SealedKey]:
        """The service accounts' signing key: a key pair without a
        certificate (sa.pub, sa.key)."""
        key = x509.new_key(self.entropy)
        return x509.public_pem(key), self.sealed(key)

    def issue(
        self,
        spec: Leaf,
        ca: OpenCA,
        *,
        common_name: str = "",
        organizations: Sequence[str] = (),
        sans: Sequence[str] = (),
    ) -> tuple[KeyPair, crypto_x509.Certificate]:
        """One leaf of the table; the subject is the table's unless given."""
        key = x509.new_key(self.entropy)
        certificate = x509.issue_leaf(
            ca.certificate,
            ca.key,
            key,
            common_name=common_name or spec.common_name,
            organizations=organizations or spec.organizations,
            usages=spec.usages,
            sans=sans,
            now=self.now,
            entropy=self.entropy,
            validity=self.leaf_lifetime,
        )
        return KeyPair(x509.cert_pem(certificate), self.sealed(key)), certificate

    def cluster_pki(self) -> tuple[ClusterPKI, ClusterCAs]:
        """Every cluster-scope certificate of the table, and its CAs opened."""
        pairs: dict[str, object] = {}
        cas: ClusterCAs = {}
        for ca in CAS:
            pairs[ca.field], cas[ca.field] = self.new_ca(ca)
        pairs["service_account_public"], pairs["service_account_key"] = self.service_account()
        for spec in leaves(Scope.CLUSTER):
            pairs[spec.field], _ = self.issue(spec, cas[spec.ca])
        return ClusterPKI(**pairs), cas  # type: ignore[arg-type]

    def etcd_member(self, etcd_ca: OpenCA, member: str, address: str) -> tuple[KeyPair, KeyPair]:
        """An etcd member's server and peer certificates."""
        sans = x509.etcd_sans(member, address)
        server, _ = self.issue(leaf("etcd_server"), etcd_ca, common_name=member, sans=sans)
        peer, _ = self.issue(leaf("etcd_peer"), etcd_ca, common_name=member, sans=sans)
        return server, peer

    def vpn_peer(
        self, ca: OpenCA, node_key: ec.EllipticCurvePublicKey, node: str, address: str
    ) -> str:
        """A worker's VPN peer certificate: its node and its VPN address,
        vouched for by the cluster's CA; good for no TLS (id-kp-ipsecTunnel)."""
        certificate = x509.issue_leaf(
            ca.certificate, ca.key, node_key, common_name=f"{NODE_PREFIX}{node}",
            usages=[IPSEC_TUNNEL], sans=[address], now=self.now, entropy=self.entropy,
        )  # fmt: skip
        return x509.cert_pem(certificate)

    def apiserver_serving(self, ca: OpenCA, sans: Sequence[str]) -> KeyPair:
        serving, _ = self.issue(leaf("serving"), ca, sans=sans)
        return serving
