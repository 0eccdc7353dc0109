"""What runs on the workers of a managed cluster, rendered from the cluster
(pure): kube-proxy, the pod network (flannel) and CoreDNS, as kubeadm and
flannel's own manifests lay them out, applied by the daemon beside the
bootstrap objects (render/bootstrap.py).

The control plane runs outside the cluster, so what runs on the nodes
reaches the API server at the cluster's ingress, never at the `kubernetes`
Service's address (kube-proxy, which makes that address work, is one of
them).

The pod network: flanneld (vxlan; nftables for its masquerade) gives each
node's pods its slice of the pod CIDR and routes between nodes. flannel's
own CNI plugin is not served by the Go module proxy, so the node's CNI
configuration is what that plugin would hand on: the reference `bridge`
plugin with `host-local` addresses from the node's subnet (flanneld's
subnet.env), then `portmap`, written by a small container beside flanneld.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..model.state import Cluster
from ..pki.x509 import first_certificate, public_key_hash
from . import konnectivity
from .bootstrap import Manifest, cluster_dns, cluster_role_binding, meta

SYSTEM = "kube-system"
FLANNEL_VERSION = "v0.28.10"
COREDNS_VERSION = "v1.15.0"
BUSYBOX = "docker.io/library/busybox:1.35"
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE_CRITICAL = "system-node-critical"
EVERYWHERE = [{"operator": "Exists"}]  # tolerate every taint: a node's own network


def service_account(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, SYSTEM)}


def sa_binding(name: str, role: str, account: str) -> Manifest:
    return cluster_role_binding(
        name, role, [{"kind": "ServiceAccount", "name": account, "namespace": SYSTEM}]
    )


def cluster_role(name: str, rules: list[dict[str, Any]]) -> Manifest:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": meta(name), "rules": rules}  # fmt: skip


def host_path(name: str, path: str, kind: str = "DirectoryOrCreate") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def daemon_set(name: str, spec: dict[str, Any]) -> Manifest:
    labels = {"k8s-app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(name, SYSTEM),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True,
                "priorityClassName": NODE_CRITICAL,
                "tolerations": EVERYWHERE,
                "nodeSelector": {"kubernetes.io/os": "linux"},
                **spec,
            }},
        },
    }  # fmt: skip


def env_field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


# -- kube-proxy -----------------------------------------------------------------------


def kube_proxy(cluster: Cluster, endpoint: str) -> list[Manifest]:
    """kubeadm's addon/proxy, in nftables mode; its kubeconfig points at
    the ingress, with the ServiceAccount's token."""
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {
            "certificate-authority": f"{SA_TOKEN}/ca.crt", "server": endpoint}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default",
                                                     "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": f"{SA_TOKEN}/token"}}],
    }  # fmt: skip
    configuration = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clusterCIDR": cluster.pod_cidr,
        "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
        # 0: leave the machine's conntrack sizing alone (a host setting).
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kube-proxy", SYSTEM),
        "data": {"config.conf": yaml.safe_dump(configuration, sort_keys=False),
                 "kubeconfig.conf": yaml.safe_dump(kubeconfig, sort_keys=False)},
    }  # fmt: skip
    pod = {
        "serviceAccountName": "kube-proxy",
        "containers": [{
            "name": "kube-proxy",
            "image": f"registry.k8s.io/kube-proxy:{cluster.kubernetes_version}",
            "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                        "--hostname-override=$(NODE_NAME)"],
            "env": [env_field("NODE_NAME", "spec.nodeName")],
            "securityContext": {"privileged": True},
            "volumeMounts": [
                {"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"},
                {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
            ],
        }],
        "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                    host_path("lib-modules", "/lib/modules", "")],
    }  # fmt: skip
    return [
        service_account("kube-proxy"),
        sa_binding("kubeadm:node-proxier", "system:node-proxier", "kube-proxy"),
        config_map,
        daemon_set("kube-proxy", pod),
    ]


# -- the pod network ------------------------------------------------------------------

# What flannel's CNI plugin hands the bridge plugin, from flanneld's subnet.env.
CNI_CONFIG_SCRIPT = r"""
set -eu
conf=/etc/cni/net.d/10-oneinfra.conflist
while true; do
  if [ -f /run/flannel/subnet.env ]; then
    . /run/flannel/subnet.env
    eval "$(ipcalc -n "$FLANNEL_SUBNET")"
    prefix=${FLANNEL_SUBNET#*/}
    cat > "$conf.new" <<EOF
{"cniVersion": "1.0.0", "name": "oneinfra", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "mtu": $FLANNEL_MTU,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NETWORK/$prefix"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
    if cmp -s "$conf.new" "$conf"; then rm "$conf.new"; else mv "$conf.new" "$conf"; fi
  fi
  sleep 1  # a node is Ready only once this file is there: look often, it is one stat
done
"""


# The links the pod network makes on a node (the CNI bridge above, flannel's
# VXLAN device): `node reset` removes them, or a node that joins again with
# another pod CIDR finds the bridge with its old address and no pod starts.
NODE_LINKS = ("cni0", "flannel.1")


def ingress_address(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.removeprefix("https://").rpartition(":")
    return host, port


def vpn_interface(cluster: Cluster) -> list[str]:
    """With the VPN: flannel takes the interface that reaches the VPN's
    server (the tunnel, on a worker that joined through it): its address is
    the node's, its MTU the pods'."""
    if cluster.vpn is None:
        return []
    return [f"--iface-can-reach={cluster.vpn.server_address}"]


def network(cluster: Cluster, endpoint: str) -> list[Manifest]:
    """flannel's kube-flannel.yml, in kube-system, its API the ingress."""
    # With the VPN, flannel only hands out nodes' pod CIDRs ("alloc"): the
    # VPN server routes them, each as its node's peer's allowed IPs, so pods
    # at two sites reach each other with no VXLAN inside the tunnel.
    backend = "alloc" if cluster.vpn is not None else "vxlan"
    net_conf = {"Network": cluster.pod_cidr, "EnableNFTables": True,
                "Backend": {"Type": backend}}  # fmt: skip
    host, port = ingress_address(endpoint)
    pod = {
        "serviceAccountName": "flannel",
        "containers": [
            {
                "name": "flanneld",
                "image": f"docker.io/flannel/flannel:{FLANNEL_VERSION}",
                "command": [
                    "/opt/bin/flanneld",
                    "--ip-masq",
                    "--kube-subnet-mgr",
                    *vpn_interface(cluster),
                ],
                "env": [
                    env_field("POD_NAME", "metadata.name"),
                    env_field("POD_NAMESPACE", "metadata.namespace"),
                    {"name": "KUBERNETES_SERVICE_HOST", "value": host},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": port},
                ],
                "securityContext": {"privileged": True},
                "volumeMounts": [
                    {"name": "run", "mountPath": "/run/flannel"},
                    {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                ],
            },
            {
                "name": "cni-config",
                "image": BUSYBOX,
                "command": ["sh", "-c", CNI_CONFIG_SCRIPT],
                "volumeMounts": [
                    {"name": "run", "mountPath": "/run/flannel", "readOnly": True},
                    {"name": "cni", "mountPath": "/etc/cni/net.d"},
                ],
            },
        ],
        "volumes": [
            host_path("run", "/run/flannel"),
            host_path("cni", "/etc/cni/net.d"),
            {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
        ],
    }
    return [
        service_account("flannel"),
        cluster_role(
            "oneinfra:flannel",
            [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
            ],
        ),
        sa_binding("oneinfra:flannel", "oneinfra:flannel", "flannel"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("kube-flannel-cfg", SYSTEM),
            "data": {"net-conf.json": json.dumps(net_conf, indent=2)},
        },
        daemon_set("kube-flannel", pod),
    ]


# -- CoreDNS --------------------------------------------------------------------------


def corefile(domain: str) -> str:
    return f""".:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30
    reload
    loadbalance
}}
"""


DNS_PORTS = [
    {"name": "dns", "port": 53, "protocol": "UDP"},
    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    {"name": "metrics", "port": 9153, "protocol": "TCP"},
]


def coredns_container(host: str, port: str) -> dict[str, Any]:
    return {
        "name": "coredns",
        "image": f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}",
        "args": ["-conf", "/etc/coredns/Corefile"],
        # The API at the ingress: the kubernetes Service needs kube-proxy,
        # and names must resolve before much else works.
        "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": host},
                {"name": "KUBERNETES_SERVICE_PORT", "value": port}],
        "ports": [{"name": p["name"], "containerPort": p["port"], "protocol": p["protocol"]}
                  for p in DNS_PORTS],
        "resources": {"limits": {"memory": "170Mi"},
                      "requests": {"cpu": "100m", "memory": "70Mi"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                          "readOnly": True}],
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                          "initialDelaySeconds": 60, "timeoutSeconds": 5, "failureThreshold": 5},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}},
    }  # fmt: skip


def coredns(cluster: Cluster, endpoint: str) -> list[Manifest]:
    """kubeadm's addon/dns: the Deployment, and the kube-dns Service at the
    tenth address of the service CIDR."""
    labels = {"k8s-app": "kube-dns"}
    apart = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
    spread = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": apart}]}}  # fmt: skip
    pod = {
        "serviceAccountName": "coredns",
        "priorityClassName": "system-cluster-critical",
        "dnsPolicy": "Default",
        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "affinity": spread,
        "containers": [coredns_container(*ingress_address(endpoint))],
        "volumes": [{"name": "config-volume", "configMap": {
            "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("coredns", SYSTEM),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    metadata = meta("kube-dns", SYSTEM)
    metadata["labels"] |= {**labels, "kubernetes.io/name": "CoreDNS"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": labels, "clusterIP": cluster_dns(cluster.service_cidr),
                 "ports": DNS_PORTS},
    }  # fmt: skip
    return [
        service_account("coredns"),
        cluster_role(
            "system:coredns",
            [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        ),
        sa_binding("system:coredns", "system:coredns", "coredns"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("coredns", SYSTEM),
            "data": {"Corefile": corefile(cluster.dns_domain)},
        },
        deployment,
        service,
    ]


# -- the control plane's tunnel into the cluster ------------------------------------


def konnectivity_agent(cluster: Cluster, endpoint: str) -> list[Manifest]:
    """konnectivity's agent on every node's host network (render/konnectivity.py):
    it reaches the kubelet and, through the node's routes, every pod. It
    dials the servers at the ingress's konnectivity port, with a token
    projected for their audience."""
    ingress = cluster.ingress()
    assert ingress is not None
    host, _ = ingress_address(endpoint)
    token = {"name": "token", "projected": {"sources": [{"serviceAccountToken": {
        "path": konnectivity.TOKEN_FILE, "audience": konnectivity.AUDIENCE,
        "expirationSeconds": 3600}}]}}  # fmt: skip
    pod = {
        "serviceAccountName": konnectivity.AGENT,
        "containers": [{
            "name": konnectivity.AGENT,
            "image": konnectivity.AGENT_IMAGE,
            "command": konnectivity.agent_command(
                host.strip("[]"), ingress.ports[konnectivity.INGRESS_PORT], f"{SA_TOKEN}/ca.crt"
            ),
            "env": [env_field("HOST_IP", "status.hostIP")],
            "volumeMounts": [{"name": "token", "mountPath": konnectivity.TOKEN_DIRECTORY,
                              "readOnly": True}],
        }],
        "volumes": [token],
    }  # fmt: skip
    return [service_account(konnectivity.AGENT), daemon_set(konnectivity.AGENT, pod)]


TRUST_ANNOTATION = "oneinfra.io/newest-ca"


def restarted_for_rotation(manifests: list[Manifest], stamp: str | None) -> list[Manifest]:
    """Every workload of these started again when `stamp` changes (the
    newest CA pods are given: see newest_ca_stamp): their clients read the
    CA bundle only as they start, and after complete the old CA alone no
    longer verifies the API server. None (a cluster never rotated): untouched."""
    if stamp is None:
        return manifests
    changed = []
    for manifest in manifests:
        if manifest.get("kind") in ("DaemonSet", "Deployment"):
            template = manifest["spec"]["template"]
            annotations = {**template["metadata"].get("annotations", {}), TRUST_ANNOTATION: stamp}
            metadata = {**template["metadata"], "annotations": annotations}
            spec = {**manifest["spec"], "template": {**template, "metadata": metadata}}
            manifest = {**manifest, "spec": spec}
        changed.append(manifest)
    return changed


def newest_ca_stamp(cluster: Cluster, published: str) -> str | None:
    """What restarts the cluster's workloads: the newest CA of the bundle
    the controller manager publishes (kube-root-ca.crt). It changes once a
    prepared rotation's bundle is out, so that pods started again read it;
    not at complete (the bundle loses the old CA, the newest stays). None
    for a cluster never rotated."""
    if cluster.rotation is None or "-----BEGIN CERTIFICATE-----" not in published:
        return None
    return public_key_hash(first_certificate(published)).removeprefix("sha256:")[:16]


def addons(cluster: Cluster, endpoint: str) -> list[Manifest]:
    tunnel = konnectivity_agent(cluster, endpoint) if konnectivity.tunneled(cluster) else []
    return [*kube_proxy(cluster, endpoint), *network(cluster, endpoint),
            *coredns(cluster, endpoint), *tunnel]  # fmt: skip
