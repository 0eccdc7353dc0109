"""The worker's side of a join, its pure parts: discovery trusts
cluster-info only when the token signed it and the CA matches the pinned
hash; the kubelet's configuration keeps the cluster's and sets the
machine's over it."""

from __future__ import annotations

import base64
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography import x509 as crypto_x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from oneinfra.errors import JoinError
from oneinfra.model import commands as cmd
from oneinfra.node import discovery, kubelet, trust
from oneinfra.node.discovery import Token
from oneinfra.node.kubelet import NodeSettings
from oneinfra.pki.x509 import public_key_hash
from oneinfra.render.bootstrap import cluster_info, kubelet_config

from .harness import Fleet

TOKEN = Token("abcdef", "0123456789abcdef")
# kubeadm's secrets are 16 characters, shorter than PyJWT would like for HS256.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture(scope="module")
def ca_pem() -> str:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    return fleet.created("prod").pki.ca.certificate


def signed(content: str, token: Token, kid: str | None = None) -> str:
    """What the controller manager's bootstrapsigner adds to cluster-info:
    a detached compact JWS, HS256 keyed by the secret, kid the token id."""
    whole = jwt.api_jws.encode(
        content.encode(), token.secret, algorithm="HS256",
        headers={"kid": kid or token.token_id, "typ": None},
    )  # fmt: skip
    header, _, signature = whole.split(".")
    return f"{header}..{signature}"


def data_of(ca_pem: str, token: Token = TOKEN) -> dict[str, str]:
    data: dict[str, str] = cluster_info("https://192.0.2.1:30000", ca_pem)["data"]
    return {**data, f"jws-kubeconfig-{token.token_id}": signed(data["kubeconfig"], token)}


def test_signed_cluster_info_with_the_pinned_ca_is_trusted(ca_pem: str) -> None:
    found = discovery.verified_cluster_info(data_of(ca_pem), TOKEN, [public_key_hash(ca_pem)])
    assert found.server == "https://192.0.2.1:30000"
    assert public_key_hash(found.ca_pem) == public_key_hash(ca_pem)


def test_another_ca_than_the_pinned_one_is_refused(ca_pem: str) -> None:
    with pytest.raises(JoinError, match="not the one pinned"):
        discovery.verified_cluster_info(data_of(ca_pem), TOKEN, ["sha256:" + "0" * 64])


def test_mid_rotation_cluster_info_trusts_both_cas_and_either_pin_holds(ca_pem: str) -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="other"))
    new_pem = fleet.created("other").pki.ca.certificate
    bundle = new_pem + ca_pem  # what cluster-info says between prepare and complete
    for pinned in (new_pem, ca_pem):
        found = discovery.verified_cluster_info(data_of(bundle), TOKEN, [public_key_hash(pinned)])
        assert found.ca_pem == bundle
    with pytest.raises(JoinError, match="not the one pinned"):
        discovery.verified_cluster_info(data_of(bundle), TOKEN, ["sha256:" + "0" * 64])


def test_a_rotation_s_client_csr_is_the_kubelet_s_own_kind() -> None:
    request = trust.signing_request("w0", ec.generate_private_key(ec.SECP256R1()))
    spec = request["spec"]
    assert spec["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert spec["usages"] == ["digital signature", "client auth"]
    csr = crypto_x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=system:node:w0,O=system:nodes"
    assert request["metadata"]["name"].startswith("oneinfra-rotate-w0-")


def test_a_changed_kubeconfig_breaks_the_signature(ca_pem: str) -> None:
    data = data_of(ca_pem)
    data["kubeconfig"] = data["kubeconfig"].replace("192.0.2.1", "198.51.100.7")
    with pytest.raises(JoinError, match="does not hold"):
        discovery.verified_cluster_info(data, TOKEN, [public_key_hash(ca_pem)])


def test_a_wrong_secret_or_key_id_breaks_the_signature(ca_pem: str) -> None:
    data = data_of(ca_pem)
    wrong = Token("abcdef", "ffffffffffffffff")
    with pytest.raises(JoinError, match="does not hold"):
        discovery.verified_cluster_info(data, wrong, [public_key_hash(ca_pem)])
    data["jws-kubeconfig-abcdef"] = signed(data["kubeconfig"], TOKEN, kid="zzzzzz")
    with pytest.raises(JoinError, match="does not hold"):
        discovery.verified_cluster_info(data, TOKEN, [public_key_hash(ca_pem)])


def test_a_token_the_cluster_does_not_know_is_named(ca_pem: str) -> None:
    other = Token("ghijkl", "0123456789abcdef")
    with pytest.raises(JoinError, match="does not know token ghijkl"):
        discovery.verified_cluster_info(data_of(ca_pem), other, [public_key_hash(ca_pem)])


@given(st.text(max_size=80))
def test_a_signature_of_any_shape_is_refused_not_a_crash(detached: str) -> None:
    assert discovery.signature_holds(detached, "content", TOKEN) is False


@pytest.mark.parametrize(
    ("text", "message"),
    [("abcdef.0123456789abcde", "looks like"), ("ABCDEF.0123456789abcdef", "looks like"),
     ("x" * 1_000_000, "1000000 characters")],
)  # fmt: skip
def test_malformed_tokens_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(JoinError, match=message) as refused:
        discovery.parse_token(text)
    assert len(str(refused.value)) < 200


def test_malformed_ca_hashes_are_refused() -> None:
    for text in ("sha256:abc", "md5:" + "0" * 64, "0" * 64):
        with pytest.raises(JoinError, match="sha256: and 64 hex digits"):
            discovery.parse_ca_hash(text)


def settings(**overrides: object) -> NodeSettings:
    given = dict(
        node_name="w0", node_ip="10.213.0.30", cri_socket="unix:///run/w0/containerd.sock",
        config_dir=Path("/srv/w0/etc"), root_dir=Path("/srv/w0/kubelet"),
        pod_logs_dir=Path("/srv/w0/pods"), cgroup_driver="cgroupfs", cgroup_v1=True,
        cgroup_root="/oneinfra-w0",
    )  # fmt: skip
    return NodeSettings(**{**given, **overrides})  # type: ignore[arg-type]


def test_the_kubelet_keeps_the_clusters_settings_and_takes_the_machines() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    cluster_config = kubelet_config(fleet.state.clusters["prod"])["data"]["kubelet"]
    config = yaml.safe_load(kubelet.kubelet_configuration(cluster_config, settings()))
    assert config["clusterDNS"] == ["10.96.0.10"] and config["authorization"]["mode"] == "Webhook"
    assert config["authentication"]["x509"]["clientCAFile"] == "/srv/w0/etc/pki/ca.crt"
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["cgroupDriver"] == "cgroupfs" and config["failCgroupV1"] is False
    assert config["cgroupRoot"] == "/oneinfra-w0" and config["podLogsDir"] == "/srv/w0/pods"
    assert config["containerRuntimeEndpoint"] == "unix:///run/w0/containerd.sock"
    on_v2 = yaml.safe_load(kubelet.kubelet_configuration(cluster_config, settings(
        cgroup_v1=False, cgroup_root=None)))  # fmt: skip
    assert "failCgroupV1" not in on_v2 and "cgroupRoot" not in on_v2


def test_a_kubelet_config_that_is_not_one_is_refused() -> None:
    for text in ("{", "kind: Pod", "- a list"):
        with pytest.raises(JoinError, match="kubelet-config"):
            kubelet.kubelet_configuration(text, settings())


def test_the_bootstrap_kubeconfig_carries_the_token_and_trusts_the_ca_file() -> None:
    config = yaml.safe_load(
        kubelet.bootstrap_kubeconfig("https://192.0.2.1:30000", Path("/srv/ca.crt"), str(TOKEN))
    )
    assert config["users"][0]["user"]["token"] == "abcdef.0123456789abcdef"
    assert config["clusters"][0]["cluster"] == {
        "server": "https://192.0.2.1:30000", "certificate-authority": "/srv/ca.crt"
    }  # fmt: skip


def test_the_kubelet_command_and_its_unit() -> None:
    command = kubelet.kubelet_command(Path("/usr/bin/kubelet"), settings())
    assert "--bootstrap-kubeconfig=/srv/w0/etc/bootstrap-kubelet.conf" in command
    assert "--kubeconfig=/srv/w0/etc/kubelet.conf" in command
    assert "--config=/srv/w0/kubelet/config.yaml" in command
    assert "--hostname-override=w0" in command and "--node-ip=10.213.0.30" in command
    unit = kubelet.systemd_unit(command)
    assert "ExecStart=/usr/bin/kubelet --bootstrap-kubeconfig=" in unit
    assert "Restart=always" in unit


def test_b64_of_the_rendered_ca_is_what_discovery_reads(ca_pem: str) -> None:
    kubeconfig = yaml.safe_load(data_of(ca_pem)["kubeconfig"])
    ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(ca).decode() == ca_pem
