"""Blueprints: the desired pods of each component, as pure data.

From the desired state (and the PKI its events hold) to what a hypervisor
should run: one host-network sandbox per component, its containers with
their commands and mounts, and the files they read, laid out as kubeadm
lays them out. The reconciler compares these with what CRI reports; the spec
hash in the labels tells it when a running pod is out of date.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import msgspec

from . import events as ev
from .pki import kubeconfig as kubeconfig_yaml
from .secrets import unseal
from .state import Cluster, Component, Hypervisor, etcd_member_name
from .versions import release

DATA_DIR = "/var/lib/oneinfra"  # on each hypervisor
PKI = "/etc/kubernetes/pki"  # inside the containers, as kubeadm has it
KUBECONFIGS = "/etc/kubernetes"

LABEL_MANAGED_BY = "oneinfra.io/managed-by"
LABEL_CLUSTER = "oneinfra.io/cluster"
LABEL_CLUSTER_ID = "oneinfra.io/cluster-id"
LABEL_COMPONENT = "oneinfra.io/component"
LABEL_SPEC_HASH = "oneinfra.io/spec-hash"
LABEL_FILES_HASH = "oneinfra.io/files-hash"  # on containers: the files they read
LABEL_DIRECTORY = "oneinfra.io/directory"  # the component's directory, removed with it
LABEL_FLEET = "oneinfra.io/fleet"  # which daemon's: hypervisors may be shared
MANAGED = {LABEL_MANAGED_BY: "oneinfra"}


def managed(fleet: str) -> dict[str, str]:
    """The label selector of one fleet's pods (of any oneinfra's, without a fleet)."""
    return {**MANAGED, LABEL_FLEET: fleet} if fleet else dict(MANAGED)


def in_fleet(pod: PodSpec, fleet: str) -> PodSpec:
    if not fleet:
        return pod
    return msgspec.structs.replace(pod, labels={**pod.labels, LABEL_FLEET: fleet})


class File(msgspec.Struct, frozen=True, gc=False):
    path: str  # relative to the component's directory on the hypervisor
    content: bytes
    mode: int = 0o644


class Mount(msgspec.Struct, frozen=True, gc=False):
    container_path: str
    host_path: str
    readonly: bool = True


class ContainerSpec(msgspec.Struct, frozen=True, gc=False):
    name: str
    image: str
    command: list[str]
    mounts: list[Mount]
    # Appended to the command when the container is created, and not part of
    # the spec hash: what only its first start reads (etcd's initial
    # membership), so that a later change of it replaces nothing.
    startup_args: list[str] = msgspec.field(default_factory=list)
    # Started only once the cluster's API answers: the controller manager and
    # the scheduler need it, and starting them earlier takes CPU from the API
    # server's own start (2 Go binaries instead of 4) and makes them exit.
    after_api: bool = False


class PodSpec(msgspec.Struct, frozen=True, gc=False):
    name: str  # the sandbox's name: cluster id and component
    hypervisor: str
    directory: str  # the component's directory on the hypervisor
    labels: dict[str, str]
    containers: list[ContainerSpec]
    files: list[File]
    # Why the pod may not be created yet (an etcd member not admitted to its
    # cluster); a pod that runs already is kept.
    blocked: str = ""
    # Derived, on creation: container name -> the hash of the files it reads.
    # Every pass compares them with the running containers' (pods are cached).
    files_hashes: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        hashes = {c.name: files_digest(self.files_of(c)) for c in self.containers}
        msgspec.structs.force_setattr(self, "files_hashes", hashes)

    def files_of(self, container: ContainerSpec) -> list[File]:
        """The files a container reads: those under its mounts."""
        roots = [m.host_path.rstrip("/") + "/" for m in container.mounts]
        return [
            f for f in self.files if any(f"{self.directory}/{f.path}".startswith(r) for r in roots)
        ]

    def files_hash(self, container: ContainerSpec) -> str:
        """Changes when a file the container reads changes: it is then
        restarted with the new files, and the others are left running."""
        found = self.files_hashes.get(container.name)
        return found if found is not None else files_digest(self.files_of(container))


def files_digest(files: list[File]) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(files)).hexdigest()[:16]


@dataclass(frozen=True)
class EtcdMembership:
    """Who the etcd cluster is when this member starts, and how it joins:
    'new' for the members a cluster is created with, 'existing' for one added
    later (as a learner, by the reconciler, before it starts)."""

    members: dict[str, str]  # member name -> peer URL
    state: Literal["new", "existing"]

    def startup_args(self) -> list[str]:
        return [
            "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in sorted(self.members.items())),
            f"--initial-cluster-state={self.state}",
        ]


def component_directory(cluster: Cluster, component: Component, data_dir: str = DATA_DIR) -> str:
    return f"{data_dir}/clusters/{cluster.cluster_id}/{component.name}"


def member_name(cluster: Cluster, component: Component) -> str:
    return etcd_member_name(cluster.name, component.name)


def host_url(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"


def spec_hash(containers: list[ContainerSpec]) -> str:
    """Changes when what the pod runs changes (images, commands, mounts): the
    pod is then replaced. Files have their own hash, per container."""
    hashed = [msgspec.structs.replace(c, startup_args=[]) for c in containers]
    digest = hashlib.sha256(msgspec.msgpack.encode(hashed))
    return digest.hexdigest()[:16]


def labels_for(
    cluster: Cluster, component: Component, digest: str, directory: str
) -> dict[str, str]:
    return {
        **MANAGED,
        LABEL_CLUSTER: cluster.name,
        LABEL_CLUSTER_ID: cluster.cluster_id,
        LABEL_COMPONENT: component.name,
        LABEL_SPEC_HASH: digest,
        LABEL_DIRECTORY: directory,
    }


def pod(
    cluster: Cluster,
    component: Component,
    hypervisor: str,
    directory: str,
    containers: list[ContainerSpec],
    files: list[File],
    blocked: str = "",
) -> PodSpec:
    return PodSpec(
        name=f"{cluster.cluster_id}-{component.name}",
        hypervisor=hypervisor,
        directory=directory,
        labels=labels_for(cluster, component, spec_hash(containers), directory),
        containers=containers,
        files=files,
        blocked=blocked,
    )


def key_file(path: str, sealed: ev.SealedKey, data_key: bytes) -> File:
    return File(path, unseal(sealed, data_key), 0o600)


def cert_and_key(path: str, pair: ev.KeyPair, data_key: bytes) -> list[File]:
    return [
        File(f"{path}.crt", pair.certificate.encode()),
        key_file(f"{path}.key", pair.key, data_key),
    ]


def kubeconfig(user: str, server: str, ca: str, pair: ev.KeyPair, data_key: bytes) -> bytes:
    key = unseal(pair.key, data_key).decode()
    return kubeconfig_yaml("local", server, ca, user, pair.certificate, key).encode()


def control_plane(
    cluster: Cluster,
    component: Component,
    hypervisors: dict[str, Hypervisor],
    pki: ev.ClusterPKI,
    placed: ev.ComponentPlaced,
    apiserver: ev.ApiServerCertificateIssued,
    membership: EtcdMembership | None,
    data_key: bytes,
    data_dir: str = DATA_DIR,
) -> PodSpec:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler of one
    replica, sharing the host network of its hypervisor. Without a membership
    (a member not yet added to its etcd cluster) the pod is blocked."""
    assert placed.etcd_server is not None and placed.etcd_peer is not None
    address = hypervisors[component.hypervisor].ip_address
    ports = component.ports
    version = release(cluster.kubernetes_version)
    directory = component_directory(cluster, component, data_dir)
    local_api = f"https://127.0.0.1:{ports['apiserver']}"
    files = [
        File("pki/ca.crt", pki.ca.certificate.encode()),
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
        File(
            "conf/controller-manager.conf",
            kubeconfig(
                "system:kube-controller-manager",
                local_api,
                pki.ca.certificate,
                pki.controller_manager,
                data_key,
            ),
            0o600,
        ),
        File(
            "conf/scheduler.conf",
            kubeconfig(
                "system:kube-scheduler", local_api, pki.ca.certificate, pki.scheduler, data_key
            ),
            0o600,
        ),
    ]
    pki_mount = Mount(PKI, f"{directory}/pki")
    configs = Mount(f"{KUBECONFIGS}/conf", f"{directory}/conf")
    member = member_name(cluster, component)
    etcd = ContainerSpec(
        name="etcd",
        image=f"registry.k8s.io/etcd:{version.etcd_version}-0",
        command=[
            "etcd",
            f"--name={member}",
            "--data-dir=/var/lib/etcd",
            f"--listen-client-urls=https://127.0.0.1:{ports['etcd-client']},"
            f"{host_url(address, ports['etcd-client'])}",
            f"--advertise-client-urls={host_url(address, ports['etcd-client'])}",
            f"--listen-peer-urls={host_url(address, ports['etcd-peer'])}",
            f"--initial-advertise-peer-urls={host_url(address, ports['etcd-peer'])}",
            f"--initial-cluster-token={cluster.cluster_id}",
            f"--cert-file={PKI}/etcd/server.crt",
            f"--key-file={PKI}/etcd/server.key",
            f"--trusted-ca-file={PKI}/etcd/ca.crt",
            "--client-cert-auth=true",
            f"--peer-cert-file={PKI}/etcd/peer.crt",
            f"--peer-key-file={PKI}/etcd/peer.key",
            f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
            "--peer-client-cert-auth=true",
        ],
        # Only its own certificates: a new API server certificate (scaling)
        # must not restart etcd.
        mounts=[
            Mount(f"{PKI}/etcd", f"{directory}/pki/etcd"),
            Mount("/var/lib/etcd", f"{directory}/etcd", readonly=False),
        ],
        startup_args=membership.startup_args() if membership else [],
    )
    # Its own etcd member first, then the cluster's founding members (voters
    # from the start): when its own member dies, it goes on through the others
    # instead of failing every request until the ingress's health check
    # notices. Members added by scaling are left out (a learner refuses
    # clients). A startup argument: the list changes only with a scale, which
    # restarts the API server anyway (its certificate is reissued).
    etcd_servers = [f"https://127.0.0.1:{ports['etcd-client']}"] + [
        host_url(hypervisors[c.hypervisor].ip_address, c.ports["etcd-client"])
        for c in cluster.control_planes()
        if c.founding and c.name != component.name
    ]
    apiserver_container = ContainerSpec(
        name="kube-apiserver",
        image=f"registry.k8s.io/kube-apiserver:{version.version}",
        command=[
            "kube-apiserver",
            f"--advertise-address={address}",
            f"--secure-port={ports['apiserver']}",
            f"--etcd-cafile={PKI}/etcd/ca.crt",
            f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
            f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
            f"--tls-cert-file={PKI}/apiserver.crt",
            f"--tls-private-key-file={PKI}/apiserver.key",
            f"--client-ca-file={PKI}/ca.crt",
            f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
            f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
            f"--proxy-client-key-file={PKI}/front-proxy-client.key",
            f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--service-account-key-file={PKI}/sa.pub",
            f"--service-account-signing-key-file={PKI}/sa.key",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={cluster.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
        ],
        mounts=[pki_mount],
        startup_args=[f"--etcd-servers={','.join(etcd_servers)}"],
    )
    controller_manager = ContainerSpec(
        name="kube-controller-manager",
        image=f"registry.k8s.io/kube-controller-manager:{version.version}",
        command=[
            "kube-controller-manager",
            f"--kubeconfig={KUBECONFIGS}/conf/controller-manager.conf",
            f"--authentication-kubeconfig={KUBECONFIGS}/conf/controller-manager.conf",
            f"--authorization-kubeconfig={KUBECONFIGS}/conf/controller-manager.conf",
            "--bind-address=127.0.0.1",
            "--secure-port=0",  # replicas share the host network: no fixed port to collide on
            f"--client-ca-file={PKI}/ca.crt",
            f"--cluster-signing-cert-file={PKI}/ca.crt",
            f"--cluster-signing-key-file={PKI}/ca.key",
            f"--root-ca-file={PKI}/ca.crt",
            f"--service-account-private-key-file={PKI}/sa.key",
            f"--service-cluster-ip-range={cluster.service_cidr}",
            f"--cluster-cidr={cluster.pod_cidr}",
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--leader-elect=true",
        ],
        mounts=[pki_mount, configs],
        after_api=True,
    )
    scheduler = ContainerSpec(
        name="kube-scheduler",
        image=f"registry.k8s.io/kube-scheduler:{version.version}",
        command=[
            "kube-scheduler",
            f"--kubeconfig={KUBECONFIGS}/conf/scheduler.conf",
            f"--authentication-kubeconfig={KUBECONFIGS}/conf/scheduler.conf",
            f"--authorization-kubeconfig={KUBECONFIGS}/conf/scheduler.conf",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=true",
        ],
        mounts=[configs],
        after_api=True,
    )
    containers = [etcd, apiserver_container, controller_manager, scheduler]
    blocked = "" if membership else "waiting to be added to etcd as a learner"
    return pod(cluster, component, component.hypervisor, directory, containers, files, blocked)


def haproxy_config(
    cluster: Cluster, ingress: Component, hypervisors: dict[str, Hypervisor]
) -> bytes:
    """TCP passthrough to every API server, with TLS-level health checks."""
    backends = [
        f"    server {c.name} {host(hypervisors[c.hypervisor].ip_address)}:{c.ports['apiserver']}"
        " check check-ssl verify none"
        for c in cluster.control_planes()
    ]
    return "\n".join(
        [
            "global",
            "    maxconn 4096",
            "defaults",
            "    mode tcp",
            # A connection refused by an API server that just died is retried
            # on another one; health checks notice it within two seconds.
            "    retries 3",
            "    option redispatch",
            # A server down is looked at often, so that it serves soon after it is ready.
            "    default-server inter 1s downinter 200ms fall 2 rise 1",
            "    timeout connect 5s",
            "    timeout client 1h",
            "    timeout server 1h",
            "frontend apiserver",
            f"    bind :{ingress.ports['apiserver']}",
            "    default_backend apiservers",
            "backend apiservers",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            "    balance roundrobin",
            *backends,
            "",
        ]
    ).encode()


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def ingress(
    cluster: Cluster,
    component: Component,
    hypervisors: dict[str, Hypervisor],
    data_dir: str = DATA_DIR,
    haproxy_image: str = "docker.io/library/haproxy:2.6",
) -> PodSpec:
    directory = component_directory(cluster, component, data_dir)
    files = [File("haproxy.cfg", haproxy_config(cluster, component, hypervisors))]
    container = ContainerSpec(
        name="haproxy",
        image=haproxy_image,
        command=["/usr/sbin/haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
        mounts=[Mount("/usr/local/etc/haproxy", directory)],
    )
    return pod(cluster, component, component.hypervisor, directory, [container], files)
