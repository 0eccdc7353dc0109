"""The resource metrics API (`kubectl top`, the HorizontalPodAutoscaler):
metrics-server in every managed cluster, as its own manifests lay it out
(pure).

It runs as a pod on a worker and scrapes every kubelet at its InternalIP,
which in a cluster with a VPN is the node's VPN address (node/join.py), so
workers behind NAT are scraped through the tunnel. It checks the kubelets'
serving certificates against the cluster CA (they are issued from it:
serverTLSBootstrap, approved by the daemon), rather than skipping the check
as upstream's sample does. The API server reaches it as an aggregated API,
through konnectivity like every connection into the cluster.

The APIService is separate: registered while no node can run the server,
it would make every discovery in the cluster fail on metrics.k8s.io (the
namespace controller stops finalizing, kubectl warns on every call), so
the daemon registers it once a node is Ready (reconcile/in_cluster.py).
Once registered it stays: a cluster whose workers have all left reports
the metrics API unavailable, as any cluster with metrics-server would.
"""

from __future__ import annotations

from typing import Any

from .addons import SA_TOKEN, SYSTEM, cluster_role, ingress_address, sa_binding, service_account
from .bootstrap import Manifest, meta

VERSION = "v0.8.0"
IMAGE = f"registry.k8s.io/metrics-server/metrics-server:{VERSION}"
NAME = "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
PORT = 10250  # in its own pod's network: upstream's choice
LABELS = {"k8s-app": NAME}
READ = ["get", "list", "watch"]


def arguments() -> list[str]:
    return [
        "--cert-dir=/tmp",  # its self-signed serving certificate: the APIService skips the check
        f"--secure-port={PORT}",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        f"--kubelet-certificate-authority={SA_TOKEN}/ca.crt",
        "--metric-resolution=15s",
    ]


def container(endpoint: str) -> dict[str, Any]:
    host, port = ingress_address(endpoint)
    https = {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    return {
        "name": NAME,
        "image": IMAGE,
        "args": arguments(),
        # The API at the ingress, as CoreDNS has it: the kubernetes Service's
        # endpoints are the API servers' hypervisor addresses.
        "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": host.strip("[]")},
                {"name": "KUBERNETES_SERVICE_PORT", "value": port}],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        "readinessProbe": {"httpGet": https, "periodSeconds": 10, "failureThreshold": 3,
                           "initialDelaySeconds": 20},
        "livenessProbe": {"httpGet": https | {"path": "/livez"}, "periodSeconds": 10,
                          "failureThreshold": 3},
        "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "runAsUser": 1000, "allowPrivilegeEscalation": False,
                            "seccompProfile": {"type": "RuntimeDefault"},
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp-dir", "mountPath": "/tmp"}],
    }  # fmt: skip


def deployment(endpoint: str) -> Manifest:
    pod = {
        "serviceAccountName": NAME,
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [container(endpoint)],
        "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(NAME, SYSTEM),
        "spec": {
            "selector": {"matchLabels": LABELS},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
            "template": {"metadata": {"labels": LABELS}, "spec": pod},
        },
    }


def rbac() -> list[Manifest]:
    """Who reads the metrics (view, edit and admin, by aggregation), and
    what the server itself may do: read nodes and pods and the kubelets'
    metrics, check the callers the API server vouches for."""
    reader = cluster_role(
        "system:aggregated-metrics-reader",
        [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": READ}],
    )
    aggregated = ("view", "edit", "admin")
    reader["metadata"]["labels"] |= {
        f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in aggregated
    }
    authentication_reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(f"{NAME}-auth-reader", SYSTEM),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "extension-apiserver-authentication-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": SYSTEM}],
    }  # fmt: skip
    return [
        service_account(NAME),
        reader,
        cluster_role(
            f"system:{NAME}",
            [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": READ},
            ],
        ),
        sa_binding(f"system:{NAME}", f"system:{NAME}", NAME),
        sa_binding(f"{NAME}:system:auth-delegator", "system:auth-delegator", NAME),
        authentication_reader,
    ]


def service() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(NAME, SYSTEM),
        "spec": {"selector": LABELS, "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                "targetPort": "https", "appProtocol": "https"}]},
    }  # fmt: skip


def metrics_server(endpoint: str) -> list[Manifest]:
    """Everything but the APIService."""
    return [*rbac(), service(), deployment(endpoint)]


def api_service() -> Manifest:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": meta(API_SERVICE),
        "spec": {
            "service": {"name": NAME, "namespace": SYSTEM},
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
