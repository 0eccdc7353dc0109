"""Join tokens, decided and rendered: what a token is made of, how long it
lives, what revoking it and its expiry do, and what the cluster is given so
that a stock `kubeadm join` finds everything it reads."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model.decider.joins import BOOTSTRAPPERS, token_text
from oneinfra.pki.sealing import unseal
from oneinfra.pki.x509 import public_key_hash
from oneinfra.render.bootstrap import LiveToken, bootstrap_objects, cluster_dns

from .harness import NOW, Fleet
from .test_decider import refused

TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")  # kubeadm's token format


@pytest.fixture
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    return fleet


def test_a_token_has_kubeadms_format_its_secret_sealed_and_shown_once(fleet: Fleet) -> None:
    decision = fleet.run(cmd.CreateJoinToken(cluster="prod", description="rack 4"))
    assert decision.reply is not None and TOKEN.match(decision.reply)
    (created,) = decision.events
    assert isinstance(created, ev.JoinTokenCreated)
    token_id, secret = decision.reply.split(".")
    assert created.token_id == token_id and created.groups == [BOOTSTRAPPERS]
    assert secret.encode() not in ev.encode(created)[2]  # only sealed in the log
    data_key = fleet.keys.get(fleet.state.clusters["prod"].key_id)
    assert unseal(created.secret, data_key) == secret.encode()
    assert created.expires_at == (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fleet.state.clusters["prod"].join_tokens[token_id].description == "rack 4"


def test_revoking_a_token_drops_it_and_an_unknown_one_is_refused(fleet: Fleet) -> None:
    token_id = fleet.run(cmd.CreateJoinToken(cluster="prod")).reply.split(".")[0]  # type: ignore[union-attr]
    fleet.run(cmd.RevokeJoinToken(cluster="prod", token_id=token_id))
    assert fleet.state.clusters["prod"].join_tokens == {}
    refused(fleet, cmd.RevokeJoinToken(cluster="prod", token_id=token_id), "no join token")
    refused(fleet, cmd.CreateJoinToken(cluster="ghost"), "unknown cluster 'ghost'")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (cmd.CreateJoinToken(cluster="prod", ttl_seconds=5), "TTL must be between"),
        (cmd.CreateJoinToken(cluster="prod", ttl_seconds=400 * 86400), "TTL must be between"),
        (cmd.CreateJoinToken(cluster="prod", description="x" * 201), "at most 200"),
        (cmd.CreateJoinToken(cluster="prod", description="two\nlines"), "printable"),
    ],
)
def test_silly_tokens_are_refused(fleet: Fleet, command: cmd.Command, message: str) -> None:
    refused(fleet, command, message)


def test_creating_a_token_drops_the_expired_ones(fleet: Fleet) -> None:
    old = fleet.run(cmd.CreateJoinToken(cluster="prod", ttl_seconds=60)).reply
    assert old is not None
    fleet.clock = NOW + dt.timedelta(minutes=2)
    decision = fleet.run(cmd.CreateJoinToken(cluster="prod"))
    assert [type(e).__name__ for e in decision.events] == ["JoinTokenRevoked", "JoinTokenCreated"]
    assert list(fleet.state.clusters["prod"].join_tokens) == [decision.reply.split(".")[0]]  # type: ignore[union-attr]


def test_live_tokens_are_capped(fleet: Fleet) -> None:
    for _ in range(100):
        fleet.run(cmd.CreateJoinToken(cluster="prod"))
    refused(fleet, cmd.CreateJoinToken(cluster="prod"), "100 live join tokens")


@given(st.binary(min_size=64, max_size=64))
def test_token_characters_are_kubeadms_whatever_the_entropy(noise: bytes) -> None:
    class Context:
        def entropy(self, count: int) -> bytes:
            return (
                (noise * (count // 64 + 2))[:count] if any(b < 252 for b in noise) else bytes(count)
            )

    text = token_text(Context(), 16)  # type: ignore[arg-type]
    assert re.fullmatch(r"[a-z0-9]{16}", text)


def objects(fleet: Fleet, tokens: list[LiveToken]) -> dict[tuple[str, str], dict[str, object]]:
    created = fleet.created("prod")
    rendered = bootstrap_objects(fleet.state.clusters["prod"], "https://192.0.2.1:30000",
                                 created.pki.ca.certificate, tokens)  # fmt: skip
    return {(o["kind"], o["metadata"]["name"]): o for o in rendered}


def test_the_cluster_gets_what_kubeadm_join_reads(fleet: Fleet) -> None:
    token = LiveToken("abcdef", "0123456789abcdef", "2026-11-25T12:00:00Z", "", [BOOTSTRAPPERS])
    found = objects(fleet, [token])
    secret = found[("Secret", "bootstrap-token-abcdef")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}  # type: ignore[attr-defined]
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data["token-id"] == "abcdef" and data["token-secret"] == "0123456789abcdef"
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == BOOTSTRAPPERS
    info = yaml.safe_load(found[("ConfigMap", "cluster-info")]["data"]["kubeconfig"])  # type: ignore[index]
    (cluster,) = info["clusters"]
    assert cluster["cluster"]["server"] == "https://192.0.2.1:30000"
    ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode()
    assert public_key_hash(ca) == public_key_hash(fleet.created("prod").pki.ca.certificate)
    for binding, role in [
        ("kubeadm:kubelet-bootstrap", "system:node-bootstrapper"),
        ("kubeadm:node-autoapprove-bootstrap",
         "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
        ("kubeadm:node-autoapprove-certificate-rotation",
         "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"),
    ]:  # fmt: skip
        assert found[("ClusterRoleBinding", binding)]["roleRef"]["name"] == role  # type: ignore[index]
    for role in ("kubeadm:bootstrap-signer-clusterinfo", "kubeadm:nodes-kubeadm-config",
                 "kubeadm:kubelet-config"):  # fmt: skip
        assert ("Role", role) in found and ("RoleBinding", role) in found
    kubeadm = yaml.safe_load(found[("ConfigMap", "kubeadm-config")]["data"]["ClusterConfiguration"])  # type: ignore[index]
    assert kubeadm["controlPlaneEndpoint"] == "192.0.2.1:30000"
    assert kubeadm["networking"]["podSubnet"] == "10.244.0.0/16"
    kubelet = yaml.safe_load(found[("ConfigMap", "kubelet-config")]["data"]["kubelet"])  # type: ignore[index]
    assert kubelet["clusterDNS"] == ["10.96.0.10"] and kubelet["serverTLSBootstrap"] is True


def test_without_tokens_no_token_secret_is_rendered(fleet: Fleet) -> None:
    assert not [k for k in objects(fleet, []) if k[0] == "Secret"]
    assert cluster_dns("10.100.0.0/16") == "10.100.0.10"
