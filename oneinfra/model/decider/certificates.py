"""Decisions about a cluster's certificates over time: leaves renewed from
the same CAs, with the same names and a new key each, on demand or when
due (2/3 of their life gone: what the daemon asks for, `due`); and the CAs
themselves rotated in two phases (prepare: new CAs trusted beside the old,
every leaf from the new; complete: the old ones dropped)."""

from __future__ import annotations

from ...errors import DomainError, shown
from ...pki import certlist, x509
from ...pki.certlist import KeyPair, leaf
from ...pki.issuer import Issuer, OpenCA
from .. import commands as cmd
from .. import events as ev
from ..state import CARotation, Cluster, FleetState, etcd_member_name
from .clusters import lifetimes
from .context import Context, Decision, existing_cluster

RENEWABLE_FILES = {
    certlist.file_of(i): i for i in (*certlist.CLUSTER_LEAF_IDS, certlist.SERVING_ID)
}
MEMBER_FILES = {"etcd/server": "etcd_server", "etcd/peer": "etcd_peer"}


def leaf_ids(cluster: Cluster) -> list[str]:
    """Every leaf the cluster has now (its CAs are not leaves)."""
    return [i for i in cluster.certificates if i not in certlist.CA_IDS]


def due(cluster: Cluster, now: int) -> list[str]:
    """The leaves past 2/3 of their life at `now` (Unix seconds)."""
    return sorted(i for i in leaf_ids(cluster) if cluster.certificates[i].validity.renew_at <= now)


def selected(cluster: Cluster, command: cmd.RenewCertificates) -> list[str]:
    """The ids the command names: kubeadm's file names (or ids), and
    replicas, for their etcd members' (both, unless etcd/server or
    etcd/peer narrow them); none named: every leaf."""
    if not command.certificates and not command.components:
        return sorted(leaf_ids(cluster))
    members = [c.name for c in cluster.control_planes()]
    for name in command.components:
        if name not in members:
            raise DomainError(
                f"cluster {shown(cluster.name)} has no control-plane replica {shown(name)}"
                f" (it has {', '.join(members)})"
            )
    kinds = [MEMBER_FILES[n] for n in command.certificates if n in MEMBER_FILES]
    if command.components and not kinds:
        kinds = list(MEMBER_FILES.values())
    wanted = {f"{kind}/{m}" for kind in kinds for m in (command.components or members)}
    for name in command.certificates:
        if name in MEMBER_FILES:
            continue
        if name in RENEWABLE_FILES:
            wanted.add(RENEWABLE_FILES[name])
        elif name in cluster.certificates and name not in certlist.CA_IDS:
            wanted.add(name)
        else:
            known = ", ".join(sorted([*RENEWABLE_FILES, *MEMBER_FILES]))
            raise DomainError(f"no certificate {shown(name)} to renew; known: {known}")
    return sorted(wanted)


def renew_certificates(
    state: FleetState, command: cmd.RenewCertificates, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    wanted = selected(cluster, command)
    if command.due_only:
        now = int(context.now.timestamp())
        wanted = [i for i in wanted if cluster.certificates[i].validity.renew_at <= now]
    if not wanted:
        return Decision(events=[])
    issuer = context.cluster_issuer(cluster)
    pki = context.pki[cluster.name]
    cas = {ca: issuer.open_ca(getattr(pki, ca)) for ca in certlist.CA_IDS}
    renewed = {i: reissued(state, cluster, issuer, cas, i) for i in wanted}
    return Decision(
        events=[
            ev.CertificatesRenewed(
                cluster=cluster.name,
                certificates=renewed,
                validity=issuer.validity(),
                reason="due" if command.due_only else "asked",
            )
        ]
    )


PREPARE, COMPLETE = "prepare", "complete"
# Pods' service-account tokens last an hour and the kubelet has them signed
# again at 80% of that: an hour after prepare, none is signed by the old key.
TOKENS_RESIGNED_WITHIN = 3600


def rotate_ca(state: FleetState, command: cmd.RotateCA, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    now = int(context.now.timestamp())
    rotation = cluster.rotation
    if command.phase == PREPARE:
        if rotation is not None and rotation.in_progress:
            raise DomainError(
                f"cluster {shown(cluster.name)}'s CA rotation was prepared "
                f"{now - rotation.prepared} s ago and is not complete; complete it first"
            )
        if rotation is not None and not rotation.key_retired:
            raise DomainError(
                f"cluster {shown(cluster.name)}'s last rotation's old service-account key is "
                f"accepted for another {key_retires_at(rotation) - now} s (pods' tokens it "
                f"signed); prepare again after that"
            )
        return Decision(events=[prepared(state, cluster, context)])
    if command.phase != COMPLETE:
        raise DomainError(f"no CA rotation phase {shown(command.phase)}; use prepare or complete")
    if rotation is None or not rotation.in_progress:
        raise DomainError(
            f"cluster {shown(cluster.name)} has no CA rotation to complete; prepare one first"
        )
    completed = ev.CARotationCompleted(
        cluster=cluster.name, completed=now, key_retired=now >= key_retires_at(rotation)
    )
    return Decision(events=[completed])


def key_retires_at(rotation: CARotation) -> int:
    """When a rotation's old service-account key may go (Unix seconds)."""
    return rotation.prepared + TOKENS_RESIGNED_WITHIN


def key_retirement(cluster: Cluster) -> int | None:
    """When a completed rotation's old service-account key is to be retired
    (Unix seconds); None when none waits for it."""
    rotation = cluster.rotation
    if rotation is None or rotation.in_progress or rotation.key_retired:
        return None
    return key_retires_at(rotation)


def key_retirement_due(cluster: Cluster, now: int) -> bool:
    retires = key_retirement(cluster)
    return retires is not None and now >= retires


def retire_service_account_key(
    state: FleetState, command: cmd.RetireServiceAccountKey, context: Context
) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    now = int(context.now.timestamp())
    if not key_retirement_due(cluster, now):
        return Decision(events=[])
    return Decision(events=[ev.ServiceAccountKeyRetired(cluster=cluster.name, retired=now)])


def prepared(state: FleetState, cluster: Cluster, context: Context) -> ev.CARotationPrepared:
    """New CAs and service-account key, each new CA signed by its old one,
    and every leaf issued again from the new CAs."""
    issuer = context.cluster_issuer(cluster)
    pki = context.pki[cluster.name]
    old = {ca: issuer.open_ca(getattr(pki, ca)) for ca in certlist.CA_IDS}
    pairs, new = {}, {}
    for spec in certlist.CAS:
        pairs[spec.field], new[spec.field] = issuer.rotated_ca(spec)
    public, key = issuer.service_account()
    return ev.CARotationPrepared(
        cluster=cluster.name,
        cas=pairs,
        cross_signed={ca: issuer.cross_signed(new[ca], old[ca]) for ca in certlist.CA_IDS},
        previous={ca: getattr(pki, ca).certificate for ca in certlist.CA_IDS},
        service_account_public=public,
        service_account_key=key,
        previous_service_account=pki.service_account_public,
        certificates={
            i: reissued(state, cluster, issuer, new, i) for i in sorted(leaf_ids(cluster))
        },
        validity=issuer.validity(),
        ca_validity=issuer.validity(ca=True),
    )


def set_lifetimes(
    state: FleetState, command: cmd.SetCertificateLifetimes, context: Context
) -> Decision:
    """New lifetimes, checked as at creation; and no leaf lifetime longer
    than what the cluster's CAs have left (a leaf would outlive them)."""
    cluster = existing_cluster(state, command.cluster)
    if not command.certificate_lifetime and not command.ca_lifetime:
        raise DomainError("nothing to change: give a certificate lifetime, a CA lifetime or both")
    leaf_lifetime, ca_lifetime = lifetimes(
        command.certificate_lifetime or cluster.leaf_lifetime,
        command.ca_lifetime or cluster.ca_lifetime,
    )
    now = int(context.now.timestamp())
    for ca in certlist.CA_IDS:
        certificate = cluster.certificates.get(ca)
        if certificate is not None and now + leaf_lifetime > certificate.validity.expires:
            raise DomainError(
                f"certificates of {leaf_lifetime} s would outlive cluster "
                f"{shown(cluster.name)}'s {ca} CA, which expires in "
                f"{certificate.validity.expires - now} s"
            )
    if (leaf_lifetime, ca_lifetime) == (cluster.leaf_lifetime, cluster.ca_lifetime):
        return Decision(events=[])
    changed = ev.CertificateLifetimesChanged(
        cluster=cluster.name, leaf_lifetime=leaf_lifetime, ca_lifetime=ca_lifetime
    )
    return Decision(events=[changed])


def reissued(
    state: FleetState, cluster: Cluster, issuer: Issuer, cas: dict[str, OpenCA], i: str
) -> KeyPair:
    """One leaf again: the table's subject and usages, the names it has now."""
    member = certlist.member_of(i)
    if member is not None:
        spec = leaf(i.partition("/")[0])
        address = state.hypervisors[cluster.components[member].hypervisor].ip_address
        name = etcd_member_name(cluster.name, member)
        pair, _ = issuer.issue(spec, cas[spec.ca], common_name=name,
                               sans=x509.etcd_sans(name, address))  # fmt: skip
        return pair
    if i == certlist.SERVING_ID:
        return issuer.apiserver_serving(cas["ca"], cluster.apiserver_sans)
    spec = leaf(i)
    pair, _ = issuer.issue(spec, cas[spec.ca])
    return pair
