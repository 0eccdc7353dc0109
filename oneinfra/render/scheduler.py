"""The kube-scheduler of a control-plane replica."""

from __future__ import annotations

from .pods import KUBECONFIGS, ContainerSpec, Mount

KUBECONFIG = f"{KUBECONFIGS}/conf/scheduler.conf"


def scheduler_container(image: str, mounts: list[Mount]) -> ContainerSpec:
    return ContainerSpec(
        name="kube-scheduler",
        image=image,
        command=[
            "kube-scheduler",
            f"--kubeconfig={KUBECONFIG}",
            f"--authentication-kubeconfig={KUBECONFIG}",
            f"--authorization-kubeconfig={KUBECONFIG}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=true",
        ],
        mounts=mounts,
        after_api=True,
    )
