"""The decider: (state, command, context) -> events, or a DomainError.

Pure: no I/O, no clock, no randomness but the context's. Every choice it
makes (placement, ports, ids, keys, certificates) goes into the events, so
replay never runs this code again. It never changes the state it reads.

One module per kind of thing decided about: hypervisors, clusters,
kubeconfigs, joins (workers' bootstrap tokens), the VPN, certificates
(renewal), etcd (a lost member replaced), backups.
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import DomainError
from .. import commands as cmd
from ..state import FleetState
from .backups import (
    complete_etcd_restore,
    prune_backups,
    record_backup,
    record_backup_failure,
    restore_cluster,
    schedule_backups,
)
from .certificates import renew_certificates, retire_service_account_key, rotate_ca, set_lifetimes
from .clusters import MAX_REPLICAS, create_cluster, delete_cluster, scale_cluster
from .context import Context, DataKeys, Decision, pki_needed
from .etcd import replace_etcd_member
from .hypervisors import label_hypervisor, register_hypervisor, remove_hypervisor
from .joins import create_join_token, remove_node, revoke_join_token
from .kubeconfigs import MAX_KUBECONFIG_TTL, MIN_KUBECONFIG_TTL, issue_kubeconfig
from .vpn import add_vpn_peer, enable_vpn

__all__ = [
    "MAX_KUBECONFIG_TTL",
    "MAX_REPLICAS",
    "MIN_KUBECONFIG_TTL",
    "Context",
    "DataKeys",
    "Decision",
    "decide",
    "pki_needed",
]

Handler = Callable[[FleetState, cmd.Command, Context], Decision]
HANDLERS: dict[type[cmd.Command], Handler] = {
    cmd.RegisterHypervisor: register_hypervisor,  # type: ignore[dict-item]
    cmd.LabelHypervisor: label_hypervisor,  # type: ignore[dict-item]
    cmd.RemoveHypervisor: remove_hypervisor,  # type: ignore[dict-item]
    cmd.CreateCluster: create_cluster,  # type: ignore[dict-item]
    cmd.ScaleCluster: scale_cluster,  # type: ignore[dict-item]
    cmd.DeleteCluster: delete_cluster,  # type: ignore[dict-item]
    cmd.RenewCertificates: renew_certificates,  # type: ignore[dict-item]
    cmd.SetCertificateLifetimes: set_lifetimes,  # type: ignore[dict-item]
    cmd.RotateCA: rotate_ca,  # type: ignore[dict-item]
    cmd.RetireServiceAccountKey: retire_service_account_key,  # type: ignore[dict-item]
    cmd.ReplaceEtcdMember: replace_etcd_member,  # type: ignore[dict-item]
    cmd.RecordBackup: record_backup,  # type: ignore[dict-item]
    cmd.RecordBackupFailure: record_backup_failure,  # type: ignore[dict-item]
    cmd.PruneBackups: prune_backups,  # type: ignore[dict-item]
    cmd.ScheduleBackups: schedule_backups,  # type: ignore[dict-item]
    cmd.RestoreCluster: restore_cluster,  # type: ignore[dict-item]
    cmd.CompleteEtcdRestore: complete_etcd_restore,  # type: ignore[dict-item]
    cmd.IssueKubeconfig: issue_kubeconfig,  # type: ignore[dict-item]
    cmd.CreateJoinToken: create_join_token,  # type: ignore[dict-item]
    cmd.RevokeJoinToken: revoke_join_token,  # type: ignore[dict-item]
    cmd.RemoveNode: remove_node,  # type: ignore[dict-item]
    cmd.EnableVpn: enable_vpn,  # type: ignore[dict-item]
    cmd.AddVpnPeer: add_vpn_peer,  # type: ignore[dict-item]
}


def decide(state: FleetState, command: cmd.Command, context: Context) -> Decision:
    handler = HANDLERS.get(type(command))
    if handler is None:
        raise DomainError(f"unknown command {type(command).__name__}")
    return handler(state, command, context)
