"""What every decision is made with (the context) and what it gives (the
decision), and the small helpers the deciders share."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ...errors import DomainError, shown
from ...pki.certlist import DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME, ClusterPKI
from ...pki.issuer import Issuer
from ...pki.x509 import Entropy
from .. import commands as cmd
from .. import events as ev
from ..state import Cluster, FleetState


class DataKeys(Protocol):
    def get(self, key_id: str) -> bytes: ...


@dataclass(frozen=True)
class Context:
    now: dt.datetime
    entropy: Entropy
    data_keys: DataKeys  # existing data keys, to sign with a cluster's CAs
    # The PKI of the clusters the command signs for (see pki_needed): the state
    # only refers to it, by the position of its ClusterCreated event.
    pki: Mapping[str, ClusterPKI] = field(default_factory=dict)

    def issuer(
        self,
        key_id: str,
        data_key: bytes | None = None,
        leaf_lifetime: int = DEFAULT_LEAF_LIFETIME,
        ca_lifetime: int = DEFAULT_CA_LIFETIME,
    ) -> Issuer:
        """An issuer for a cluster, with its existing data key unless given."""
        key = data_key if data_key is not None else self.data_keys.get(key_id)
        return Issuer(self.now, self.entropy, key_id, key, leaf_lifetime, ca_lifetime)

    def cluster_issuer(self, cluster: Cluster) -> Issuer:
        """An existing cluster's: its data key, its lifetimes."""
        return self.issuer(cluster.key_id, None, cluster.leaf_lifetime, cluster.ca_lifetime)


@dataclass
class Decision:
    events: list[ev.Event]
    new_keys: dict[str, bytes] = field(default_factory=dict)  # store before appending
    destroyed_keys: list[str] = field(default_factory=list)  # destroy after appending
    reply: str | None = None  # a kubeconfig: for the caller only, never stored


def pki_needed(state: FleetState, command: cmd.Command) -> list[str]:
    """The clusters whose CAs the command signs with (their PKI as it is now
    goes into the context)."""
    name = None
    if isinstance(command, cmd.ScaleCluster):
        name = command.name
    elif isinstance(command, cmd.IssueKubeconfig | cmd.RenewCertificates | cmd.RotateCA) or (
        isinstance(command, cmd.AddVpnPeer) and command.certify_key
    ):
        name = command.cluster
    cluster = state.clusters.get(name) if name is not None else None
    return [cluster.name] if cluster is not None else []


def new_id(context: Context) -> str:
    return str(uuid.UUID(bytes=context.entropy(16), version=4))


def unknown(kind: str, name: str, known: Mapping[str, object]) -> DomainError:
    hint = f"; known: {', '.join(sorted(known)[:10])}" if known else f"; there is no {kind} yet"
    return DomainError(f"unknown {kind} {shown(name)}{hint}")


def existing_cluster(state: FleetState, name: str) -> Cluster:
    cluster = state.clusters.get(name)
    if cluster is None:
        raise unknown("cluster", name, state.clusters)
    return cluster
