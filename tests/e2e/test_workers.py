"""Workers joined to a real cluster: local workers (their own network and
mount namespaces, containerd and kubelet) join with `oneinfra node join`
(through `oneinfra local join`); the cluster runs pods on them, reached
every way users reach them; the daemon approves kubelets' serving
certificates only for their own names, and records who joined with which
token."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oneinfra.local import config
from tests.debian import debian_tool
from tests.oneinfra.daemon import Daemon, Samples

from .fleet import (
    KUBECTL,
    create,
    eventually,
    fleet,
    join,
    kubeconfig,
    kubectl,
    local,
    new_token,
    nodes,
)

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: docker.io/library/busybox:1.35
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html &&
                   echo serving && exec httpd -f -v -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@dataclass
class Joined:
    daemon: Daemon
    config: Path  # an admin kubeconfig
    endpoint: str
    ca_hash: str


def head(daemon: Daemon) -> str:
    return str(daemon.cli("audit", "head").stdout.strip())


def own(worker: str, path: str) -> Path:
    return config.WorkerSpec(worker, "").own(path)


@pytest.fixture(scope="module")
def cluster(
    fleet: tuple[Daemon, list[dict[str, Any]]],
    workers: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Joined]:
    daemon, _ = fleet
    create(daemon, "work")
    config_file = kubeconfig(daemon, "work", tmp_path_factory.mktemp("work"))
    endpoint, _, ca_hash = new_token(daemon, "work")
    yield Joined(daemon, config_file, endpoint, ca_hash)
    for worker in workers:
        left = local("leave", worker["name"])
        assert left.returncode == 0, left.stderr


def test_a_bad_join_says_why_in_one_line_and_leaves_nothing_behind(
    cluster: Joined, workers: list[dict[str, Any]]
) -> None:
    daemon = cluster.daemon
    # The shortest TTL a token may have: made first, tried last, once expired.
    expiring = daemon.cli("cluster", "token", "create", "work", "--ttl", "60s").stdout.strip()
    expires = time.monotonic() + 60
    create(daemon, "other")
    _, foreign, _ = new_token(daemon, "other")
    _, revoked, _ = new_token(daemon, "work")
    daemon.cli("cluster", "token", "revoke", "work", revoked.split(".")[0])
    fast = ("--discovery-timeout", "5s")
    cases = [
        (cluster.endpoint, foreign, cluster.ca_hash, "does not know token"),
        (cluster.endpoint, revoked, cluster.ca_hash, "token"),
        (cluster.endpoint, "abcdef.0123", cluster.ca_hash, "looks like abcdef.0123456789abcdef"),
        (
            cluster.endpoint,
            new_token(daemon, "work")[1],
            "sha256:" + "0" * 64,
            "not the one pinned",
        ),
        ("10.213.0.99:30000", foreign, cluster.ca_hash, "cannot reach the cluster"),
    ]
    before = head(daemon)  # the last token is made: from here, nothing is appended
    for endpoint, token, ca_hash, says in cases:
        refused = join("w2", endpoint, token, ca_hash, *fast)
        assert refused.returncode == 1, refused.stdout
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], refused.stderr
        for path in ("/etc/kubernetes", "/var/lib/kubelet"):
            assert list(own("w2", path).iterdir()) == [], (says, path)
    time.sleep(max(0.0, expires - time.monotonic()) + 5)  # "within seconds" of its expiry
    expired = join("w2", cluster.endpoint, expiring, cluster.ca_hash, *fast)
    assert expired.returncode == 1, expired.stdout
    lines = expired.stderr.strip().splitlines()
    assert len(lines) == 1 and "expired, revoked" in lines[0], expired.stderr
    for path in ("/etc/kubernetes", "/var/lib/kubelet"):
        assert list(own("w2", path).iterdir()) == [], ("expired", path)
    assert head(daemon) == before
    assert "w2" not in nodes(cluster.config)
    daemon.cli("cluster", "delete", "other", "--wait", "--timeout", "3m", timeout=240)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples that have these labels."""
    return sum(
        value
        for (found, have), value in samples.items()
        if found == name and set(labels.items()) <= set(have)
    )


def the_metrics_moved_with_the_joins(daemon: Daemon, before: Samples) -> None:
    """Scraped from the daemon that made the cluster: the joined nodes are
    counted Ready once the daemon has seen them, and what the joins caused
    (join tokens, CSR approvals: commands; passes; CRI calls) has moved."""
    after = eventually(
        lambda: (
            (found := daemon.scrape())
            and total(found, "oneinfra_nodes", cluster="work", ready="true") == 3
            and found
        ),
        "three Ready nodes in the metrics",
    )
    assert total(before, "oneinfra_nodes", cluster="work", ready="true") == 0
    assert total(after, "oneinfra_nodes", cluster="work", ready="false") == 0
    assert total(after, "oneinfra_components_not_running", cluster="work") == 0
    assert total(after, "oneinfra_certificate_expiry_seconds", cluster="work") > 300 * 86_400
    assert total(after, "oneinfra_clusters", phase="ready") >= 1
    for name, labels in (
        ("oneinfra_commands_total", {"result": "ok"}),  # three tokens at least
        ("oneinfra_append_seconds_count", {}),
        ("oneinfra_log_position", {}),
        ("oneinfra_reconcile_passes_total", {"result": "ok"}),
        ("oneinfra_reconcile_pass_seconds_count", {}),
        ("oneinfra_cri_calls_total", {"method": "list_containers", "result": "ok"}),
        ("oneinfra_cri_call_seconds_count", {"method": "list_containers"}),
    ):
        assert total(after, name, **labels) >= total(before, name, **labels) + (
            3 if name == "oneinfra_commands_total" else 1
        ), name
    text = httpx.get(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).text
    checked = subprocess.run([debian_tool("promtool", "prometheus"), "check", "metrics"],
                             input=text, capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_three_workers_join_two_with_node_join_one_with_kubeadm_and_serve_pods_every_way(
    cluster: Joined, tmp_path: Path
) -> None:
    daemon, config_file = cluster.daemon, cluster.config
    before = daemon.scrape()
    tokens = {}
    for worker, how in (("w0", ()), ("w1", ()), ("w2", ("--kubeadm",))):
        endpoint, token, ca_hash = new_token(daemon, "work")
        joined = join(worker, endpoint, token, ca_hash, *how)
        assert joined.returncode == 0, joined.stderr
        tokens[worker] = token.split(".")[0]
    everyone = {"w0": True, "w1": True, "w2": True}
    eventually(lambda: nodes(config_file) == everyone, "w0, w1 and w2 Ready")

    # Who joined with which token, in the log and in `node list` (the
    # daemon's view: as of its latest pass, which the Nodes' watch rings).
    listed = eventually(
        lambda: (
            (found := daemon.json("node", "list", "work"))
            and len(found) == 3
            and all(n["ready"] for n in found)
            and found
        ),
        "the three nodes listed, Ready",
    )
    assert {n["name"]: n["tokenId"] for n in listed} == tokens
    the_metrics_moved_with_the_joins(daemon, before)
    assert all(n["version"] == "v1.37.2" for n in listed)
    history = daemon.cli("history", "--cluster", "work").stdout
    for worker, token_id in tokens.items():
        assert re.search(rf'NodeJoined .*token_id="{token_id}" node="{worker}"', history), history

    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    kubectl(config_file, "apply", "-f", str(manifest))
    kubectl(config_file, "rollout", "status", "deploy/web", "--timeout=120s")
    pods = json.loads(kubectl(config_file, "get", "pods", "-l", "app=web", "-o", "json").stdout)
    placed = {p["spec"]["nodeName"]: p for p in pods["items"]}
    assert len(placed) == 3  # one on each worker

    # logs and exec reach the kubelets through the ingress: their serving
    # certificates were approved by the daemon.
    eventually(
        lambda: "serving" in kubectl(config_file, "logs", "deploy/web", check=False).stdout,
        "kubectl logs", seconds=60,
    )  # fmt: skip
    approved = daemon.cli("history", "--cluster", "work").stdout
    assert re.search(r'ServingCertificateApproved .*node="w1".*names=\["w1","10\.213\.0\.31"\]',
                     approved), approved  # fmt: skip

    # Pod to pod across nodes, a Service by ClusterIP and by its DNS name.
    kubectl(config_file, "run", "probe", "--image=docker.io/library/busybox:1.35",
            "--restart=Never", '--overrides={"spec": {"nodeName": "w0"}}', "--",
            "sleep", "3600")  # fmt: skip
    kubectl(config_file, "wait", "--for=condition=Ready", "pod/probe", "--timeout=60s")
    other = placed["w1"]
    service_ip = kubectl(config_file, "get", "svc", "web", "-o",
                         "jsonpath={.spec.clusterIP}").stdout  # fmt: skip

    def fetch(address: str) -> str:
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address}"
        return str(kubectl(config_file, "exec", "probe", "--", "sh", "-c", request,
                           check=False).stdout)  # fmt: skip

    assert other["metadata"]["name"] in fetch(f"{other['status']['podIP']} 8080")
    assert "200 OK" in eventually(lambda: fetch(f"{service_ip} 80"), "the Service's ClusterIP")
    looked_up = kubectl(config_file, "exec", "probe", "--", "nslookup",
                        "web.default.svc.cluster.local").stdout  # fmt: skip
    assert f"Address: {service_ip}" in looked_up, looked_up

    # A NodePort on a worker's address, from outside the cluster.
    node_port = kubectl(config_file, "get", "svc", "web-nodeport", "-o",
                        "jsonpath={.spec.ports[0].nodePort}").stdout  # fmt: skip
    reply = eventually(lambda: http_get(f"http://10.213.0.31:{node_port}/"), "the NodePort")
    assert reply.status_code == 200

    # The API server reaches into the pod network (konnectivity): its proxy
    # to a pod by address, and to a Service's endpoints, as webhooks and
    # aggregated APIs are reached. No route on a hypervisor leads there.
    name = other["metadata"]["name"]
    proxied = eventually(
        lambda: kubectl(config_file, "get", "--raw",
                        f"/api/v1/namespaces/default/pods/{name}:8080/proxy/",
                        check=False).stdout.strip(),
        "the API server's proxy to a pod", seconds=60,
    )  # fmt: skip
    assert proxied == name
    assert not reachable_from_hypervisors(other["status"]["podIP"], 8080)
    via_service = kubectl(config_file, "get", "--raw",
                          "/api/v1/namespaces/default/services/web:80/proxy/").stdout  # fmt: skip
    assert via_service.strip() in {p["metadata"]["name"] for p in pods["items"]}

    # port-forward, through the ingress and the kubelet.
    forward = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(config_file),
         "port-forward", f"pod/{other['metadata']['name']}", ":8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, line
        forwarded = http_get(f"http://127.0.0.1:{port[1]}/")
        assert forwarded is not None and forwarded.text.strip() == other["metadata"]["name"]
    finally:
        forward.terminate()
        forward.wait(10)


def reachable_from_hypervisors(address: str, port: int) -> list[str]:
    """The control-plane hypervisors that could open a connection to
    `address` directly, without the tunnel."""
    attempt = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2)"
    return [
        hv.name
        for hv in config.hypervisors()  # as the e2e fixture brings them up
        if subprocess.run(["ip", "netns", "exec", hv.netns, sys.executable, "-c", attempt],
                          capture_output=True, check=False).returncode == 0
    ]  # fmt: skip


def http_get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def test_what_runs_on_the_workers_comes_back_and_a_restart_changes_nothing(
    cluster: Joined,
) -> None:
    daemon, config_file = cluster.daemon, cluster.config
    everyone = {"w0": True, "w1": True, "w2": True}
    eventually(lambda: nodes(config_file) == everyone, "the workers Ready")
    kubectl(config_file, "-n", "kube-system", "delete", "deployment", "coredns")
    kubectl(config_file, "-n", "kube-system", "delete", "daemonset", "kube-proxy")
    for kind, name in (("deployment", "coredns"), ("daemonset", "kube-proxy")):
        eventually(
            lambda kind=kind, name=name: kubectl(config_file, "-n", "kube-system", "get", kind,
                                                 name, check=False).returncode == 0,
            f"{kind} {name} applied again", seconds=30,  # the fixture's resync is 5 s
        )  # fmt: skip
    kubectl(config_file, "-n", "kube-system", "rollout", "status", "deploy/coredns",
            "--timeout=120s")  # fmt: skip

    before = head(daemon)
    daemon.stop()
    daemon.start()
    time.sleep(12)  # two resyncs of the restarted daemon
    assert head(daemon) == before  # nothing new to record: nothing changed
    assert nodes(config_file) == everyone


WEBHOOK = """
apiVersion: v1
kind: Namespace
metadata: {name: webhook}
---
apiVersion: v1
kind: Secret
metadata: {name: webhook-tls, namespace: webhook}
type: kubernetes.io/tls
data: {"tls.crt": CERT, "tls.key": KEY}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: webhook, namespace: webhook}
spec:
  selector: {matchLabels: {app: webhook}}
  template:
    metadata: {labels: {app: webhook}}
    spec:
      nodeSelector: {kubernetes.io/hostname: NODE}
      containers:
      - name: webhook
        image: registry.k8s.io/e2e-test-images/agnhost:AGNHOST
        args: [webhook, --tls-cert-file=/tls/tls.crt, --tls-private-key-file=/tls/tls.key,
               --port=8443]
        readinessProbe: {httpGet: {path: /readyz, port: 8443, scheme: HTTPS}, periodSeconds: 1}
        volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
      volumes: [{name: tls, secret: {secretName: webhook-tls}}]
---
apiVersion: v1
kind: Service
metadata: {name: webhook, namespace: webhook}
spec:
  selector: {app: webhook}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Namespace
metadata: {name: guarded, labels: {oneinfra-e2e: guarded}}
"""

DENY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: oneinfra-e2e-deny}
webhooks:
- name: deny.oneinfra.test
  clientConfig:
    service: {namespace: webhook, name: webhook, path: /always-deny}
    caBundle: CA
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}]
  namespaceSelector: {matchLabels: {oneinfra-e2e: guarded}}
  sideEffects: None
  admissionReviewVersions: [v1]
  failurePolicy: Fail
  timeoutSeconds: 10
"""


def webhook_certificate(name: str) -> tuple[bytes, bytes, bytes]:
    """A CA, and a serving certificate it signs for `name`: PEM (CA, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e webhook CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_admission_webhook_served_by_a_pod_on_a_worker_is_called(
    cluster: Joined, tmp_path: Path
) -> None:
    config_file = cluster.config
    everyone = {"w0": True, "w1": True, "w2": True}
    eventually(lambda: nodes(config_file) == everyone, "the workers Ready")
    webhook_is_called(config_file, tmp_path, "w1")


def webhook_is_called(config_file: Path, tmp_path: Path, node: str) -> None:
    """An admission webhook served by a pod on `node`, called by the API
    server (through konnectivity) and refusing, and asked nothing elsewhere."""
    ca, cert, key = webhook_certificate("webhook.webhook.svc")
    served = tmp_path / "webhook.yaml"
    served.write_text(WEBHOOK.replace("CERT", b64(cert)).replace("KEY", b64(key))
                      .replace("AGNHOST", config.AGNHOST_TAG).replace("NODE", node))  # fmt: skip
    kubectl(config_file, "apply", "-f", str(served))
    kubectl(config_file, "-n", "webhook", "rollout", "status", "deploy/webhook",
            "--timeout=120s")  # fmt: skip
    deny = tmp_path / "deny.yaml"
    deny.write_text(DENY.replace("CA", b64(ca)))
    kubectl(config_file, "apply", "-f", str(deny))
    try:
        # The API server calls the pod on the node (at its endpoint, through
        # konnectivity), which says no: the webhook's own words come back.
        def refused() -> str | None:
            made = kubectl(config_file, "-n", "guarded", "create", "configmap", "probe",
                           "--from-literal=a=b", check=False)  # fmt: skip
            assert made.returncode != 0, "a configmap got past the webhook"
            return made.stderr if "this webhook denies all requests" in made.stderr else None

        said = eventually(refused, "the webhook called and refusing", seconds=60)
        assert "deny.oneinfra.test" in said, said
        # Elsewhere, nothing is asked of it.
        kubectl(config_file, "-n", "default", "create", "configmap", "unguarded")
    finally:
        kubectl(config_file, "delete", "-f", str(deny), check=False)
        kubectl(config_file, "delete", "-f", str(served), "--wait=false", check=False)
        kubectl(config_file, "-n", "default", "delete", "configmap", "unguarded", check=False)


def test_a_removed_node_is_deleted_and_recorded(cluster: Joined) -> None:
    daemon = cluster.daemon
    eventually(lambda: nodes(cluster.config).get("w1"), "w1 Ready")
    left = local("leave", "w1")  # its kubelet stopped first, as `node reset` would
    assert left.returncode == 0, left.stderr
    daemon.cli("node", "remove", "work", "w1")
    eventually(lambda: "w1" not in nodes(cluster.config), "w1's Node deleted", seconds=60)
    eventually(lambda: "w1" not in {n["name"] for n in daemon.json("node", "list", "work")},
               "w1 gone from node list", seconds=30)  # fmt: skip
    history = daemon.cli("history", "--cluster", "work").stdout
    assert re.search(r'root +NodeRemoved +cluster="work" node="w1"', history), history
    assert re.search(r'NodeLeft +cluster="work" node="w1"', history), history
    unknown = daemon.cli("node", "remove", "work", "nope", check=False)
    assert unknown.returncode == 1 and "has no node 'nope'" in unknown.stderr


def test_a_serving_certificate_for_another_name_is_refused_and_said_why(cluster: Joined) -> None:
    """A kubelet's credentials asking for a name that is not its node's."""
    eventually(lambda: nodes(cluster.config).get("w0"), "w0 Ready")
    pki = own("w0", "/var/lib/kubelet") / "pki"
    # A link to a path inside the worker's mounts: its name, here.
    credentials = pki / Path(os.readlink(pki / "kubelet-client-current.pem")).name
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "system:node:w0")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example"),
                                                    x509.DNSName("w0")]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    name = f"evil-{int(time.time())}"
    admin = json.loads(kubectl(cluster.config, "config", "view", "--raw", "-o", "json").stdout)
    ca = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
    tls = ssl.create_default_context(cadata=ca.decode())
    tls.load_cert_chain(str(credentials))
    with httpx.Client(verify=tls, timeout=10, base_url=f"https://{cluster.endpoint}") as kubelet:
        filed = kubelet.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", json={
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"signerName": "kubernetes.io/kubelet-serving",
                     "usages": ["digital signature", "server auth"],
                     "request": base64.b64encode(
                         request.public_bytes(serialization.Encoding.PEM)).decode()},
        })  # fmt: skip
        assert filed.status_code == 201, filed.text

    def denied() -> str | None:
        csr = json.loads(kubectl(cluster.config, "get", "csr", name, "-o", "json").stdout)
        conditions = csr.get("status", {}).get("conditions") or []
        assert not [c for c in conditions if c["type"] == "Approved"], conditions
        return next((c["message"] for c in conditions if c["type"] == "Denied"), None)

    message = eventually(denied, "the CSR denied", seconds=60)
    assert "evil.example" in message
    history = cluster.daemon.cli("history", "--cluster", "work").stdout
    assert re.search(rf'ServingCertificateRefused .*node="w0" csr="{name}"', history), history


def test_after_a_restore_the_workers_are_ready_and_what_came_after_the_backup_is_gone(
    cluster: Joined,
) -> None:
    daemon = cluster.daemon
    eventually(lambda: nodes(cluster.config).get("w0"), "w0 Ready")
    backup = daemon.json("cluster", "backup", "work", timeout=300)
    kubectl(cluster.config, "-n", "default", "create", "configmap", "after-the-backup")
    restored = daemon.json("cluster", "restore", "work", "--backup", backup["id"],
                           "--wait", "--timeout", "4m", timeout=300)  # fmt: skip
    assert restored["status"]["ready"]
    after = kubectl(cluster.config, "-n", "default", "get", "configmap", "after-the-backup",
                    check=False)  # fmt: skip
    assert after.returncode != 0 and "NotFound" in after.stderr
    # The same PKI: the worker's kubelet goes on, with its credentials, as it was.
    eventually(lambda: nodes(cluster.config).get("w0"), "w0 Ready after the restore", seconds=120)
