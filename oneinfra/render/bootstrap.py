"""What must exist inside a managed cluster for workers to join it, as
kubeadm lays it out, so that a stock `kubeadm join` works: pure, from the
desired state. The daemon applies it (server-side apply, field manager
`oneinfra`) and re-applies it, level-triggered (reconcile/in_cluster.py).

- a bootstrap-token Secret per live join token (kube-system);
- the `cluster-info` ConfigMap (kube-public): the CA and the endpoint, which
  the controller manager's bootstrapsigner signs with each token;
- kubeadm's RBAC: bootstrappers may create CSRs and get them approved,
  nodes may renew theirs, and both may read what `kubeadm join` reads;
- the `kubeadm-config` and `kubelet-config` ConfigMaps (kube-system).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from ..model.state import Cluster
from .labels import MANAGED

Manifest = dict[str, Any]
BOOTSTRAPPERS = "system:bootstrappers:kubeadm:default-node-token"
NODES = "system:nodes"
TOKEN_TYPE = "bootstrap.kubernetes.io/token"
KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"


@dataclass(frozen=True)
class LiveToken:
    token_id: str
    secret: str
    expires_at: str  # RFC 3339
    description: str
    groups: list[str]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(MANAGED)}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def token_secret(token: LiveToken) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(f"bootstrap-token-{token.token_id}", "kube-system"),
        "type": TOKEN_TYPE,
        "data": {
            "token-id": b64(token.token_id),
            "token-secret": b64(token.secret),
            "expiration": b64(token.expires_at),
            "usage-bootstrap-authentication": b64("true"),
            "usage-bootstrap-signing": b64("true"),
            "auth-extra-groups": b64(",".join(token.groups)),
            "description": b64(token.description or "made by oneinfra"),
        },
    }


def cluster_info(endpoint: str, ca_pem: str) -> Manifest:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "", "cluster": {"certificate-authority-data": b64(ca_pem), "server": endpoint}}
        ],
        "contexts": [],
        "current-context": "",
        "preferences": {},
        "users": [],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("cluster-info", "kube-public"),
        "data": {"kubeconfig": yaml.safe_dump(kubeconfig, sort_keys=False)},
    }


def subjects(*groups: str, user: str | None = None) -> list[dict[str, str]]:
    found = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups]
    if user is not None:
        found.append({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user})
    return found


def cluster_role_binding(name: str, role: str, who: list[dict[str, str]]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": who,
    }


def reader(namespace: str, name: str, configmap: str, who: list[dict[str, str]]) -> list[Manifest]:
    """A Role that may get one ConfigMap, and its binding."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(name, namespace),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get"],
                    "resourceNames": [configmap],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": who,
        },
    ]


def rbac() -> list[Manifest]:
    """kubeadm's bootstrap RBAC (phases/bootstraptoken/node, clusterinfo)."""
    joining = subjects(BOOTSTRAPPERS, NODES)
    return [
        cluster_role_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper",
                             subjects(BOOTSTRAPPERS)),
        cluster_role_binding("kubeadm:node-autoapprove-bootstrap",
                             "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                             subjects(BOOTSTRAPPERS)),
        cluster_role_binding("kubeadm:node-autoapprove-certificate-rotation",
                             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                             subjects(NODES)),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta("kubeadm:get-nodes"),
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        },
        cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes", subjects(BOOTSTRAPPERS)),
        *reader("kube-public", "kubeadm:bootstrap-signer-clusterinfo", "cluster-info",
                subjects(user="system:anonymous")),
        *reader("kube-system", "kubeadm:nodes-kubeadm-config", "kubeadm-config", joining),
        *reader("kube-system", "kubeadm:kubelet-config", "kubelet-config", joining),
    ]  # fmt: skip


def cluster_dns(service_cidr: str) -> str:
    """kubeadm's DNS service address: the tenth of the service CIDR."""
    return str(ipaddress.ip_network(service_cidr)[10])


def kubeadm_config(cluster: Cluster, endpoint: str) -> Manifest:
    configuration = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": cluster.name,
        "kubernetesVersion": cluster.kubernetes_version,
        "controlPlaneEndpoint": endpoint.removeprefix("https://"),
        "certificatesDir": "/etc/kubernetes/pki",
        "networking": {
            "serviceSubnet": cluster.service_cidr,
            "podSubnet": cluster.pod_cidr,
            "dnsDomain": cluster.dns_domain,
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("kubeadm-config", "kube-system"),
        "data": {"ClusterConfiguration": yaml.safe_dump(configuration, sort_keys=False)},
    }


def kubelet_config(cluster: Cluster) -> Manifest:
    configuration = {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [cluster_dns(cluster.service_cidr)],
        "clusterDomain": cluster.dns_domain,
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("kubelet-config", "kube-system"),
        "data": {"kubelet": yaml.safe_dump(configuration, sort_keys=False)},
    }


VPN_INFO = "oneinfra-vpn"  # kube-public: what a joining worker needs of the VPN
VPN_PEER_SIGNER = "oneinfra.io/vpn-peer"  # a worker's CSR for its peer: key in, address out
VPN_PUBLIC_KEY_ANNOTATION = "vpn.oneinfra.io/public-key"


def vpn_info(cluster: Cluster, vpn_endpoint: str) -> list[Manifest]:
    """The VPN's server (its public key, its endpoint, its address) and how
    a worker asks for a peer, readable by those who join and by nodes."""
    vpn = cluster.vpn
    if vpn is None:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(VPN_INFO, "kube-public"),
            "data": {
                "endpoint": vpn_endpoint,
                "serverPublicKey": vpn.server_public_key,
                "serverAddress": vpn.server_address,
                "network": vpn.cidr,
                "podNetwork": cluster.pod_cidr,  # routed through the tunnel
                "peerSigner": VPN_PEER_SIGNER,
                "publicKeyAnnotation": VPN_PUBLIC_KEY_ANNOTATION,
            },
        },
        *reader("kube-public", "oneinfra:vpn-info", VPN_INFO, subjects(BOOTSTRAPPERS, NODES)),
    ]


def bootstrap_objects(
    cluster: Cluster,
    endpoint: str,
    ca_pem: str,
    tokens: list[LiveToken],
    vpn_endpoint: str | None = None,
) -> list[Manifest]:
    """Everything, in the order it is applied (what reads comes after what is read)."""
    return [
        cluster_info(endpoint, ca_pem),
        kubeadm_config(cluster, endpoint),
        kubelet_config(cluster),
        *rbac(),
        *(vpn_info(cluster, vpn_endpoint) if vpn_endpoint else []),
        *(token_secret(t) for t in sorted(tokens, key=lambda t: t.token_id)),
    ]
