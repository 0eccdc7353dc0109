"""Certificates over time: lifetimes chosen at create, every certificate
in the state with what it is good for, leaves renewed from the same CAs on
demand or when due (never late, never twice)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from cryptography import x509 as crypto_x509
from hypothesis import given, settings
from hypothesis import strategies as st

from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model import projection
from oneinfra.model.decider.certificates import due
from oneinfra.model.state import FleetState
from oneinfra.pki import certlist
from oneinfra.pki.x509 import load_cert

from .harness import NOW, Fleet
from .test_decider import refused

HOUR = 3600


def fleet_with(replicas: int = 3, lifetime: int = 0, ca_lifetime: int = 0) -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    create = cmd.CreateCluster(name="prod", control_plane_replicas=replicas,
                               certificate_lifetime=lifetime, ca_lifetime=ca_lifetime)  # fmt: skip
    fleet.run(create)
    return fleet


def pem_of(fleet: Fleet, certificate_id: str) -> str:
    """The certificate the state says is current, out of the event it names."""
    event = fleet.at(fleet.state.clusters["prod"].certificates[certificate_id].at)
    match event:
        case ev.ClusterCreated():
            return str(getattr(event.pki, certificate_id).certificate)
        case ev.ComponentPlaced():
            pair = (
                event.etcd_server if certificate_id.startswith("etcd_server") else event.etcd_peer
            )
            assert pair is not None
            return pair.certificate
        case ev.ApiServerCertificateIssued():
            return event.serving.certificate
        case ev.CertificatesRenewed():
            return event.certificates[certificate_id].certificate
    raise AssertionError(f"{certificate_id} at {type(event).__name__}")


def test_every_certificate_of_a_cluster_is_in_the_state_with_its_lifetime() -> None:
    fleet = fleet_with(lifetime=2 * 60, ca_lifetime=HOUR)
    cluster = fleet.state.clusters["prod"]
    assert set(cluster.certificates) == {
        *certlist.CA_IDS, *certlist.CLUSTER_LEAF_IDS, certlist.SERVING_ID,
        *(i for r in range(3) for i in certlist.member_ids(f"control-plane-{r}")),
    }  # fmt: skip
    for certificate_id, known in cluster.certificates.items():
        certificate = load_cert(pem_of(fleet, certificate_id))
        lifetime = HOUR if certificate_id in certlist.CA_IDS else 2 * 60
        assert known.validity.issued == int(NOW.timestamp())
        assert known.validity.expires == int((NOW + dt.timedelta(seconds=lifetime)).timestamp())
        assert int(certificate.not_valid_after_utc.timestamp()) == known.validity.expires
    assert cluster.leaf_lifetime == 120 and cluster.ca_lifetime == HOUR


def test_a_cluster_without_lifetimes_gets_kubeadms() -> None:
    cluster = fleet_with().state.clusters["prod"]
    admin = cluster.certificates["admin"].validity
    assert admin.expires - admin.issued == 365 * 86_400
    ca = cluster.certificates["ca"].validity
    assert ca.expires - ca.issued == 3650 * 86_400


@pytest.mark.parametrize(
    ("lifetime", "ca_lifetime", "said"),
    [
        (30, 0, "a certificate lifetime of 30 s is out of range"),
        (HOUR, HOUR, "certificates would outlive their CA"),
        (0, 200 * 365 * 86_400, "a CA lifetime of .* is out of range"),
        (-5, 0, "a whole number of seconds, not -5"),
    ],
)
def test_lifetimes_out_of_range_are_refused(lifetime: int, ca_lifetime: int, said: str) -> None:
    fleet = Fleet()
    fleet.hypervisors()
    refused(fleet, cmd.CreateCluster(name="prod", certificate_lifetime=lifetime,
                                     ca_lifetime=ca_lifetime), said)  # fmt: skip


def test_lifetimes_changed_later_apply_from_the_next_renewal() -> None:
    fleet = fleet_with(lifetime=HOUR, ca_lifetime=30 * 86_400)
    before = fleet.state.clusters["prod"].certificates["admin"].validity
    (changed,) = fleet.run(
        cmd.SetCertificateLifetimes(cluster="prod", certificate_lifetime=600)
    ).events
    assert changed == ev.CertificateLifetimesChanged(
        cluster="prod", leaf_lifetime=600, ca_lifetime=30 * 86_400
    )
    cluster = fleet.state.clusters["prod"]
    assert (cluster.leaf_lifetime, cluster.ca_lifetime) == (600, 30 * 86_400)
    assert cluster.certificates["admin"].validity == before  # nothing reissued yet
    fleet.clock = NOW + dt.timedelta(minutes=45)  # the hour's leaves are due
    fleet.run(cmd.RenewCertificates(cluster="prod", due_only=True))
    renewed = fleet.state.clusters["prod"].certificates["admin"].validity
    assert renewed.expires - renewed.issued == 600
    assert int(load_cert(pem_of(fleet, "admin")).not_valid_after_utc.timestamp()) == renewed.expires
    # The same lifetimes again change nothing; the log says so by its silence.
    assert (
        fleet.run(cmd.SetCertificateLifetimes(cluster="prod", certificate_lifetime=600)).events
        == []
    )
    # Folded from the log, the state is the same.
    assert projection.fold(fleet.log).clusters["prod"].leaf_lifetime == 600


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (cmd.SetCertificateLifetimes(cluster="prod"), "nothing to change"),
        (cmd.SetCertificateLifetimes(cluster="nope", certificate_lifetime=600),
         "unknown cluster .nope."),
        (cmd.SetCertificateLifetimes(cluster="prod", certificate_lifetime=30), "out of range"),
        (cmd.SetCertificateLifetimes(cluster="prod", ca_lifetime=HOUR // 2),
         "certificates would outlive their CA"),  # the leaves' hour stays
        # Good for longer than the CAs have left: refused, say which and how long.
        (cmd.SetCertificateLifetimes(cluster="prod", certificate_lifetime=40 * 86_400,
                                     ca_lifetime=50 * 86_400),
         "would outlive cluster 'prod'.s ca CA, which expires in 2592000 s"),
    ],
)  # fmt: skip
def test_lifetimes_that_cannot_be_are_refused_changing_nothing(
    command: cmd.Command, said: str
) -> None:
    refused(fleet_with(lifetime=HOUR, ca_lifetime=30 * 86_400), command, said)


def test_renewal_reissues_every_leaf_from_the_same_cas_with_the_same_names() -> None:
    fleet = fleet_with()
    before = {i: pem_of(fleet, i) for i in fleet.state.clusters["prod"].certificates}
    fleet.clock = NOW + dt.timedelta(days=30)
    (renewed,) = fleet.run(cmd.RenewCertificates(cluster="prod")).events
    assert isinstance(renewed, ev.CertificatesRenewed) and renewed.reason == "asked"
    cluster = fleet.state.clusters["prod"]
    leaves = set(cluster.certificates) - set(certlist.CA_IDS)
    assert set(renewed.certificates) == leaves
    for certificate_id in cluster.certificates:
        old, new = load_cert(before[certificate_id]), load_cert(pem_of(fleet, certificate_id))
        if certificate_id in certlist.CA_IDS:
            assert old == new  # CAs are not leaves: rotation is another command
            continue
        assert new.serial_number != old.serial_number
        assert new.public_key() != old.public_key()  # a new key each
        assert (new.subject, new.issuer) == (old.subject, old.issuer)
        assert san(new) == san(old)
        assert cluster.certificates[certificate_id].validity.issued == int(fleet.clock.timestamp())


def san(certificate: crypto_x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(crypto_x509.SubjectAlternativeName)
    except crypto_x509.ExtensionNotFound:
        return []
    return sorted(str(n.value) for n in names.value)


def test_renewal_takes_kubeadms_names_and_replicas() -> None:
    fleet = fleet_with()
    ask = {
        ("apiserver",): ["serving"],
        ("admin.conf", "scheduler.conf"): ["admin", "scheduler"],
        ("etcd/server",): [f"etcd_server/control-plane-{r}" for r in range(3)],
    }
    for names, ids in ask.items():
        (renewed,) = fleet.run(
            cmd.RenewCertificates(cluster="prod", certificates=list(names))
        ).events
        assert isinstance(renewed, ev.CertificatesRenewed)
        assert sorted(renewed.certificates) == ids
    (renewed,) = fleet.run(
        cmd.RenewCertificates(cluster="prod", components=["control-plane-1"])
    ).events
    assert isinstance(renewed, ev.CertificatesRenewed)
    assert sorted(renewed.certificates) == sorted(certlist.member_ids("control-plane-1"))
    asked = cmd.RenewCertificates(
        cluster="prod", components=["control-plane-1"], certificates=["etcd/peer"]
    )
    (renewed,) = fleet.run(asked).events
    assert isinstance(renewed, ev.CertificatesRenewed)
    assert list(renewed.certificates) == ["etcd_peer/control-plane-1"]


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (cmd.RenewCertificates(cluster="prod", certificates=["ca"]), "no certificate 'ca'"),
        (cmd.RenewCertificates(cluster="prod", certificates=["x" * 5000]), "no certificate"),
        (cmd.RenewCertificates(cluster="prod", components=["control-plane-9"]),
         "has no control-plane replica 'control-plane-9'"),
        (cmd.RenewCertificates(cluster="nope"), "unknown cluster 'nope'"),
    ],
)  # fmt: skip
def test_renewing_what_is_not_there_is_refused(command: cmd.Command, said: str) -> None:
    refused(fleet_with(), command, said)


def test_a_member_placed_by_a_scale_and_removed_again_leaves_no_certificate_behind() -> None:
    fleet = fleet_with(replicas=1)
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=3))
    assert set(certlist.member_ids("control-plane-1")) <= set(
        fleet.state.clusters["prod"].certificates
    )
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1))
    assert not set(certlist.member_ids("control-plane-1")) & set(
        fleet.state.clusters["prod"].certificates
    )


@settings(max_examples=40, deadline=None)
@given(
    lifetime=st.integers(60, 400 * 86_400),
    checks=st.lists(st.integers(1, 200 * 86_400), min_size=1, max_size=12),
)
def test_renewal_when_due_is_never_late_and_never_twice(lifetime: int, checks: list[int]) -> None:
    """The daemon asks at arbitrary times: at each, whatever is past 2/3 of
    its life is renewed, and nothing renewed is due again before 2/3 of its
    new life."""
    fleet = fleet_with(replicas=1, lifetime=lifetime, ca_lifetime=lifetime * 10)
    clock = int(NOW.timestamp())
    for step in checks:
        clock += step
        fleet.clock = dt.datetime.fromtimestamp(clock, dt.UTC)
        cluster = fleet.state.clusters["prod"]
        owed = due(cluster, clock)
        events = fleet.run(cmd.RenewCertificates(cluster="prod", due_only=True)).events
        renewed = [i for e in events if isinstance(e, ev.CertificatesRenewed)
                   for i in e.certificates]  # fmt: skip
        assert sorted(renewed) == owed  # never late: all that is due, at once
        assert due(fleet.state.clusters["prod"], clock) == []  # never twice
        assert all(fleet.state.clusters["prod"].certificates[i].validity.issued == clock
                   for i in renewed)  # fmt: skip


def test_events_from_before_validities_were_recorded_have_them_read_from_the_certificates() -> None:
    fleet = fleet_with(replicas=1)
    legacy = [
        msgspec.structs.replace(e, leaf_validity=None, ca_validity=None)
        if isinstance(e, ev.ClusterCreated)
        else msgspec.structs.replace(e, validity=None)
        if isinstance(e, ev.ComponentPlaced | ev.ApiServerCertificateIssued)
        else e
        for e in fleet.log
    ]
    state = FleetState()
    for position, event in enumerate(legacy, start=1):
        projection.apply(state, event, position)
    assert state.clusters["prod"].certificates == fleet.state.clusters["prod"].certificates
