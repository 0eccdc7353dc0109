"""The kubelet's files and command line on a joining worker: pure, from the
cluster's `kubelet-config` and this machine's settings.

The cluster's configuration (authentication, DNS, certificate rotation) is
kept; what belongs to the machine (where files go, the cgroup driver, the
CRI socket) is set over it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import JoinError

KUBELET_API = "kubelet.config.k8s.io/v1beta1"


@dataclass(frozen=True)
class NodeSettings:
    node_name: str
    node_ip: str | None
    cri_socket: str  # unix:///...
    config_dir: Path  # kubeadm's /etc/kubernetes
    root_dir: Path  # the kubelet's /var/lib/kubelet
    pod_logs_dir: Path
    cgroup_driver: str  # "systemd" | "cgroupfs"
    cgroup_v1: bool
    cgroup_root: str | None = None  # several kubelets on one machine need one each

    @property
    def ca_file(self) -> Path:
        return self.config_dir / "pki" / "ca.crt"

    @property
    def bootstrap_kubeconfig(self) -> Path:
        return self.config_dir / "bootstrap-kubelet.conf"

    @property
    def kubeconfig(self) -> Path:
        """Written by the kubelet itself once its client CSR is approved."""
        return self.config_dir / "kubelet.conf"

    @property
    def config_file(self) -> Path:
        return self.root_dir / "config.yaml"

    @property
    def cert_dir(self) -> Path:
        return self.root_dir / "pki"


def kubelet_configuration(cluster_config: str, settings: NodeSettings) -> str:
    """The cluster's KubeletConfiguration with this machine's settings over it."""
    try:
        config: Any = yaml.safe_load(cluster_config)
    except yaml.YAMLError as error:
        raise JoinError(f"the cluster's kubelet-config is not YAML: {error}") from None
    if not isinstance(config, dict) or config.get("kind") != "KubeletConfiguration":
        raise JoinError("the cluster's kubelet-config holds no KubeletConfiguration")
    config = {**config, "apiVersion": KUBELET_API}
    authentication = dict(config.get("authentication") or {})
    authentication["x509"] = {"clientCAFile": str(settings.ca_file)}
    config["authentication"] = authentication
    config["cgroupDriver"] = settings.cgroup_driver
    config["containerRuntimeEndpoint"] = settings.cri_socket
    config["podLogsDir"] = str(settings.pod_logs_dir)
    config["rotateCertificates"] = True
    if settings.cgroup_v1:
        config["failCgroupV1"] = False  # kubelet 1.35 and later refuse v1 unless told
    if settings.cgroup_root is not None:
        config["cgroupRoot"] = settings.cgroup_root
    return yaml.safe_dump(config, sort_keys=False)


def bootstrap_kubeconfig(server: str, ca_file: Path, token: str) -> str:
    """What the kubelet files its first CSR with (kubeadm's bootstrap-kubelet.conf)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "cluster", "cluster": {"server": server,
                                                "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token}}],
            "contexts": [
                {"name": "tls-bootstrap",
                 "context": {"cluster": "cluster", "user": "tls-bootstrap-token-user"}}
            ],
            "current-context": "tls-bootstrap",
        },
        sort_keys=False,
    )  # fmt: skip


def kubelet_command(kubelet: Path, settings: NodeSettings) -> list[str]:
    command = [
        str(kubelet),
        f"--bootstrap-kubeconfig={settings.bootstrap_kubeconfig}",
        f"--kubeconfig={settings.kubeconfig}",
        f"--config={settings.config_file}",
        f"--root-dir={settings.root_dir}",
        f"--cert-dir={settings.cert_dir}",
        f"--hostname-override={settings.node_name}",
    ]
    if settings.node_ip is not None:
        command.append(f"--node-ip={settings.node_ip}")
    return command


UNIT_NAME = "oneinfra-kubelet.service"


def systemd_unit(command: list[str], after: str | None = None) -> str:
    wants = " ".join(["network-online.target", "containerd.service", *([after] if after else [])])
    return (
        "[Unit]\n"
        "Description=kubelet, joined to its cluster by oneinfra node join\n"
        f"Wants={wants}\n"
        f"After={wants}\n\n"
        "[Service]\n"
        f"ExecStart={shlex.join(command)}\n"
        "Restart=always\n"
        "RestartSec=5\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def vpn_unit(script: Path, interface: str) -> str:
    """The tunnel, brought up at boot before the kubelet, down when stopped."""
    return (
        "[Unit]\n"
        "Description=this worker's end of its cluster's VPN (oneinfra node join)\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/bin/sh {shlex.quote(str(script))}\n"
        f"ExecStop=/bin/sh -c 'ip link del {interface}'\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
