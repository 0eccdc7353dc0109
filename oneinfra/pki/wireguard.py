"""WireGuard keys: Curve25519 (X25519) pairs in the base64 form `wg` uses.

The daemon makes only each cluster's VPN server key (from the decision's
entropy, so it lands in an event and replay never makes another). A worker
makes its own and hands over the public half; its private key never leaves it.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .x509 import Entropy

KEY_BYTES = 32
TEXT_LENGTH = 44  # base64 of 32 bytes, one '=' of padding


def encode(raw: bytes) -> str:
    """A key, private or public, as `wg` reads and prints it."""
    return base64.b64encode(raw).decode()


def new_private_key(entropy: Entropy) -> bytes:
    """32 random bytes, clamped as Curve25519 wants (wg genkey does the same)."""
    raw = bytearray(entropy(KEY_BYTES))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return bytes(raw)


def public_key(private: bytes) -> str:
    """The public key of a raw private key, as `wg pubkey` prints it."""
    key = X25519PrivateKey.from_private_bytes(private).public_key()
    return encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def parsed_public_key(text: str) -> str | None:
    """The key in canonical form, or None when it is not a WireGuard public
    key: base64 of exactly 32 bytes, and not a low-order point (which any
    key "agrees" with: the all-zero shared secret WireGuard refuses)."""
    if len(text) != TEXT_LENGTH:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != KEY_BYTES:
        return None
    probe = X25519PrivateKey.from_private_bytes(bytes([64] * KEY_BYTES))
    try:
        probe.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:  # cryptography refuses an all-zero shared secret
        return None
    return encode(raw)
