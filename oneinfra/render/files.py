"""Files of certificates, keys and kubeconfigs, as a component reads them:
keys unsealed with the cluster's data key, and written 0600."""

from __future__ import annotations

from ..pki.certlist import KeyPair
from ..pki.kubeconfig import kubeconfig
from ..pki.sealing import SealedKey, unseal
from .pods import File


def key_file(path: str, sealed: SealedKey, data_key: bytes) -> File:
    return File(path, unseal(sealed, data_key), 0o600)


def cert_and_key(path: str, pair: KeyPair, data_key: bytes) -> list[File]:
    return [
        File(f"{path}.crt", pair.certificate.encode()),
        key_file(f"{path}.key", pair.key, data_key),
    ]


def component_kubeconfig(
    path: str, user: str, server: str, ca: str, pair: KeyPair, data_key: bytes
) -> File:
    """A component's kubeconfig (the controller manager's, the scheduler's)."""
    key = unseal(pair.key, data_key).decode()
    content = kubeconfig("local", server, ca, user, pair.certificate, key).encode()
    return File(path, content, 0o600)
