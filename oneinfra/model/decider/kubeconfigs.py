"""Decisions about kubeconfigs given to people: a client certificate signed
by the cluster's CA. The event records who, which groups, the serial and
the validity; the private key goes to the caller only."""

from __future__ import annotations

import datetime as dt

from ...errors import DomainError, shown
from ...pki import x509
from ...pki.kubeconfig import kubeconfig
from .. import commands as cmd
from .. import events as ev
from ..state import FleetState, api_server_endpoint
from .context import Context, Decision, existing_cluster

MIN_KUBECONFIG_TTL = 60
MAX_KUBECONFIG_TTL = 366 * 24 * 3600
MAX_SUBJECT_BYTES = 64  # X.509's upper bound on a common name and an organization
MAX_GROUPS = 32


def subject_part(what: str, value: str) -> None:
    """A user (the certificate's CN) or a group (an O): 1-64 bytes of UTF-8,
    printable."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if not value or not value.isprintable() or size > MAX_SUBJECT_BYTES:
        raise DomainError(
            f"{what} must be 1-{MAX_SUBJECT_BYTES} bytes of printable characters, "
            f"not {shown(value)} ({size} bytes)"
        )


def issue_kubeconfig(state: FleetState, command: cmd.IssueKubeconfig, context: Context) -> Decision:
    cluster = existing_cluster(state, command.cluster)
    subject_part("user", command.user)
    if len(command.groups) > MAX_GROUPS:
        raise DomainError(f"{len(command.groups)} groups; a kubeconfig has at most {MAX_GROUPS}")
    for group in command.groups:
        subject_part("group", group)
    if not MIN_KUBECONFIG_TTL <= command.ttl_seconds <= MAX_KUBECONFIG_TTL:
        raise DomainError(
            f"kubeconfig TTL must be between {MIN_KUBECONFIG_TTL} s and 366 days, "
            f"not {command.ttl_seconds} s"
        )
    server = api_server_endpoint(cluster, state.hypervisors)
    if server is None:
        raise DomainError(f"cluster {shown(cluster.name)} has no ingress yet")
    issuer = context.issuer(cluster.key_id)
    cluster_pki = context.pki[cluster.name]
    ca = issuer.open_ca(cluster_pki.ca)
    key = x509.new_key(context.entropy)
    certificate = x509.issue_leaf(
        ca.certificate,
        ca.key,
        key,
        common_name=command.user,
        organizations=command.groups,
        usages=x509.CLIENT,
        now=context.now,
        entropy=context.entropy,
        validity=dt.timedelta(seconds=command.ttl_seconds),
    )
    config = kubeconfig(
        cluster.name,
        server,
        cluster_pki.ca.certificate,
        command.user,
        x509.cert_pem(certificate),
        x509.key_pem(key).decode(),
    )
    issued = ev.KubeconfigIssued(
        cluster=cluster.name,
        user=command.user,
        groups=list(command.groups),
        serial=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc.isoformat(),
        not_after=certificate.not_valid_after_utc.isoformat(),
    )
    return Decision(events=[issued], reply=config)
