"""The kube-controller-manager of a control-plane replica."""

from __future__ import annotations

from .pods import KUBECONFIGS, PKI, ContainerSpec, Mount

SIGNING_CA = "signing-ca.crt"

KUBECONFIG = f"{KUBECONFIGS}/conf/controller-manager.conf"


def controller_manager_container(
    image: str, service_cidr: str, pod_cidr: str, signing_seconds: int, mounts: list[Mount]
) -> ContainerSpec:
    """Its signer gives kubelets' certificates the cluster's leaf lifetime:
    they rotate at its pace, as the control plane's own are renewed."""
    return ContainerSpec(
        name="kube-controller-manager",
        image=image,
        command=[
            "kube-controller-manager",
            f"--kubeconfig={KUBECONFIG}",
            f"--authentication-kubeconfig={KUBECONFIG}",
            f"--authorization-kubeconfig={KUBECONFIG}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",  # replicas share the host network: no fixed port to collide on
            f"--client-ca-file={PKI}/ca.crt",
            # The CA alone: its signer takes no bundle (ca.crt is one mid-rotation).
            f"--cluster-signing-cert-file={PKI}/{SIGNING_CA}",
            f"--cluster-signing-key-file={PKI}/ca.key",
            f"--cluster-signing-duration={signing_seconds}s",
            f"--root-ca-file={PKI}/ca.crt",
            f"--service-account-private-key-file={PKI}/sa.key",
            f"--service-cluster-ip-range={service_cidr}",
            f"--cluster-cidr={pod_cidr}",
            "--allocate-node-cidrs=true",  # each node its slice of the pod CIDR, for the network
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--leader-elect=true",
        ],
        mounts=mounts,
        after_api=True,
    )
