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
from ..pki.sealing import SealedKey
from . import events as ev
from .state import Cluster


def pair_in(event: ev.Event, certificate_id: str) -> KeyPair:
    """The certificate `certificate_id` as the event carries it."""
    match event:
        case ev.CertificatesRenewed():
            return event.certificates[certificate_id]
        case ev.CARotationPrepared():
            return event.cas.get(certificate_id) or event.certificates[certificate_id]
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


CLUSTER_IDS = [*certlist.CA_IDS, *certlist.CLUSTER_LEAF_IDS]  # what ClusterPKI holds


def current_pki(
    created: ClusterPKI, pairs: Mapping[str, KeyPair], service_account: tuple[str, SealedKey]
) -> ClusterPKI:
    """The cluster's PKI with its CAs, cluster-wide leaves and
    service-account key as they are now."""
    now = {i: pairs[i] for i in CLUSTER_IDS if i in pairs}
    public, key = service_account
    return msgspec.structs.replace(
        created, **now, service_account_public=public, service_account_key=key
    )


def service_account_in(event: ev.Event) -> tuple[str, SealedKey]:
    """The service-account key pair the event carries."""
    match event:
        case ev.ClusterCreated():
            return event.pki.service_account_public, event.pki.service_account_key
        case ev.CARotationPrepared():
            return event.service_account_public, event.service_account_key
    raise TypeError(f"{type(event).__name__} carries no service-account key")


def service_account_position(cluster: Cluster) -> int:
    return cluster.service_account_at or cluster.created_at


def pki_positions(cluster: Cluster) -> set[int]:
    """The events that hold the cluster's PKI as it is now."""
    return {cluster.created_at, service_account_position(cluster), *positions(cluster, CLUSTER_IDS)}


def pki_now(cluster: Cluster, events: Mapping[int, ev.Event]) -> ClusterPKI:
    """Its CAs, cluster-wide leaves and service-account key as they are now,
    from the events at `pki_positions`."""
    created = events[cluster.created_at]
    assert isinstance(created, ev.ClusterCreated)
    pairs = current(cluster, events, CLUSTER_IDS)
    service_account = service_account_in(events[service_account_position(cluster)])
    return current_pki(created.pki, pairs, service_account)


# -- between a rotation's two phases ---------------------------------------------


class Trust(msgspec.Struct, frozen=True, gc=False):
    """What a rotation in progress adds to the files: the old CAs (and
    service-account key) trusted beside the new, and each new CA vouched for
    by its old one, sent after every leaf it signs."""

    previous: dict[str, str]  # CA id -> PEM
    cross_signed: dict[str, str]  # CA id -> PEM
    previous_service_account: str


def trust_in(cluster: Cluster, prepared: ev.CARotationPrepared) -> Trust | None:
    """The trust a rotation adds: everything until it is complete, the old
    service-account key alone until it is retired, then nothing."""
    rotation = cluster.rotation
    if rotation is None or rotation.key_retired:
        return None
    if not rotation.in_progress:
        return Trust({}, {}, prepared.previous_service_account)
    return Trust(prepared.previous, prepared.cross_signed, prepared.previous_service_account)


def chained(pair: KeyPair, ca: str, trust: Trust | None) -> KeyPair:
    """A leaf signed by CA `ca`, followed by the link to its old CA."""
    if trust is None or ca not in trust.cross_signed:
        return pair
    return msgspec.structs.replace(pair, certificate=pair.certificate + trust.cross_signed[ca])


def trusted_pki(pki: ClusterPKI, trust: Trust | None) -> ClusterPKI:
    """The PKI as the files have it: each CA file a bundle (the new CA
    first: the controller manager signs with the first), each leaf chained,
    both service-account public keys accepted."""
    if trust is None:
        return pki
    cas = {
        i: msgspec.structs.replace(getattr(pki, i), certificate=getattr(pki, i).certificate + old)
        for i, old in trust.previous.items()
    }
    leaves = {
        spec.field: chained(getattr(pki, spec.field), spec.ca, trust)
        for spec in certlist.leaves(certlist.Scope.CLUSTER)
    }
    return msgspec.structs.replace(
        pki,
        **cas,
        **leaves,
        service_account_public=pki.service_account_public + trust.previous_service_account,
    )


def current_member(
    placed: ev.ComponentPlaced, pairs: Mapping[str, KeyPair], trust: Trust | None = None
) -> ev.ComponentPlaced:
    server_id, peer_id = certlist.member_ids(placed.component)
    server = pairs.get(server_id, placed.etcd_server)
    peer = pairs.get(peer_id, placed.etcd_peer)
    assert server is not None and peer is not None, "a control-plane replica has its member's"
    return msgspec.structs.replace(
        placed,
        etcd_server=chained(server, "etcd_ca", trust),
        etcd_peer=chained(peer, "etcd_ca", trust),
    )


def current_serving(
    issued: ev.ApiServerCertificateIssued, pairs: Mapping[str, KeyPair], trust: Trust | None = None
) -> ev.ApiServerCertificateIssued:
    serving = pairs.get(certlist.SERVING_ID, issued.serving)
    return msgspec.structs.replace(issued, serving=chained(serving, "ca", trust))
