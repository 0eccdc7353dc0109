"""Decisions about hypervisors: register, label, remove."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ...errors import DomainError, shown
from ...pki.sealing import KEY_BYTES, NONCE_BYTES, seal
from .. import commands as cmd
from .. import events as ev
from .. import validation
from ..kinds import HYPERVISOR_ROLES as ROLES
from ..state import FleetState
from .context import Context, Decision, new_id, unknown


def register_hypervisor(
    state: FleetState, command: cmd.RegisterHypervisor, context: Context
) -> Decision:
    name = validation.name("hypervisor", command.name)
    if name in state.hypervisors:
        raise DomainError(f"hypervisor {shown(name)} is already registered")
    if command.role not in ROLES:
        raise DomainError(
            f"hypervisor role must be {ROLES[0]!r} or {ROLES[1]!r}, not {shown(command.role)}"
        )
    address = str(validation.ip_address(command.ip_address, "hypervisor IP address"))
    endpoint = validation.endpoint(command.endpoint, has_tls=command.tls is not None)
    for other in state.hypervisors.values():
        if other.endpoint == endpoint:
            raise DomainError(f"endpoint {endpoint} is already registered by {shown(other.name)}")
    port_range = validation.port_range(*command.port_range)
    labels = validation.labels(dict(command.labels))
    decision = Decision(events=[])
    tls = None
    if command.tls is not None:
        key_id = f"hypervisor-{name}-{new_id(context)}"
        data_key = context.entropy(KEY_BYTES)
        tls = ev.HypervisorTLS(
            ca_certificate=checked_certificate(command.tls.ca_certificate, "CA certificate"),
            client_certificate=checked_certificate(
                command.tls.client_certificate, "client certificate"
            ),
            client_key=seal(
                key_id,
                data_key,
                checked_private_key(command.tls.client_key),
                context.entropy(NONCE_BYTES),
            ),
        )
        decision.new_keys[key_id] = data_key
    decision.events.append(
        ev.HypervisorRegistered(
            name=name,
            endpoint=endpoint,
            role=command.role,  # one of ROLES: checked above
            ip_address=address,
            port_range=port_range,
            labels=labels,
            tls=tls,
            data_dir=validation.absolute_path(command.data_dir, "hypervisor data directory"),
        )
    )
    return decision


def label_hypervisor(state: FleetState, command: cmd.LabelHypervisor, context: Context) -> Decision:
    hypervisor = state.hypervisors.get(command.name)
    if hypervisor is None:
        raise unknown("hypervisor", command.name, state.hypervisors)
    validation.label_keys(command.remove)
    labels = {k: v for k, v in hypervisor.labels.items() if k not in command.remove}
    labels.update(validation.labels(dict(command.set)))
    validation.label_keys(labels)  # the whole set, within the limit too
    if labels == hypervisor.labels:
        return Decision(events=[])
    return Decision(events=[ev.HypervisorLabelsChanged(name=command.name, labels=labels)])


def remove_hypervisor(
    state: FleetState, command: cmd.RemoveHypervisor, context: Context
) -> Decision:
    hypervisor = state.hypervisors.get(command.name)
    if hypervisor is None:
        raise unknown("hypervisor", command.name, state.hypervisors)
    if hypervisor.placements:
        held = ", ".join(sorted(hypervisor.placements)[:5])
        more = len(hypervisor.placements) - 5
        raise DomainError(
            f"hypervisor {shown(command.name)} still holds components: {held}"
            + (f" and {more} more" if more > 0 else "")
            + "; delete or scale those clusters first"
        )
    destroyed = [hypervisor.tls.client_key.key_id] if hypervisor.tls else []
    return Decision(events=[ev.HypervisorRemoved(name=command.name)], destroyed_keys=destroyed)


def checked_certificate(pem: str, what: str) -> str:
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise DomainError(f"the {what} is not a PEM certificate") from None
    return pem


def checked_private_key(pem: str) -> bytes:
    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise DomainError("the client key is not an unencrypted PEM private key") from None
    return pem.encode()
