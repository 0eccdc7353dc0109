"""A control-plane replica: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler in one host-network pod, and the files they read, laid
out as kubeadm lays them out.

Inputs: the cluster and its component (state), where the hypervisors are,
the cluster's PKI and the member's and serving certificates (their events),
how its etcd member joins, and the data key that unseals the keys.
"""

from __future__ import annotations

from ..model import events as ev
from ..model.state import Cluster, Component, Hypervisor
from ..model.versions import release
from ..pki.certlist import ClusterPKI
from ..pki.x509 import first_certificate
from . import konnectivity
from .apiserver import apiserver_container
from .controller_manager import KUBECONFIG as CONTROLLER_MANAGER_CONF
from .controller_manager import SIGNING_CA, controller_manager_container
from .etcd import EtcdMembership, RestoreSource, etcd_container, restore_spec
from .files import cert_and_key, component_kubeconfig, key_file
from .pods import (
    DATA_DIR,
    KUBECONFIGS,
    PKI,
    File,
    Mount,
    PodSpec,
    component_directory,
    host_url,
    member_name,
    pod,
)
from .scheduler import KUBECONFIG as SCHEDULER_CONF
from .scheduler import scheduler_container


def control_plane_files(
    pki: ClusterPKI,
    placed: ev.ComponentPlaced,
    apiserver: ev.ApiServerCertificateIssued,
    local_api: str,
    data_key: bytes,
) -> list[File]:
    assert placed.etcd_server is not None and placed.etcd_peer is not None
    return [
        File("pki/ca.crt", pki.ca.certificate.encode()),
        File(f"pki/{SIGNING_CA}", first_certificate(pki.ca.certificate).encode()),
        key_file("pki/ca.key", pki.ca.key, data_key),  # the controller manager signs with it
        File("pki/etcd/ca.crt", pki.etcd_ca.certificate.encode()),
        File("pki/front-proxy-ca.crt", pki.front_proxy_ca.certificate.encode()),
        File("pki/sa.pub", pki.service_account_public.encode()),
        key_file("pki/sa.key", pki.service_account_key, data_key),
        *cert_and_key("pki/apiserver", apiserver.serving, data_key),
        *cert_and_key("pki/apiserver-kubelet-client", pki.apiserver_kubelet_client, data_key),
        *cert_and_key("pki/apiserver-etcd-client", pki.apiserver_etcd_client, data_key),
        *cert_and_key("pki/front-proxy-client", pki.front_proxy_client, data_key),
        *cert_and_key("pki/etcd/server", placed.etcd_server, data_key),
        *cert_and_key("pki/etcd/peer", placed.etcd_peer, data_key),
        component_kubeconfig(
            relative(CONTROLLER_MANAGER_CONF), "system:kube-controller-manager", local_api,
            pki.ca.certificate, pki.controller_manager, data_key,
        ),
        component_kubeconfig(
            relative(SCHEDULER_CONF), "system:kube-scheduler", local_api, pki.ca.certificate,
            pki.scheduler, data_key,
        ),
    ]  # fmt: skip


def relative(container_path: str) -> str:
    """A kubeconfig's path in the component's directory (conf/ is mounted there)."""
    return container_path.removeprefix(f"{KUBECONFIGS}/")


def etcd_servers(
    cluster: Cluster, component: Component, hypervisors: dict[str, Hypervisor]
) -> list[str]:
    """Its own etcd member first, then the cluster's founding members (voters
    from the start): when its own member dies, the API server goes on
    through the others instead of failing every request until the ingress's
    health check notices. Members added by scaling are left out (a learner
    refuses clients)."""
    return [f"https://127.0.0.1:{component.ports['etcd-client']}"] + [
        host_url(hypervisors[c.hypervisor].ip_address, c.ports["etcd-client"])
        for c in cluster.control_planes()
        if c.founding and c.name != component.name
    ]


def control_plane(
    cluster: Cluster,
    component: Component,
    hypervisors: dict[str, Hypervisor],
    pki: ClusterPKI,
    placed: ev.ComponentPlaced,
    apiserver: ev.ApiServerCertificateIssued,
    membership: EtcdMembership | None,
    data_key: bytes,
    data_dir: str = DATA_DIR,
    restore_from: RestoreSource | None = None,
) -> PodSpec:
    """The replica's pod. Without a membership (a member not yet added to
    its etcd cluster) the pod is blocked. Restoring, its etcd's data is
    rebuilt from the backup before etcd first starts."""
    address = hypervisors[component.hypervisor].ip_address
    ports = component.ports
    version = release(cluster.kubernetes_version)
    directory = component_directory(cluster, component, data_dir)
    local_api = f"https://127.0.0.1:{ports['apiserver']}"
    files = control_plane_files(pki, placed, apiserver, local_api, data_key)
    pki_mount = Mount(PKI, f"{directory}/pki")
    configs = Mount(f"{KUBECONFIGS}/conf", f"{directory}/conf")
    image = "registry.k8s.io/{}:" + version.version
    tunnel = konnectivity.mount(directory) if konnectivity.tunneled(cluster) else None
    etcd_image = f"registry.k8s.io/etcd:{version.etcd_version}-0"
    token = cluster.etcd_token or cluster.cluster_id
    containers = [
        etcd_container(
            etcd_image,
            member_name(cluster, component),
            token,
            address,
            ports,
            directory,
            membership,
            component.etcd_generation,
        ),
        apiserver_container(
            image.format("kube-apiserver"),
            address,
            ports["apiserver"],
            cluster.service_cidr,
            etcd_servers(cluster, component, hypervisors),
            pki_mount,
            tunnel,
        ),
        controller_manager_container(
            image.format("kube-controller-manager"),
            cluster.service_cidr,
            cluster.pod_cidr,
            cluster.leaf_lifetime,
            [pki_mount, configs],
        ),
        scheduler_container(image.format("kube-scheduler"), [configs]),
    ]
    if tunnel is not None:
        containers.append(konnectivity.server_container(
            konnectivity.SERVER_IMAGE, ports, cluster.control_plane_replicas,
            CONTROLLER_MANAGER_CONF, [pki_mount, configs, tunnel],
        ))  # fmt: skip
        files += konnectivity.files()
    blocked = "" if membership else "waiting to be added to etcd as a learner"
    restore = None
    if restore_from is not None and membership is not None:
        restore = restore_spec(
            restore_from, etcd_image, member_name(cluster, component), token,
            host_url(address, ports["etcd-peer"]), membership, component.etcd_generation,
        )  # fmt: skip
    return pod(cluster, component, component.hypervisor, directory, containers, files, blocked,
               restore=restore)  # fmt: skip
