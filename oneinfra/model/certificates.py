"""A cluster's certificates as they are now (pure): each one out of the
event the state says carries it, put back where the renderers look for it
(the ClusterPKI of ClusterCreated, a member's ComponentPlaced, the API
servers' ApiServerCertificateIssued), so that they render renewed
certificates without knowing about renewal."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ..pki import certlist
from ..pki.certlist import ClusterPKI, KeyPair
from . import events as ev
from .state import Cluster


def pair_in(event: ev.Event, certificate_id: str) -> KeyPair:
    """The certificate `certificate_id` as the event carries it."""
    match event:
        case ev.CertificatesRenewed():
            return event.certificates[certificate_id]
        case ev.ClusterCreated():
            pair: KeyPair = getattr(event.pki, certificate_id)
            return pair
        case ev.ApiServerCertificateIssued():
            return event.serving
        case ev.ComponentPlaced() if certificate_id.startswith("etcd_server/"):
            assert event.etcd_server is not None
            return event.etcd_server
        case ev.ComponentPlaced():
            assert event.etcd_peer is not None
            return event.etcd_peer
    raise TypeError(f"{type(event).__name__} carries no certificate {certificate_id}")


def positions(cluster: Cluster, ids: list[str]) -> set[int]:
    """The events to read for these certificates."""
    return {cluster.certificates[i].at for i in ids if i in cluster.certificates}


def current(cluster: Cluster, events: Mapping[int, ev.Event], ids: list[str]) -> dict[str, KeyPair]:
    """These certificates as they are now, from the events at `positions`."""
    return {
        i: pair_in(events[cluster.certificates[i].at], i) for i in ids if i in cluster.certificates
    }


def current_pki(created: ClusterPKI, pairs: Mapping[str, KeyPair]) -> ClusterPKI:
    """The cluster's PKI with its cluster-wide leaves as they are now."""
    leaves = {i: pairs[i] for i in certlist.CLUSTER_LEAF_IDS if i in pairs}
    return msgspec.structs.replace(created, **leaves)


def current_member(placed: ev.ComponentPlaced, pairs: Mapping[str, KeyPair]) -> ev.ComponentPlaced:
    server, peer = certlist.member_ids(placed.component)
    return msgspec.structs.replace(
        placed,
        etcd_server=pairs.get(server, placed.etcd_server),
        etcd_peer=pairs.get(peer, placed.etcd_peer),
    )


def current_serving(
    issued: ev.ApiServerCertificateIssued, pairs: Mapping[str, KeyPair]
) -> ev.ApiServerCertificateIssued:
    return msgspec.structs.replace(issued, serving=pairs.get(certlist.SERVING_ID, issued.serving))
