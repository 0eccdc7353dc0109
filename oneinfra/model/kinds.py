"""The closed sets of the fleet, by name: hypervisor roles, component roles,
and the phases the reconciler tells. Literal types, so that a value outside
the set is a type error and the log keeps storing the same plain strings
(msgspec refuses any other when it decodes one)."""

from __future__ import annotations

from typing import Final, Literal, get_args

HypervisorRole = Literal["public", "private"]
PUBLIC: Final = "public"  # holds ingresses: reachable by users and workers
PRIVATE: Final = "private"  # holds control planes
HYPERVISOR_ROLES: tuple[HypervisorRole, ...] = get_args(HypervisorRole)

ComponentRole = Literal["control-plane", "ingress", "vpn"]
CONTROL_PLANE: Final = "control-plane"  # etcd, API server, controller manager, scheduler
INGRESS: Final = "ingress"  # haproxy in front of the API servers
VPN: Final = "vpn"  # the WireGuard server edge workers dial, beside the ingress

PhaseName = Literal["pending", "running", "ready", "degraded", "failed", "deleted"]
PENDING: Final = "pending"
RUNNING: Final = "running"
READY: Final = "ready"  # clusters only: the API answers through the ingress
DEGRADED: Final = "degraded"
FAILED: Final = "failed"
DELETED: Final = "deleted"  # clusters only, in the status stream
