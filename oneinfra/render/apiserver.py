"""The kube-apiserver of a control-plane replica (kubeadm's
phases/controlplane, its command builder)."""

from __future__ import annotations

from . import ingress, konnectivity
from .pods import PKI, ContainerSpec, Mount

# Told to stop, an API server fails /readyz at once and serves on this long:
# the ingress has taken it out of rotation by then, so that nothing new
# comes to it, and what it was serving finishes.
SHUTDOWN_DELAY = ingress.DROPPED_WITHIN + 2  # seconds
STOP_GRACE = SHUTDOWN_DELAY + 10  # then it drains its requests and exits
# It serves a new serving certificate as soon as it is written (it watches
# the files): a scale, which reissues it for the new replicas' addresses,
# restarts no API server. In the pod's directory.
SERVING_FILES = ["pki/apiserver.crt", "pki/apiserver.key"]


def apiserver_container(
    image: str,
    address: str,
    port: int,
    service_cidr: str,
    etcd_servers: list[str],
    pki_mount: Mount,
    tunnel: Mount | None = None,
) -> ContainerSpec:
    """`etcd_servers`: its own member first, then the others it may fall
    back on. `tunnel`: konnectivity's directory, when what goes into the
    cluster goes through it (render/konnectivity.py)."""
    egress = [f"--egress-selector-config-file={konnectivity.EGRESS_CONFIG}"] if tunnel else []
    return ContainerSpec(
        name="kube-apiserver",
        image=image,
        command=[
            "kube-apiserver",
            f"--advertise-address={address}",
            f"--secure-port={port}",
            f"--etcd-cafile={PKI}/etcd/ca.crt",
            f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
            f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
            f"--tls-cert-file={PKI}/apiserver.crt",
            f"--tls-private-key-file={PKI}/apiserver.key",
            f"--client-ca-file={PKI}/ca.crt",
            f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
            # Kubelets serve with certificates of the cluster CA (serverTLSBootstrap;
            # the daemon approves only a node's own names): the API server checks them.
            f"--kubelet-certificate-authority={PKI}/ca.crt",
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
            f"--service-cluster-ip-range={service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--enable-bootstrap-token-auth=true",  # `kubeadm join` and `oneinfra node join`
            # Kubelets are reached by address: a worker's hostname need not
            # resolve where the control plane runs.
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            # No kube-proxy runs beside the API server: it calls webhooks and
            # aggregated APIs at their endpoints, not at Service IPs.
            "--enable-aggregator-routing=true",
            f"--shutdown-delay-duration={SHUTDOWN_DELAY}s",
            *egress,
        ],
        mounts=[pki_mount, *([tunnel] if tunnel else [])],
        # A startup argument: the list changes only with a scale, which
        # restarts the API server anyway (its certificate is reissued).
        startup_args=[f"--etcd-servers={','.join(etcd_servers)}"],
        stop_grace=STOP_GRACE,
        live_files=SERVING_FILES,
    )
