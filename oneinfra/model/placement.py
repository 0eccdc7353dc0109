"""Where components go and which host ports they get: pure, deterministic.

Hypervisors are filled least-loaded first (ties by name), and ports are the
lowest free ones of a hypervisor's range, so the same state always gives the
same answer and the answer is recorded in events.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import DomainError
from .kinds import ComponentRole, HypervisorRole
from .state import PORT_NAMES, Hypervisor


def free_ports(hypervisor: Hypervisor, count: int, taken: Iterable[int] = ()) -> list[int] | None:
    """The lowest `count` free ports in the hypervisor's range, or None;
    `taken`: decided already, not yet in the state."""
    used = hypervisor.used_ports() | set(taken)
    low, high = hypervisor.port_range
    found: list[int] = []
    for port in range(low, high + 1):
        if port not in used:
            found.append(port)
            if len(found) == count:
                return found
    return None


def place(
    hypervisors: Iterable[Hypervisor],
    role: HypervisorRole,
    component_role: ComponentRole,
    count: int,
    exclude: set[str],
    purpose: str,
) -> list[tuple[Hypervisor, dict[str, int]]]:
    """`count` distinct hypervisors of `role`, each with the ports the component needs."""
    names = PORT_NAMES[component_role]
    candidates = sorted(
        (h for h in hypervisors if h.role == role and h.name not in exclude),
        key=lambda h: (len(h.placements), h.name),
    )
    if len(candidates) < count:
        already = f", besides the {len(exclude)} this cluster uses" if exclude else ""
        raise DomainError(
            f"{purpose} needs {count} {role} hypervisor(s), each a distinct one, "
            f"but {len(candidates)} {role} hypervisor(s) are available{already}; "
            f"register more with 'oneinfra hypervisor add ... --{role}'"
        )
    chosen: list[tuple[Hypervisor, dict[str, int]]] = []
    exhausted: list[str] = []
    for hypervisor in candidates:
        ports = free_ports(hypervisor, len(names))
        if ports is None:
            low, high = hypervisor.port_range
            exhausted.append(f"{hypervisor.name} ({low}-{high})")
            continue
        chosen.append((hypervisor, dict(zip(names, ports, strict=True))))
        if len(chosen) == count:
            return chosen
    raise DomainError(
        f"{purpose} needs {len(names)} free host port(s) on each of {count} {role} "
        f"hypervisor(s), but the port range is exhausted on: {', '.join(exhausted)}"
    )
