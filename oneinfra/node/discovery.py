"""Token discovery, as kubeadm does it (cmd/kubeadm/app/discovery/token):
`cluster-info` is fetched without trusting the endpoint, then trusted only
when the token has signed it and its CA matches a pinned public-key hash.

Pure: the fetching is join.py's.
"""

from __future__ import annotations

import base64
import re
import warnings
from dataclasses import dataclass

import jwt
import yaml

from ..errors import JoinError, shown
from ..pki.x509 import public_key_hashes

TOKEN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
CA_HASH = re.compile(r"sha256:[0-9a-f]{64}")


class NotSigned(JoinError):
    """cluster-info bears no signature made with the token: yet (a token
    just made is signed within seconds), or ever (expired, revoked, of
    another cluster). Discovery asks again until its time is up."""


@dataclass(frozen=True)
class Token:
    token_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.token_id}.{self.secret}"


@dataclass(frozen=True)
class Discovered:
    server: str  # the cluster's endpoint, as cluster-info names it
    ca_pem: str


def parse_token(text: str) -> Token:
    found = TOKEN.fullmatch(text)
    if found is None:
        raise JoinError(
            f"a join token looks like abcdef.0123456789abcdef ([a-z0-9]{{6}}.[a-z0-9]{{16}}), "
            f"not {shown(text)}"
        )
    return Token(found[1], found[2])


def parse_ca_hash(text: str) -> str:
    if CA_HASH.fullmatch(text) is None:
        raise JoinError(
            f"a CA hash is sha256: and 64 hex digits (kubeadm's "
            f"--discovery-token-ca-cert-hash), not {shown(text)}"
        )
    return text


def signature_holds(detached: str, content: str, token: Token) -> bool:
    """A detached compact JWS (`header..signature`, RFC 7515 appendix F),
    HS256 with the token's secret, its key id the token's id."""
    header, _, signature = detached.partition("..")
    if not header or not signature:
        return False
    payload = base64.urlsafe_b64encode(content.encode()).rstrip(b"=").decode()
    try:
        with warnings.catch_warnings():
            # kubeadm's secrets are 16 characters: shorter than PyJWT would like.
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            verified = jwt.api_jws.decode_complete(
                f"{header}.{payload}.{signature}", token.secret, algorithms=["HS256"]
            )
    except jwt.InvalidTokenError:
        return False
    return bool(verified["header"].get("kid") == token.token_id)


def verified_cluster_info(data: dict[str, str], token: Token, ca_hashes: list[str]) -> Discovered:
    """What `cluster-info`'s data says, once the token's signature and a
    pinned CA hash vouch for it."""
    content = data.get("kubeconfig")
    if not isinstance(content, str):
        raise JoinError("the cluster's cluster-info holds no kubeconfig: is this a Kubernetes API?")
    detached = data.get(f"jws-kubeconfig-{token.token_id}")
    if detached is None:
        raise NotSigned(
            f"the cluster does not know token {token.token_id} (no signature made with it in "
            f"cluster-info): it is expired, revoked, or of another cluster"
        )
    if not signature_holds(detached, content, token):
        raise JoinError(
            f"cluster-info's signature for token {token.token_id} does not hold: the token's "
            f"secret is wrong, or someone between here and the endpoint changed it"
        )
    try:
        kubeconfig = yaml.safe_load(content)
        cluster = kubeconfig["clusters"][0]["cluster"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        server = str(cluster["server"])
        found_hashes = public_key_hashes(ca_pem)  # mid-rotation: the new CA and the old
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as error:
        raise JoinError(f"cluster-info is not a kubeconfig with a CA: {error}") from None
    if ca_hashes and not set(found_hashes) & set(ca_hashes):
        raise JoinError(
            f"the cluster's CA is {', '.join(found_hashes)}, not the one pinned "
            f"({', '.join(ca_hashes)}): refusing to trust it"
        )
    return Discovered(server=server, ca_pem=ca_pem)
