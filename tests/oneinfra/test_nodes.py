"""Worker nodes from the daemon's side, its pure parts: which kubelet
serving requests are approved, what runs on the workers (rendered), and
how joins and leaves are recorded (once, even across a restart)."""

from __future__ import annotations

import ipaddress

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.pki.csr import ServingRequest, requested_names, serving_refusal
from oneinfra.reconcile.board import StatusBoard
from oneinfra.reconcile.in_cluster import removed
from oneinfra.render.addons import addons
from oneinfra.render.labels import MANAGED
from oneinfra.render.metrics_server import api_service, metrics_server
from oneinfra.runtime.kube import NodeView

from .harness import Fleet
from .test_decider import refused

W0 = [("InternalIP", "10.213.0.30"), ("Hostname", "w0")]


def request(
    names: list[str] = ["w0"],  # noqa: B006
    addresses: list[str] = ["10.213.0.30"],  # noqa: B006
    common_name: str = "system:node:w0",
    organization: str = "system:nodes",
    username: str = "system:node:w0",
    usages: list[str] = ["digital signature", "key encipherment", "server auth"],  # noqa: B006
) -> ServingRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]))  # fmt: skip
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return ServingRequest("csr-1", pem, username, ["system:nodes", "system:authenticated"], usages)


def test_a_kubelet_asking_for_its_own_names_is_approved() -> None:
    asked = request()
    assert serving_refusal(asked, W0) is None
    assert requested_names(asked.request_pem) == ["w0", "10.213.0.30"]


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        (request(names=["w0", "evil.example"]), "evil.example"),
        (request(addresses=["10.213.0.31"]), "10.213.0.31"),
        (request(common_name="system:node:w1"), "not CN=system:node:w0"),
        (request(organization="system:masters"), "not CN=system:node:w0,O=system:nodes"),
        (request(username="system:bootstrap:abcdef"), "not a node"),
        (request(usages=["digital signature", "client auth"]), "not a serving certificate's"),
        (request(names=[], addresses=[]), "no DNS name or address"),
    ],
)  # fmt: skip
def test_anything_but_the_nodes_own_names_is_refused_and_said_why(
    asked: ServingRequest, says: str
) -> None:
    refusal = serving_refusal(asked, W0)
    assert refusal is not None and says in refusal


def test_a_request_for_a_node_that_is_not_registered_is_refused() -> None:
    assert serving_refusal(request(), None) == "no Node 'w0' is registered"


@given(st.binary(max_size=300))
def test_a_request_of_any_bytes_is_refused_not_a_crash(noise: bytes) -> None:
    asked = ServingRequest("csr-x", noise, "system:node:w0", ["system:nodes"], ["server auth"])
    assert serving_refusal(asked, W0) is not None


def test_what_runs_on_the_workers_reaches_the_api_at_the_ingress() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod", pod_cidr="10.50.0.0/16", service_cidr="10.60.0.0/16"))
    rendered = addons(fleet.state.clusters["prod"], "https://192.0.2.1:30000")
    found = {(o["kind"], o["metadata"]["name"]): o for o in rendered}
    proxy = found[("ConfigMap", "kube-proxy")]["data"]
    assert yaml.safe_load(proxy["kubeconfig.conf"])["clusters"][0]["cluster"]["server"] == (
        "https://192.0.2.1:30000"
    )
    settings = yaml.safe_load(proxy["config.conf"])
    assert settings["mode"] == "nftables" and settings["clusterCIDR"] == "10.50.0.0/16"
    image = found[("DaemonSet", "kube-proxy")]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "registry.k8s.io/kube-proxy:v1.37.2"
    net_conf = found[("ConfigMap", "kube-flannel-cfg")]["data"]["net-conf.json"]
    assert '"Network": "10.50.0.0/16"' in net_conf
    flannel = found[("DaemonSet", "kube-flannel")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KUBERNETES_SERVICE_HOST", "value": "192.0.2.1"} in flannel["env"]
    assert found[("Service", "kube-dns")]["spec"]["clusterIP"] == "10.60.0.10"
    assert (
        "kubernetes cluster.local in-addr.arpa"
        in found[("ConfigMap", "coredns")]["data"]["Corefile"]
    )
    for manifest in found.values():
        assert MANAGED.items() <= manifest["metadata"]["labels"].items()


def test_metrics_server_scrapes_kubelets_at_their_node_ip_and_checks_their_certificates() -> None:
    rendered = metrics_server("https://[2001:db8::1]:30000")
    found = {(o["kind"], o["metadata"]["name"]): o for o in rendered}
    pod = found[("Deployment", "metrics-server")]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert "--kubelet-preferred-address-types=InternalIP" in server["args"]
    ca = "--kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    assert ca in server["args"]
    assert not any("insecure" in a for a in server["args"])
    assert {"name": "KUBERNETES_SERVICE_HOST", "value": "2001:db8::1"} in server["env"]
    assert pod["serviceAccountName"] == "metrics-server"
    readers = found[("ClusterRole", "system:aggregated-metrics-reader")]["metadata"]["labels"]
    assert readers["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    # Registered only once a node can run it (reconcile/in_cluster.py).
    assert not any(kind == "APIService" for kind, _ in found)
    served_by = api_service()["spec"]["service"]
    assert served_by == {"name": "metrics-server", "namespace": "kube-system"}
    for manifest in [*found.values(), api_service()]:
        assert MANAGED.items() <= manifest["metadata"]["labels"].items()


def view(name: str, ready: bool = True) -> NodeView:
    return NodeView(name, ready, "v1.37.2", "10.213.0.30", W0, "2026-12-03T10:00:00Z")


def test_a_join_and_a_leave_are_recorded_once_even_across_a_restart() -> None:
    board = StatusBoard()
    board.nodes_observed("prod", "c1", [view("w0")], {"w0": "abcdef"}, "2026-12-03T10:00:01Z")
    board.nodes_observed("prod", "c1", [view("w0")], {}, "2026-12-03T10:00:31Z")
    recorded = board.take_outbox()
    assert recorded == [ev.NodeJoined("prod", "c1", "w0", "10.213.0.30", "v1.37.2", "abcdef",
                                      "2026-12-03T10:00:01Z")]  # fmt: skip
    restarted = StatusBoard()
    restarted.load(recorded)
    restarted.nodes_observed("prod", "c1", [view("w0", ready=False)], {}, "2026-12-03T10:01:00Z")
    assert restarted.take_outbox() == []  # not Ready is not a new join
    assert restarted.joins[("c1", "w0")].token_id == "abcdef"  # `node list` still knows
    restarted.nodes_observed("prod", "c1", [], {}, "2026-12-03T10:02:00Z")
    assert restarted.take_outbox() == [ev.NodeLeft("prod", "c1", "w0", "2026-12-03T10:02:00Z")]
    assert ("c1", "w0") not in restarted.joins


def test_a_serving_requests_verdict_is_recorded_once() -> None:
    board = StatusBoard()
    approved = ev.ServingCertificateApproved("prod", "c1", "w0", "csr-1", ["w0"])
    assert board.csr_decided(approved) is True
    assert board.csr_decided(approved) is False
    restarted = StatusBoard()
    restarted.load(board.take_outbox())
    assert restarted.csr_decided(approved) is False


def test_removing_a_node_is_recorded_and_deletes_only_the_node_registered_before() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    fleet.run(cmd.RemoveNode(cluster="prod", node="w0"))
    (event,) = [e for e in fleet.log if isinstance(e, ev.NodeRemoved)]
    cluster = fleet.state.clusters["prod"]
    assert cluster.removed_nodes == {"w0": event.requested_at}
    before = NodeView("w0", True, "v1.37.2", "10.213.0.30", W0, "2000-01-01T00:00:00+00:00")
    again = NodeView("w0", True, "v1.37.2", "10.213.0.30", W0, "2999-01-01T00:00:00+00:00")
    other = NodeView("w1", True, "v1.37.2", "10.213.0.31", W0, "2000-01-01T00:00:00+00:00")
    assert removed(cluster, [before, other]) == [before]
    assert removed(cluster, [again]) == []  # joined anew after the removal: it stays


@pytest.mark.parametrize("name", ["W0", "-w0", "w0_", "x" * 254, ""])
def test_a_node_name_that_is_not_a_dns_subdomain_is_refused(name: str) -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod"))
    refused(fleet, cmd.RemoveNode(cluster="prod", node=name), "DNS subdomain")
