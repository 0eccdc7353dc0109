"""Decisions about workers joining a cluster: bootstrap tokens (kubeadm's
`abcdef.0123456789abcdef`), created with a lifetime and revoked.

A token's id is public (it names the Secret in the cluster); its secret is
sealed with the cluster's data key and goes to the caller once, at
creation. Creating a token also drops the expired ones from the state.
"""

from __future__ import annotations

import datetime as dt

from ...errors import DomainError, shown
from ...pki.sealing import NONCE_BYTES, seal
from .. import commands as cmd
from .. import events as ev
from .. import validation
from ..state import Cluster, FleetState
from .context import Context, Decision, existing_cluster
from .vpn import peer_removed

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # what kubeadm's tokens are made of
ID_LENGTH, SECRET_LENGTH = 6, 16
MIN_JOIN_TOKEN_TTL = 60
MAX_JOIN_TOKEN_TTL = 366 * 24 * 3600
MAX_JOIN_TOKENS = 100  # live tokens of one cluster
MAX_DESCRIPTION = 200
BOOTSTRAPPERS = "system:bootstrappers:kubeadm:default-node-token"


def token_text(context: Context, length: int) -> str:
    """`length` characters of ALPHABET, uniform: bytes past the largest
    multiple of 36 are drawn again."""
    chosen: list[str] = []
    while len(chosen) < length:
        for byte in context.entropy(length * 2):
            if byte < 252 and len(chosen) < length:  # 252 = 7 * 36
                chosen.append(ALPHABET[byte % 36])
    return "".join(chosen)


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def expired(expires_at: str, now: dt.datetime) -> bool:
    return parse_rfc3339(expires_at) <= now


def create_join_token(
    state: FleetState, command: cmd.CreateJoinToken, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    if not MIN_JOIN_TOKEN_TTL <= command.ttl_seconds <= MAX_JOIN_TOKEN_TTL:
        raise DomainError(
            f"join token TTL must be between {MIN_JOIN_TOKEN_TTL} s and 366 days, "
            f"not {command.ttl_seconds} s"
        )
    if len(command.description) > MAX_DESCRIPTION or not command.description.isprintable():
        raise DomainError(
            f"a token's description is at most {MAX_DESCRIPTION} printable characters, "
            f"not {shown(command.description)}"
        )
    events: list[ev.Event] = [
        ev.JoinTokenRevoked(cluster=cluster.name, token_id=t.token_id)
        for t in sorted(cluster.join_tokens.values(), key=lambda t: t.token_id)
        if expired(t.expires_at, context.now)
    ]
    live = len(cluster.join_tokens) - len(events)
    if live >= MAX_JOIN_TOKENS:
        raise DomainError(
            f"cluster {shown(cluster.name)} has {live} live join tokens, the most it may; "
            "revoke some ('oneinfra cluster token revoke')"
        )
    token_id = fresh_id(cluster, context)
    secret = token_text(context, SECRET_LENGTH)
    data_key = context.data_keys.get(cluster.key_id)
    sealed = seal(cluster.key_id, data_key, secret.encode(), context.entropy(NONCE_BYTES))
    events.append(
        ev.JoinTokenCreated(
            cluster=cluster.name,
            token_id=token_id,
            secret=sealed,
            expires_at=rfc3339(context.now + dt.timedelta(seconds=command.ttl_seconds)),
            description=command.description,
            groups=[BOOTSTRAPPERS],
        )
    )
    return Decision(events=events, reply=f"{token_id}.{secret}")


def fresh_id(cluster: Cluster, context: Context) -> str:
    while (token_id := token_text(context, ID_LENGTH)) in cluster.join_tokens:
        pass
    return token_id


def remove_node(state: FleetState, command: cmd.RemoveNode, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    validation.node_name(command.node)
    removed = ev.NodeRemoved(cluster=cluster.name, node=command.node,
                             requested_at=rfc3339(context.now))  # fmt: skip
    return Decision(events=[removed, *peer_removed(cluster, command.node)])


def revoke_join_token(
    state: FleetState, command: cmd.RevokeJoinToken, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    if command.token_id not in cluster.join_tokens:
        known = ", ".join(sorted(cluster.join_tokens)[:10]) or "none"
        raise DomainError(
            f"cluster {shown(cluster.name)} has no join token {shown(command.token_id)} "
            f"(its tokens: {known})"
        )
    return Decision(events=[ev.JoinTokenRevoked(cluster=cluster.name, token_id=command.token_id)])
