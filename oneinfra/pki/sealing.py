"""Private keys at rest: sealed (AES-GCM) with a data key, the key's id bound
in as associated data, so that a sealed key opens only with its own data key.

Where data keys live, and how they are wrapped by the master key, is the
key store's business (storage/keystore.py); here is only the cipher.
"""

from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # a data key: AES-256
NONCE_BYTES = 12


class SealedKey(msgspec.Struct, frozen=True, gc=False):
    """A private key in PEM, encrypted (AES-GCM) with the data key `key_id`."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def seal(key_id: str, data_key: bytes, plaintext: bytes, nonce: bytes) -> SealedKey:
    """Encrypt with AES-GCM; the key id is bound in as associated data."""
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, key_id.encode())
    return SealedKey(key_id=key_id, nonce=nonce, ciphertext=ciphertext)


def unseal(sealed: SealedKey, data_key: bytes) -> bytes:
    return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, sealed.key_id.encode())
