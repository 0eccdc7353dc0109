"""Rendering, pure: from the desired state (and the PKI its events hold) to
the pods a hypervisor should run. One module per component, as kubeadm's
phases have one builder each: etcd, apiserver, controller_manager,
scheduler (assembled by control_plane), ingress; and the pod's shape, its
files and labels. What runs inside managed clusters (worker join, add-ons)
and the VPN render here too, in rooms of their own.

Imports the model and the PKI only. The names most callers need are here:
"""

from __future__ import annotations

from .control_plane import control_plane
from .etcd import EtcdMembership, RestoreSource
from .ingress import haproxy_config, ingress
from .labels import (
    BACKUP_ROLE,
    LABEL_CLUSTER,
    LABEL_CLUSTER_ID,
    LABEL_COMPONENT,
    LABEL_DIRECTORY,
    LABEL_FILES_HASH,
    LABEL_FLEET,
    LABEL_LIVE_HASH,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    LABEL_SPEC_HASH,
    MANAGED,
    WRITER_ROLE,
    managed,
)
from .pods import (
    DATA_DIR,
    KUBECONFIGS,
    PKI,
    STOP_GRACE,
    ContainerSpec,
    EtcdRestoreSpec,
    File,
    Mount,
    Network,
    PodSpec,
    PortMapping,
    component_directory,
    host,
    host_url,
    in_fleet,
    member_name,
    spec_hash,
)
from .vpn import vpn_server

__all__ = [
    "DATA_DIR",
    "KUBECONFIGS",
    "LABEL_CLUSTER",
    "LABEL_CLUSTER_ID",
    "LABEL_COMPONENT",
    "LABEL_DIRECTORY",
    "LABEL_FILES_HASH",
    "LABEL_FLEET",
    "LABEL_LIVE_HASH",
    "LABEL_MANAGED_BY",
    "LABEL_ROLE",
    "BACKUP_ROLE",
    "LABEL_SPEC_HASH",
    "MANAGED",
    "PKI",
    "STOP_GRACE",
    "WRITER_ROLE",
    "ContainerSpec",
    "EtcdMembership",
    "EtcdRestoreSpec",
    "RestoreSource",
    "File",
    "Mount",
    "Network",
    "PortMapping",
    "PodSpec",
    "component_directory",
    "control_plane",
    "haproxy_config",
    "host",
    "host_url",
    "in_fleet",
    "ingress",
    "managed",
    "member_name",
    "spec_hash",
    "vpn_server",
]
