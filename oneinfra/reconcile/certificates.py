"""A cluster's certificates and keys as they are now, read from the events
the state points at (cached: they never change): what the pods' files, the
daemon's own clients and the in-cluster objects are made from."""

from __future__ import annotations

from ..model import events as ev
from ..model.certificates import Trust, current, pki_now, pki_positions, positions, trust_in
from ..model.state import Cluster
from ..pki.certlist import ClusterPKI, KeyPair
from ..storage.logreader import EventCache


async def current_pairs(events: EventCache, cluster: Cluster, ids: list[str]) -> dict[str, KeyPair]:
    """These certificates of the cluster as they are now (renewed, rotated or not)."""
    found = {p: await events.get(p, ev.Event) for p in positions(cluster, ids)}
    return current(cluster, found, ids)


async def cluster_pki(events: EventCache, cluster: Cluster) -> ClusterPKI:
    """Its CAs, cluster-wide leaves and service-account key as they are now."""
    found = {p: await events.get(p, ev.Event) for p in pki_positions(cluster)}
    return pki_now(cluster, found)


async def cluster_trust(events: EventCache, cluster: Cluster) -> Trust | None:
    """What a CA rotation in progress adds to the files; None when none is."""
    if cluster.rotation is None or cluster.rotation.key_retired:
        return None
    prepared = await events.get(cluster.rotation.prepared_at, ev.CARotationPrepared)
    return trust_in(cluster, prepared)
