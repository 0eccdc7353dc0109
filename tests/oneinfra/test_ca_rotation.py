"""Two-phase CA rotation: prepare makes new CAs and service-account key,
issues every leaf again from them and keeps the old CAs trusted (each new
CA cross-signed by its old one, so whoever trusts only the old follows the
chain); complete drops the old ones. Refusals change nothing."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import anyio
import pytest
from cryptography import x509 as crypto_x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from lightkube.models.certificates_v1 import (
    CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.certificates_v1 import CertificateSigningRequest

from eventstore import InMemoryEventStore
from oneinfra import render as bp
from oneinfra.daemon.service import FleetService
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model.certificates import trust_in, trusted_pki
from oneinfra.model.decider.certificates import TOKENS_RESIGNED_WITHIN
from oneinfra.pki import certlist
from oneinfra.pki.x509 import issued_by, load_cert, public_key_hash
from oneinfra.reconcile.board import StatusBoard
from oneinfra.reconcile.pods import desired_pods
from oneinfra.reconcile.renewals import due_commands, next_renewal
from oneinfra.render.addons import (
    TRUST_ANNOTATION,
    addons,
    newest_ca_stamp,
    restarted_for_rotation,
)
from oneinfra.runtime.kube import CLIENT_SIGNER, NodeView, rotated_trust
from oneinfra.storage.keystore import KeyStore
from oneinfra.storage.logreader import EventCache

from .harness import NOW, Fleet
from .test_decider import refused


def prepared_fleet() -> tuple[Fleet, ev.CARotationPrepared]:
    fleet = Fleet()
    fleet.hypervisors(private=5)
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    (event,) = fleet.run(cmd.RotateCA(cluster="prod", phase="prepare")).events
    assert isinstance(event, ev.CARotationPrepared)
    return fleet, event


def certificates(bundle: str) -> list[crypto_x509.Certificate]:
    return crypto_x509.load_pem_x509_certificates(bundle.encode())


def test_prepare_makes_new_cas_and_issues_every_leaf_again_from_them() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    old = fleet.pki("prod")
    leaves_before = {
        i for i in fleet.state.clusters["prod"].certificates if i not in certlist.CA_IDS
    }
    (event,) = fleet.run(cmd.RotateCA(cluster="prod", phase="prepare")).events
    assert isinstance(event, ev.CARotationPrepared)
    assert set(event.cas) == set(certlist.CA_IDS) and set(event.certificates) == leaves_before
    new = fleet.pki("prod")
    for ca in certlist.CA_IDS:
        before, after = (
            load_cert(getattr(old, ca).certificate),
            load_cert(getattr(new, ca).certificate),
        )
        assert before.public_key() != after.public_key()
        # A name of its own: no client confuses it with the one it replaces.
        assert after.subject != before.subject
        assert event.previous[ca] == getattr(old, ca).certificate
        cross = load_cert(event.cross_signed[ca])
        cross.verify_directly_issued_by(before)
        assert cross.public_key() == after.public_key() and cross.subject == after.subject
    assert new.service_account_public != old.service_account_public
    assert event.previous_service_account == old.service_account_public
    for certificate_id, pair in event.certificates.items():
        spec = certlist.leaf(certificate_id.partition("/")[0])
        issuer = load_cert(getattr(new, spec.ca).certificate)
        load_cert(pair.certificate).verify_directly_issued_by(issuer)
    cluster = fleet.state.clusters["prod"]
    assert cluster.rotation is not None and cluster.rotation.in_progress
    assert all(c.at == len(fleet.log) for c in cluster.certificates.values())


def test_between_the_phases_files_trust_both_cas_and_leaves_chain_to_the_old() -> None:
    fleet, event = prepared_fleet()
    cluster = fleet.state.clusters["prod"]
    trust = trust_in(cluster, event)
    files = trusted_pki(fleet.pki("prod"), trust)
    bundle = certificates(files.ca.certificate)
    assert [c.public_key() for c in bundle] == [
        load_cert(event.cas["ca"].certificate).public_key(),  # first: the signer's own
        load_cert(event.previous["ca"]).public_key(),
    ]
    assert files.service_account_public.count("BEGIN PUBLIC KEY") == 2
    chain = certificates(files.admin.certificate)
    assert len(chain) == 2 and chain[1] == load_cert(event.cross_signed["ca"])
    # Completed: back to one CA per file, leaves alone.
    fleet.clock = NOW + dt.timedelta(seconds=TOKENS_RESIGNED_WITHIN)
    fleet.run(cmd.RotateCA(cluster="prod", phase="complete"))
    assert trust_in(fleet.state.clusters["prod"], event) is None
    assert fleet.state.clusters["prod"].rotation.completed  # type: ignore[union-attr]


def test_a_renewal_or_a_scale_mid_rotation_issues_from_the_new_cas() -> None:
    fleet, event = prepared_fleet()
    (renewed,) = fleet.run(
        cmd.RenewCertificates(cluster="prod", certificates=["admin.conf"])
    ).events
    assert isinstance(renewed, ev.CertificatesRenewed)
    new_ca = load_cert(event.cas["ca"].certificate)
    load_cert(renewed.certificates["admin"].certificate).verify_directly_issued_by(new_ca)
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=5))
    placed = [e for e in fleet.log if isinstance(e, ev.ComponentPlaced)][-1]
    assert placed.etcd_server is not None
    new_etcd_ca = load_cert(event.cas["etcd_ca"].certificate)
    load_cert(placed.etcd_server.certificate).verify_directly_issued_by(new_etcd_ca)


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (cmd.RotateCA(cluster="prod", phase="complete"), "no CA rotation to complete"),
        (cmd.RotateCA(cluster="prod", phase="sideways"), "no CA rotation phase 'sideways'"),
        (cmd.RotateCA(cluster="nope", phase="prepare"), "unknown cluster"),
    ],
)
def test_a_phase_that_cannot_be_is_refused_changing_nothing(
    command: cmd.Command, said: str
) -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    refused(fleet, command, said)


def test_complete_drops_the_old_cas_at_once_and_the_old_key_an_hour_after_prepare() -> None:
    """Pods' tokens of the old key are accepted until the kubelet has had
    them signed again: the daemon retires that key when the hour is up (a
    look before that does nothing); a new rotation waits for it."""
    fleet, event = prepared_fleet()
    refused(fleet, cmd.RotateCA(cluster="prod", phase="prepare"), "complete it first")
    fleet.clock = NOW + dt.timedelta(seconds=60)
    (completed,) = fleet.run(cmd.RotateCA(cluster="prod", phase="complete")).events
    assert isinstance(completed, ev.CARotationCompleted) and not completed.key_retired
    cluster = fleet.state.clusters["prod"]
    trust = trust_in(cluster, event)
    assert trust is not None and not trust.previous and not trust.cross_signed
    files = trusted_pki(fleet.pki("prod"), trust)
    assert len(certificates(files.ca.certificate)) == 1
    assert len(certificates(files.admin.certificate)) == 1
    assert files.service_account_public.count("BEGIN PUBLIC KEY") == 2
    refused(fleet, cmd.RotateCA(cluster="prod", phase="complete"), "no CA rotation to complete")
    refused(fleet, cmd.RotateCA(cluster="prod", phase="prepare"), "accepted for another 3540 s")
    assert fleet.run(cmd.RetireServiceAccountKey(cluster="prod")).events == []  # not yet
    fleet.clock = NOW + dt.timedelta(seconds=TOKENS_RESIGNED_WITHIN)
    (retired,) = fleet.run(cmd.RetireServiceAccountKey(cluster="prod")).events
    assert isinstance(retired, ev.ServiceAccountKeyRetired)
    assert trust_in(fleet.state.clusters["prod"], event) is None
    assert fleet.run(cmd.RetireServiceAccountKey(cluster="prod")).events == []  # never twice
    # And a new rotation may start: from the CAs of the last one.
    last = fleet.pki("prod").ca.certificate
    (again,) = fleet.run(cmd.RotateCA(cluster="prod", phase="prepare")).events
    assert isinstance(again, ev.CARotationPrepared) and again.previous["ca"] == last


def test_a_rotation_completed_after_the_hour_retires_the_old_key_with_the_cas() -> None:
    fleet, event = prepared_fleet()
    fleet.clock = NOW + dt.timedelta(seconds=TOKENS_RESIGNED_WITHIN)
    (completed,) = fleet.run(cmd.RotateCA(cluster="prod", phase="complete")).events
    assert isinstance(completed, ev.CARotationCompleted) and completed.key_retired
    assert trust_in(fleet.state.clusters["prod"], event) is None
    assert fleet.run(cmd.RetireServiceAccountKey(cluster="prod")).events == []


def test_the_daemon_retires_the_old_key_when_due_and_looks_again_then() -> None:
    fleet, _ = prepared_fleet()
    fleet.run(cmd.RotateCA(cluster="prod", phase="complete"))
    now = int(NOW.timestamp())
    assert due_commands(fleet.state, now) == []
    assert next_renewal(fleet.state) == min(
        now + TOKENS_RESIGNED_WITHIN,
        min(c.validity.renew_at for i, c in fleet.state.clusters["prod"].certificates.items()
            if i not in certlist.CA_IDS),
    )  # fmt: skip
    ((_, command),) = due_commands(fleet.state, now + TOKENS_RESIGNED_WITHIN)
    assert command == cmd.RetireServiceAccountKey(cluster="prod")


def verifies(leaf: crypto_x509.Certificate, chain: list[crypto_x509.Certificate],
             roots: list[str], name: str) -> bool:  # fmt: skip
    """Whether a client trusting only `roots` accepts a server sending
    `leaf` and `chain` for `name`."""
    verifier = (
        PolicyBuilder()
        .store(Store([load_cert(r) for r in roots]))
        .build_server_verifier(crypto_x509.DNSName(name))
    )
    try:
        verifier.verify(leaf, chain)
    except VerificationError:
        return False
    return True


@pytest.mark.anyio
async def test_the_api_servers_files_mid_rotation_satisfy_old_and_new_clients(
    tmp_path: Path,
) -> None:
    """The pods as the reconciler renders them: a client trusting only the
    old CA, or only the new, accepts the serving chain; the controller
    manager signs with the new CA alone. Completed: the old one is out."""
    store = InMemoryEventStore()
    keys = KeyStore(tmp_path / "keys.db", os.urandom(32))
    clock = [NOW]
    service = await FleetService.open(store, keys, clock=lambda: clock[0])
    async with anyio.create_task_group() as tasks:
        await tasks.start(service.run)
        await service.execute(
            cmd.RegisterHypervisor(
                name="pub", endpoint="unix:///run/pub.sock", role="public", ip_address="10.0.0.1"
            )
        )
        await service.execute(cmd.RegisterHypervisor(
            name="priv0", endpoint="unix:///run/priv0.sock", role="private",
            ip_address="10.0.0.10"))  # fmt: skip
        await service.execute(cmd.CreateCluster(name="prod"))
        old = (await service.cluster_pki("prod")).ca.certificate
        await service.execute(cmd.RotateCA(cluster="prod", phase="prepare"))
        new = (await service.cluster_pki("prod")).ca.certificate
        mid = await control_plane_files(service, store, keys)
        clock[0] = NOW + dt.timedelta(seconds=TOKENS_RESIGNED_WITHIN)  # the old key goes too
        await service.execute(cmd.RotateCA(cluster="prod", phase="complete"))
        after = await control_plane_files(service, store, keys)
        service.stop_accepting()

    assert certificates(mid["pki/ca.crt"]) == [load_cert(new), load_cert(old)]
    assert mid["pki/signing-ca.crt"] == new
    serving, *chain = certificates(mid["pki/apiserver.crt"])
    assert verifies(serving, chain, [old], "kubernetes") and verifies(
        serving, chain, [new], "kubernetes"
    )
    assert mid["pki/sa.pub"].count("BEGIN PUBLIC KEY") == 2
    assert len(certificates(mid["pki/etcd/server.crt"])) == 2

    assert after["pki/ca.crt"] == new and after["pki/signing-ca.crt"] == new
    serving, *chain = certificates(after["pki/apiserver.crt"])
    assert chain == [] and not verifies(serving, chain, [old], "kubernetes")
    assert verifies(serving, chain, [new], "kubernetes")
    assert after["pki/sa.pub"].count("BEGIN PUBLIC KEY") == 1


async def control_plane_files(
    service: FleetService, store: InMemoryEventStore, keys: KeyStore
) -> dict[str, str]:
    (pod,) = await desired_pods(service.state, "priv0", EventCache(store), keys.get)
    assert pod.labels[bp.LABEL_COMPONENT] == "control-plane-0"
    return {f.path: f.content.decode() for f in pod.files if not f.path.endswith(".key")}


def test_the_cluster_s_own_workloads_start_again_once_the_newest_ca_reaches_pods() -> None:
    """Their clients read the CA bundle as they start: their pod templates
    carry the newest CA of kube-root-ca.crt, which changes once the
    prepared bundle is published, and not at complete; a cluster never
    rotated keeps its manifests as they were."""
    fleet, event = prepared_fleet()
    cluster = fleet.state.clusters["prod"]
    old, new = event.previous["ca"], event.cas["ca"].certificate
    manifests = addons(cluster, "https://192.0.2.1:30000")
    assert restarted_for_rotation(manifests, None) == manifests
    assert newest_ca_stamp(cluster, "") is None
    before = newest_ca_stamp(cluster, old)  # prepared, its bundle not out yet
    published = newest_ca_stamp(cluster, new + old)
    assert before and published and before != published
    assert newest_ca_stamp(cluster, new) == published  # completed: no restart
    stamped = restarted_for_rotation(manifests, published)
    workloads = [m for m in stamped if m["kind"] in ("DaemonSet", "Deployment")]
    assert workloads and all(
        m["spec"]["template"]["metadata"]["annotations"][TRUST_ANNOTATION] == published
        for m in workloads
    )
    others = [m for m in stamped if m["kind"] not in ("DaemonSet", "Deployment")]
    assert others == [m for m in manifests if m["kind"] not in ("DaemonSet", "Deployment")]
    never = Fleet()
    never.hypervisors()
    never.run(cmd.CreateCluster(name="prod"))
    assert newest_ca_stamp(never.state.clusters["prod"], old) is None


def test_a_worker_is_known_to_trust_the_new_ca_by_its_rotation_csr_and_only_then() -> None:
    """The daemon's evidence that a worker ran `node rotate-trust`: an issued
    client CSR of that name, filed by the node itself, signed by the new CA
    (one of the old CA, or of another kind, is no evidence); recorded once,
    and remembered across a restart."""
    fleet, event = prepared_fleet()
    new_ca, old_ca = event.cas["ca"], fleet.created("prod").pki.ca
    # A leaf of each CA stands for the node's client certificate.
    new_leaf = event.certificates["admin"].certificate
    old_leaf = fleet.created("prod").pki.admin.certificate
    csrs = [
        csr("oneinfra-rotate-w0-1", "system:node:w0", new_leaf),
        csr("oneinfra-rotate-w1-1", "system:node:w1", old_leaf),  # the old CA's: not yet
        # The kubelet's own rotation: no word of its CA file.
        csr("csr-abc", "system:node:w2", new_leaf),
    ]
    found = rotated_trust(csrs)
    assert set(found) == {"w0", "w1"}
    assert issued_by(found["w0"][1], new_ca.certificate)
    assert not issued_by(found["w1"][1], new_ca.certificate)
    assert not issued_by("not a certificate", new_ca.certificate)
    assert issued_by(old_leaf, old_ca.certificate)

    board = StatusBoard()
    ca = public_key_hash(new_ca.certificate)
    assert board.untrusting_nodes("prod", "c1", ca) is None  # no node observed yet
    board.nodes_observed(
        "prod", "c1", [node_view("w0"), node_view("w1")], {}, "2026-12-07T01:00:00Z"
    )
    board.take_outbox()
    assert board.untrusting_nodes("prod", "c1", ca) == ["w0", "w1"]
    rotated = ev.NodeTrustRotated("prod", "c1", "w0", "oneinfra-rotate-w0-1", ca)
    board.trust_rotated(rotated)
    board.trust_rotated(rotated)
    assert board.take_outbox() == [rotated]  # once
    assert board.untrusting_nodes("prod", "c1", ca) == ["w1"]
    restarted = StatusBoard()
    restarted.load([rotated])
    restarted.nodes_observed("prod", "c1", [node_view("w0")], {}, "2026-12-07T01:01:00Z")
    assert restarted.untrusting_nodes("prod", "c1", ca) == []
    assert restarted.untrusting_nodes("prod", "c1", "sha256:another") == ["w0"]


def csr(name: str, username: str, issued: str) -> CertificateSigningRequest:
    return CertificateSigningRequest(
        metadata=ObjectMeta(name=name),
        spec=CertificateSigningRequestSpec(request="", signerName=CLIENT_SIGNER, username=username),
        status=CertificateSigningRequestStatus(
            certificate=base64.b64encode(issued.encode()).decode()
        ),
    )


def node_view(name: str) -> NodeView:
    return NodeView(name, True, "v1.37.2", "10.213.0.30", [], "2026-12-07T00:00:00Z")
