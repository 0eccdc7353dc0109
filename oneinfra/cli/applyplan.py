"""What `apply -f` sends for each object: the API's requests that bring the
fleet from what it holds (the daemon's view of the object, or None) to what
the manifest asks, and the changes they make, field by field. A field that
cannot change after creation refuses the whole object, naming the field.
Pure: apply.py sends them. Also the other way: an object as `show -o yaml`
prints it, which applied again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.message import Message

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from .manifests import API_VERSION, ClusterWanted, HypervisorWanted, Wanted, duration_text
from .output import as_data

Outcome = Literal["created", "configured", "unchanged", "refused", "deleted", "absent"]


@dataclass(frozen=True)
class Call:
    rpc: str  # the Fleet service's method
    request: Message

    def describe(self) -> str:
        shown = as_data(self.request)
        for secret in ("clientKey",):
            if secret in shown:
                shown[secret] = "(hidden)"
        return f"{self.rpc} {shown}"


@dataclass(frozen=True)
class Plan:
    kind: str
    name: str
    source: str
    outcome: Outcome
    calls: list[Call] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # "spec.x: old -> new"
    reason: str = ""  # a refusal's


def kind_of(wanted: Wanted) -> str:
    return "Hypervisor" if isinstance(wanted, HypervisorWanted) else "Cluster"


def plan(wanted: Wanted, current: Any) -> Plan:
    if isinstance(wanted, HypervisorWanted):
        return plan_hypervisor(wanted, current)
    return plan_cluster(wanted, current)


# -- hypervisors --------------------------------------------------------------------


def plan_hypervisor(wanted: HypervisorWanted, current: api.Hypervisor | None) -> Plan:
    spec = wanted.spec
    if current is None:
        request = api.RegisterHypervisorRequest(
            name=wanted.name, endpoint=spec.endpoint, role=spec.role,
            ip_address=spec.ip_address, labels=wanted.labels or {},
            data_dir=spec.data_dir or "",
        )  # fmt: skip
        if spec.port_range is not None:
            request.port_range_low, request.port_range_high = (
                spec.port_range.low,
                spec.port_range.high,
            )
        if spec.tls is not None:
            request.ca_certificate = spec.tls.ca_certificate
            request.client_certificate = spec.tls.client_certificate
            request.client_key = spec.tls.client_key
        changes = [f"+ hypervisor {wanted.name}: {spec.role}, {spec.endpoint}, {spec.ip_address}"]
        return Plan("Hypervisor", wanted.name, wanted.source, "created",
                    [Call("RegisterHypervisor", request)], changes)  # fmt: skip
    fixed: list[tuple[str, object, object]] = [
        ("spec.endpoint", current.endpoint, spec.endpoint),
        ("spec.ipAddress", current.ip_address, spec.ip_address),
        ("spec.role", current.role, spec.role),
    ]
    if spec.port_range is not None:
        fixed.append((
            "spec.portRange", f"{current.port_range_low}-{current.port_range_high}",
            f"{spec.port_range.low}-{spec.port_range.high}",
        ))  # fmt: skip
    if spec.data_dir is not None:
        fixed.append(("spec.dataDir", current.data_dir, spec.data_dir))
    if spec.tls is not None:
        fixed.append(("spec.tls", "set" if current.mutual_tls else "none", "set"))
    refused = refusals(fixed, "registration; remove the hypervisor and add it again")
    if refused:
        return Plan("Hypervisor", wanted.name, wanted.source, "refused", reason=refused)
    calls, changes = [], []
    if wanted.labels is not None and dict(current.labels) != wanted.labels:
        remove = sorted(set(current.labels) - set(wanted.labels))
        to_set = {k: v for k, v in wanted.labels.items() if current.labels.get(k) != v}
        calls.append(Call("LabelHypervisor", api.LabelHypervisorRequest(
            name=wanted.name, set=to_set, remove=remove,
        )))  # fmt: skip
        changes.append(f"metadata.labels: {dict(current.labels)} -> {wanted.labels}")
    outcome: Outcome = "configured" if calls else "unchanged"
    return Plan("Hypervisor", wanted.name, wanted.source, outcome, calls, changes)


def refusals(fixed: list[tuple[str, object, object]], after: str) -> str:
    """Why the object is refused: each field that differs and cannot change."""
    differ = [f"{name} ({old!r} -> {new!r})" for name, old, new in fixed if old != new]
    if not differ:
        return ""
    return f"{', '.join(differ)}: cannot change after {after}"


# -- clusters -----------------------------------------------------------------------


def create_request(wanted: ClusterWanted) -> api.CreateClusterRequest:
    request = api.CreateClusterRequest(
        name=wanted.name, apiserver_extra_sans=wanted.apiserver_extra_sans or []
    )
    optional = {
        "kubernetes_version": wanted.kubernetes_version,
        "control_plane_replicas": wanted.control_plane_replicas,
        "service_cidr": wanted.service_cidr,
        "pod_cidr": wanted.pod_cidr,
        "dns_domain": wanted.dns_domain,
        "vpn_enabled": wanted.vpn_enabled,
        "vpn_cidr": wanted.vpn_cidr,
        "certificate_lifetime_seconds": wanted.certificate_lifetime,
        "ca_lifetime_seconds": wanted.ca_lifetime,
    }
    for name, value in optional.items():
        if value is not None:
            setattr(request, name, value)
    return request


def backup_call(wanted: ClusterWanted) -> Call:
    return Call("ScheduleBackups", api.ScheduleBackupsRequest(
        name=wanted.name, every_seconds=wanted.backup_every or 0, keep=wanted.backup_keep or 0,
    ))  # fmt: skip


def plan_cluster(wanted: ClusterWanted, current: api.Cluster | None) -> Plan:
    if current is None:
        create = [Call("CreateCluster", create_request(wanted))]
        if wanted.backup_every:
            create.append(backup_call(wanted))
        return Plan("Cluster", wanted.name, wanted.source, "created", create,
                    [f"+ cluster {wanted.name}"])  # fmt: skip
    fixed: list[tuple[str, object, object]] = []
    for name, old, new in (
        ("spec.kubernetesVersion", current.kubernetes_version, wanted.kubernetes_version),
        ("spec.serviceCidr", current.service_cidr, wanted.service_cidr),
        ("spec.podCidr", current.pod_cidr, wanted.pod_cidr),
        ("spec.dnsDomain", current.dns_domain, wanted.dns_domain),
    ):
        if new is not None:
            fixed.append((name, old, new))
    if wanted.apiserver_extra_sans is not None:
        fixed.append(("spec.apiserverExtraSans", sorted(current.apiserver_extra_sans),
                      sorted(wanted.apiserver_extra_sans)))  # fmt: skip
    if wanted.vpn_enabled is False and current.vpn_enabled:
        fixed.append(("spec.vpn.enabled", True, False))
    if wanted.vpn_cidr is not None and current.vpn_enabled:
        fixed.append(("spec.vpn.cidr", current.vpn_cidr, wanted.vpn_cidr))
    refused = refusals(fixed, "creation")
    if refused:
        return Plan("Cluster", wanted.name, wanted.source, "refused", reason=refused)
    calls: list[Call] = []
    changes: list[str] = []
    replicas = wanted.control_plane_replicas
    if replicas is not None and replicas != current.control_plane_replicas:
        calls.append(Call("ScaleCluster", api.ScaleClusterRequest(
            name=wanted.name, control_plane_replicas=replicas,
        )))  # fmt: skip
        changes.append(f"spec.controlPlaneReplicas: {current.control_plane_replicas} -> {replicas}")
    if wanted.vpn_enabled and not current.vpn_enabled:
        enable = api.EnableVpnRequest(name=wanted.name)
        if wanted.vpn_cidr is not None:
            enable.vpn_cidr = wanted.vpn_cidr
        calls.append(Call("EnableVpn", enable))
        changes.append("spec.vpn.enabled: False -> True")
    lifetimes = api.SetCertificateLifetimesRequest(name=wanted.name)
    leaf, ca = wanted.certificate_lifetime, wanted.ca_lifetime
    if leaf is not None and leaf != current.certificate_lifetime_seconds:
        lifetimes.certificate_lifetime_seconds = leaf
        before = duration_text(current.certificate_lifetime_seconds)
        changes.append(f"spec.certificateLifetime: {before} -> {duration_text(leaf)}")
    if ca is not None and ca != current.ca_lifetime_seconds:
        lifetimes.ca_lifetime_seconds = ca
        changes.append(
            f"spec.caLifetime: {duration_text(current.ca_lifetime_seconds)} -> {duration_text(ca)}"
        )
    if lifetimes.HasField("certificate_lifetime_seconds") or lifetimes.HasField(
        "ca_lifetime_seconds"
    ):
        calls.append(Call("SetCertificateLifetimes", lifetimes))
    if wanted.backup_every is not None and (
        (wanted.backup_every, wanted.backup_keep)
        != (current.backup_every_seconds, current.backup_keep)
    ):
        calls.append(backup_call(wanted))
        changes.append(
            f"spec.backups: every {current.backup_every_seconds} s, keep {current.backup_keep} "
            f"-> every {wanted.backup_every} s, keep {wanted.backup_keep}"
        )
    outcome: Outcome = "configured" if calls else "unchanged"
    return Plan("Cluster", wanted.name, wanted.source, outcome, calls, changes)


def plan_delete(wanted: Wanted, exists: bool) -> Plan:
    kind = kind_of(wanted)
    if not exists:
        return Plan(kind, wanted.name, wanted.source, "absent")
    rpc = "RemoveHypervisor" if kind == "Hypervisor" else "DeleteCluster"
    call = Call(rpc, api.NameRequest(name=wanted.name))
    return Plan(kind, wanted.name, wanted.source, "deleted", [call], [f"- {kind} {wanted.name}"])


# -- as `show -o yaml` prints them ------------------------------------------------------


def status_of(message: Message, spec_fields: set[str]) -> dict[str, Any]:
    return {k: v for k, v in as_data(message).items() if k not in spec_fields}


def hypervisor_manifest(hypervisor: api.Hypervisor) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "endpoint": hypervisor.endpoint,
        "ipAddress": hypervisor.ip_address,
        "role": hypervisor.role,
        "portRange": {"low": hypervisor.port_range_low, "high": hypervisor.port_range_high},
        "dataDir": hypervisor.data_dir,
    }
    metadata: dict[str, Any] = {"name": hypervisor.name, "labels": dict(hypervisor.labels)}
    status = status_of(hypervisor, {"name", "endpoint", "ipAddress", "role", "portRangeLow",
                                    "portRangeHigh", "dataDir", "labels"})  # fmt: skip
    return {"apiVersion": API_VERSION, "kind": "Hypervisor", "metadata": metadata,
            "spec": spec, "status": status}  # fmt: skip


CLUSTER_SPEC_FIELDS = {
    "name", "kubernetesVersion", "controlPlaneReplicas", "serviceCidr", "podCidr",
    "dnsDomain", "apiserverExtraSans", "vpnEnabled", "vpnCidr",
    "certificateLifetimeSeconds", "caLifetimeSeconds", "backupEverySeconds", "backupKeep",
}  # fmt: skip


def cluster_manifest(cluster: api.Cluster) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kubernetesVersion": cluster.kubernetes_version,
        "controlPlaneReplicas": cluster.control_plane_replicas,
        "serviceCidr": cluster.service_cidr,
        "podCidr": cluster.pod_cidr,
        "dnsDomain": cluster.dns_domain,
        "apiserverExtraSans": list(cluster.apiserver_extra_sans),
        "vpn": {"enabled": cluster.vpn_enabled, "cidr": cluster.vpn_cidr},
        "certificateLifetime": duration_text(cluster.certificate_lifetime_seconds),
        "caLifetime": duration_text(cluster.ca_lifetime_seconds),
    }
    if cluster.backup_every_seconds:
        spec["backups"] = {
            "every": duration_text(cluster.backup_every_seconds),
            "keep": cluster.backup_keep,
        }
    return {"apiVersion": API_VERSION, "kind": "Cluster", "metadata": {"name": cluster.name},
            "spec": spec, "status": status_of(cluster, CLUSTER_SPEC_FIELDS)}  # fmt: skip
