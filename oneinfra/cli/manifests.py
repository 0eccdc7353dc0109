"""Manifests: oneinfra's own (apiVersion oneinfra.io/v1, kinds Hypervisor
and Cluster) and the original oneinfra's (cluster.oneinfra.ereslibre.es and
infra.oneinfra.ereslibre.es v1alpha1), read from YAML documents into one
desired form each (`HypervisorWanted`, `ClusterWanted`).

Pure: reading files is apply.py's. Every document is checked whole before
anything is applied; an error names its source (file and document index)
and the field, as msgspec finds it (`$.spec.controlPlaneReplicas`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

import msgspec

from ..errors import CommandFailed
from ..model.validation import DNS1123_LABEL
from ..model.versions import SUPPORTED
from .parser import MAX_DURATION, UNITS

API_VERSION = "oneinfra.io/v1"
ORIGINAL_CLUSTER = "cluster.oneinfra.ereslibre.es/v1alpha1"
ORIGINAL_INFRA = "infra.oneinfra.ereslibre.es/v1alpha1"
# What the API's fields carry (uint32): the daemon says what it takes within that.
Uint32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
NAME_LENGTH = 63  # a DNS label's: the decider says if it wants fewer
DURATION = re.compile(r"^([0-9]{1,10})([smhd])$")  # as the command line's (parser.duration)
NO_MAPPING: Mapping[str, str] = MappingProxyType({})


class Strict(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


# -- oneinfra's own --------------------------------------------------------------------


class Metadata(Strict):
    name: str
    labels: dict[str, str] | None = None  # a Hypervisor's: the whole set when given


class PortRange(Strict):
    low: Uint32
    high: Uint32


class Tls(Strict):
    """A tcp:// endpoint's mutual TLS, PEM."""

    ca_certificate: str
    client_certificate: str
    client_key: str


class HypervisorSpec(Strict):
    endpoint: str
    ip_address: str
    role: Literal["public", "private"]
    port_range: PortRange | None = None
    data_dir: str | None = None
    tls: Tls | None = None


class Vpn(Strict):
    enabled: bool
    cidr: str | None = None


class Backups(Strict):
    every: int | str  # seconds, or a duration: 90s, 30m, 24h, 7d
    keep: Uint32


class ClusterSpec(Strict):
    kubernetes_version: str | None = None
    control_plane_replicas: Uint32 | None = None
    service_cidr: str | None = None
    pod_cidr: str | None = None
    dns_domain: str | None = None
    apiserver_extra_sans: list[str] | None = None
    vpn: Vpn | None = None
    certificate_lifetime: int | str | None = None
    ca_lifetime: int | str | None = None
    backups: Backups | None = None


class HypervisorDocument(Strict):
    api_version: str
    kind: str
    metadata: Metadata
    spec: HypervisorSpec
    status: dict[str, Any] | None = None  # what `show` prints; never applied


class ClusterDocument(Strict):
    api_version: str
    kind: str
    metadata: Metadata
    spec: ClusterSpec = msgspec.field(default_factory=ClusterSpec)
    status: dict[str, Any] | None = None


# -- the original oneinfra's (what its CRDs' schemas hold) ---------------------------------


class Loose(msgspec.Struct, forbid_unknown_fields=True):
    pass


class OriginalMetadata(msgspec.Struct):
    """Kubernetes' object metadata: the name counts; the rest (namespace,
    annotations, uid, ...) is the original's cluster's business."""

    name: str = ""
    labels: dict[str, str] | None = None


# The original's field names, as its CRDs spell them (mixed case).
class OriginalNetworking(Loose):
    clusterCIDR: str | None = None
    serviceCIDR: str | None = None
    nodeCIDRMaskSize: int | None = None
    nodeCIDRMaskSizeIPv4: int | None = None
    nodeCIDRMaskSizeIPv6: int | None = None


class OriginalVpn(Loose):
    enabled: bool | None = None
    CIDR: str | None = None
    privateKey: str | None = None
    publicKey: str | None = None


class OriginalApiServer(Loose):
    extraSANs: list[str] | None = None
    ca: dict[str, Any] | None = None
    serviceAccount: dict[str, Any] | None = None


class OriginalClusterSpec(Loose):
    kubernetesVersion: str | None = None
    controlPlaneReplicas: Uint32 | None = None
    networking: OriginalNetworking | None = None
    vpn: OriginalVpn | None = None
    apiServer: OriginalApiServer | None = None
    certificateAuthorities: dict[str, Any] | None = None
    etcdServer: dict[str, Any] | None = None
    joinKey: dict[str, Any] | None = None
    joinTokens: list[str] | None = None


class OriginalCluster(Loose):
    apiVersion: str
    kind: str
    metadata: OriginalMetadata
    spec: OriginalClusterSpec = msgspec.field(default_factory=OriginalClusterSpec)
    status: dict[str, Any] | None = None


class OriginalComponentSpec(msgspec.Struct):
    cluster: str = ""
    role: str = ""


class OriginalComponent(Loose):
    apiVersion: str
    kind: str
    metadata: OriginalMetadata
    spec: OriginalComponentSpec = msgspec.field(default_factory=OriginalComponentSpec)
    status: dict[str, Any] | None = None


class OriginalLocalEndpoint(Loose):
    criEndpointPath: str


class OriginalClientCertificate(Loose):
    certificate: str
    privateKey: str


class OriginalRemoteEndpoint(Loose):
    criEndpointURI: str
    caCertificate: str | None = None
    clientCertificate: OriginalClientCertificate | None = None


class OriginalPortRange(Loose):
    low: Uint32
    high: Uint32


class OriginalHypervisorSpec(Loose):
    public: bool
    ipAddress: str
    localCRIEndpoint: OriginalLocalEndpoint | None = None
    remoteCRIEndpoint: OriginalRemoteEndpoint | None = None
    portRange: OriginalPortRange | None = None


class OriginalHypervisor(Loose):
    apiVersion: str
    kind: str
    metadata: OriginalMetadata
    spec: OriginalHypervisorSpec
    status: dict[str, Any] | None = None


# -- the desired form -------------------------------------------------------------------


@dataclass(frozen=True)
class HypervisorWanted:
    source: str  # FILE#INDEX
    name: str
    spec: HypervisorSpec
    labels: dict[str, str] | None


@dataclass(frozen=True)
class ClusterWanted:
    """What a Cluster document asks for; None: left to the default (at
    creation) or as it is (later). Durations in seconds."""

    source: str
    name: str
    kubernetes_version: str | None = None
    control_plane_replicas: int | None = None
    service_cidr: str | None = None
    pod_cidr: str | None = None
    dns_domain: str | None = None
    apiserver_extra_sans: list[str] | None = None
    vpn_enabled: bool | None = None
    vpn_cidr: str | None = None
    certificate_lifetime: int | None = None
    ca_lifetime: int | None = None
    backup_every: int | None = None
    backup_keep: int | None = None


Wanted = HypervisorWanted | ClusterWanted


@dataclass
class Read:
    """Every object of the input, hypervisors first, and what was said about
    what was not applied (the original's Components)."""

    objects: list[Wanted] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ManifestError(CommandFailed):
    """A document that cannot be applied: its source and why."""


def seconds(value: int | str | None, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        number = value
    elif match := DURATION.match(value):
        number = int(match[1]) * UNITS[match[2]]
    else:
        raise ManifestError(
            f"{where}: {value[:40]!r} is not a duration such as 90s, 30m, 24h or 7d"
        )
    if not 0 < number <= MAX_DURATION:
        raise ManifestError(f"{where}: {number} seconds is out of range (1 to {MAX_DURATION})")
    return number


def duration_text(value: int) -> str:
    """Seconds as the largest unit that divides them: what `show` prints."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}s"


def checked_name(name: str, source: str) -> str:
    if len(name) > NAME_LENGTH or not DNS1123_LABEL.match(name):
        raise ManifestError(f"{source}: metadata.name {name[:70]!r} is not a DNS label")
    return name


def convert(document: object, kind: type[msgspec.Struct], source: str) -> Any:
    try:
        return msgspec.convert(document, kind, strict=True)
    except msgspec.ValidationError as error:
        raise ManifestError(f"{source}: {error}") from None


def own_cluster(doc: ClusterDocument, source: str) -> ClusterWanted:
    spec = doc.spec
    where = f"{source}: spec"
    return ClusterWanted(
        source=source,
        name=checked_name(doc.metadata.name, source),
        kubernetes_version=spec.kubernetes_version,
        control_plane_replicas=spec.control_plane_replicas,
        service_cidr=spec.service_cidr,
        pod_cidr=spec.pod_cidr,
        dns_domain=spec.dns_domain,
        apiserver_extra_sans=spec.apiserver_extra_sans,
        vpn_enabled=spec.vpn.enabled if spec.vpn else None,
        vpn_cidr=spec.vpn.cidr if spec.vpn else None,
        certificate_lifetime=seconds(spec.certificate_lifetime, f"{where}.certificateLifetime"),
        ca_lifetime=seconds(spec.ca_lifetime, f"{where}.caLifetime"),
        backup_every=seconds(spec.backups.every, f"{where}.backups.every")
        if spec.backups
        else None,
        backup_keep=spec.backups.keep if spec.backups else None,
    )


def generated(source: str, fields: dict[str, object]) -> None:
    """The original's generated fields (CAs, keys, tokens): ignored when
    empty, refused when given, since this oneinfra makes its own."""
    given = [name for name, value in fields.items() if value]
    if given:
        raise ManifestError(
            f"{source}: {', '.join(given)}: the original oneinfra's generated material is not "
            f"taken over (this oneinfra makes the cluster's own PKI, keys and tokens); remove it"
        )


def original_cluster(
    doc: OriginalCluster, source: str, replicas: int | None, versions: Mapping[str, str] | None
) -> ClusterWanted:
    spec = doc.spec
    net = spec.networking or OriginalNetworking()
    vpn = spec.vpn or OriginalVpn()
    api = spec.apiServer or OriginalApiServer()
    generated(source, {
        "spec.certificateAuthorities": spec.certificateAuthorities,
        "spec.etcdServer": spec.etcdServer, "spec.joinKey": spec.joinKey,
        "spec.joinTokens": spec.joinTokens, "spec.apiServer.ca": api.ca,
        "spec.apiServer.serviceAccount": api.serviceAccount,
        "spec.vpn.privateKey": vpn.privateKey, "spec.vpn.publicKey": vpn.publicKey,
    })  # fmt: skip
    masks = [net.nodeCIDRMaskSize, net.nodeCIDRMaskSizeIPv4, net.nodeCIDRMaskSizeIPv6]
    if any(m is not None for m in masks):
        raise ManifestError(
            f"{source}: spec.networking.nodeCIDRMaskSize*: not supported (nodes get /24s of "
            f"the pod CIDR); remove it"
        )
    version = spec.kubernetesVersion
    if version is not None and versions is not None:
        version = versions.get(version, version)
        if not version.startswith("v"):
            version = f"v{version}"
        if version not in {r.version for r in SUPPORTED}:
            supported = ", ".join(r.version for r in SUPPORTED)
            raise ManifestError(
                f"{source}: spec.kubernetesVersion {spec.kubernetesVersion!r} is not supported; "
                f"use one of {supported}, or map it: --map-version "
                f"{spec.kubernetesVersion}={SUPPORTED[0].version}"
            )
    return ClusterWanted(
        source=source,
        name=checked_name(doc.metadata.name, source),
        kubernetes_version=version,
        control_plane_replicas=spec.controlPlaneReplicas or replicas,
        service_cidr=net.serviceCIDR,
        pod_cidr=net.clusterCIDR,
        apiserver_extra_sans=api.extraSANs,
        vpn_enabled=vpn.enabled,
        vpn_cidr=vpn.CIDR,
    )


def original_hypervisor(doc: OriginalHypervisor, source: str) -> HypervisorWanted:
    spec = doc.spec
    local, remote = spec.localCRIEndpoint, spec.remoteCRIEndpoint
    if (local is None) == (remote is None):
        raise ManifestError(
            f"{source}: spec: exactly one of localCRIEndpoint and remoteCRIEndpoint is needed"
        )
    tls = None
    if local is not None:
        endpoint = f"unix://{local.criEndpointPath}"
    else:
        assert remote is not None
        endpoint = remote.criEndpointURI
        if "://" not in endpoint:
            endpoint = f"tcp://{endpoint}"
        if remote.caCertificate and remote.clientCertificate:
            tls = Tls(remote.caCertificate, remote.clientCertificate.certificate,
                      remote.clientCertificate.privateKey)  # fmt: skip
    ports = PortRange(spec.portRange.low, spec.portRange.high) if spec.portRange else None
    return HypervisorWanted(
        source=source,
        name=checked_name(doc.metadata.name, source),
        spec=HypervisorSpec(
            endpoint=endpoint,
            ip_address=spec.ipAddress,
            role="public" if spec.public else "private",
            port_range=ports,
            tls=tls,
        ),
        labels=doc.metadata.labels,
    )


def kind_of(document: object, source: str) -> tuple[str, str]:
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: not an object (apiVersion, kind, metadata, spec)")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ManifestError(f"{source}: apiVersion and kind are needed, as strings")
    return api_version, kind


KNOWN = {
    (API_VERSION, "Hypervisor"), (API_VERSION, "Cluster"),
    (ORIGINAL_INFRA, "Hypervisor"), (ORIGINAL_CLUSTER, "Cluster"),
    (ORIGINAL_CLUSTER, "Component"),
}  # fmt: skip


def read(
    documents: Iterable[tuple[str, object]], versions: Mapping[str, str] | None = NO_MAPPING
) -> Read:
    """The objects of (source, document) pairs, checked whole: any error,
    and nothing is to be applied. `versions` maps the original's Kubernetes
    versions to supported ones; None: they are not looked at (a delete
    needs the names only)."""
    decoded: list[tuple[str, str, str, object]] = []
    for source, document in documents:
        if document is None:
            continue  # an empty document (a trailing ---)
        api_version, kind = kind_of(document, source)
        if (api_version, kind) not in KNOWN:
            if kind == "CustomResourceDefinition":
                raise ManifestError(
                    f"{source}: a CustomResourceDefinition describes a kind, it is not an "
                    f"object to apply; apply the objects ({API_VERSION} Cluster, Hypervisor)"
                )
            known = ", ".join(sorted(f"{v} {k}" for v, k in KNOWN))
            raise ManifestError(f"{source}: {api_version} {kind} is not known; known: {known}")
        decoded.append((source, api_version, kind, document))
    # The original's Components place nothing here; their control planes
    # count, for its Clusters that do not say how many replicas they want.
    components: dict[str, int] = {}
    found = Read()
    for source, _, kind, document in decoded:
        if kind == "Component":
            component = convert(document, OriginalComponent, source)
            if component.spec.role == "control-plane":
                components[component.spec.cluster] = components.get(component.spec.cluster, 0) + 1
    if components:
        found.warnings.append(
            "Component objects are not applied: placement is the daemon's here (each "
            "cluster's replicas are counted from its control-plane Components when its "
            "spec.controlPlaneReplicas is not set)"
        )
    hypervisors: list[Wanted] = []
    clusters: list[Wanted] = []
    for source, api_version, kind, document in decoded:
        if kind == "Hypervisor":
            if api_version == API_VERSION:
                doc = convert(document, HypervisorDocument, source)
                hypervisors.append(HypervisorWanted(
                    source, checked_name(doc.metadata.name, source), doc.spec, doc.metadata.labels
                ))  # fmt: skip
            else:
                hypervisors.append(
                    original_hypervisor(convert(document, OriginalHypervisor, source), source)
                )
        elif kind == "Cluster":
            if api_version == API_VERSION:
                clusters.append(own_cluster(convert(document, ClusterDocument, source), source))
            else:
                original = convert(document, OriginalCluster, source)
                replicas = components.get(original.metadata.name)
                clusters.append(original_cluster(original, source, replicas, versions))
    found.objects = no_duplicates(hypervisors) + no_duplicates(clusters)
    return found


def json_schema() -> dict[str, Any]:
    """A JSON Schema of oneinfra's own manifests, for editors (the YAML
    language server's `# yaml-language-server: $schema=...`)."""
    refs, definitions = msgspec.json.schema_components([HypervisorDocument, ClusterDocument])
    for kind in ("Hypervisor", "Cluster"):
        properties = definitions[f"{kind}Document"]["properties"]
        properties["apiVersion"] = {"const": API_VERSION}
        properties["kind"] = {"const": kind}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"oneinfra manifests ({API_VERSION})",
        "oneOf": list(refs),
        "$defs": definitions,
    }


def no_duplicates(objects: Sequence[Wanted]) -> list[Wanted]:
    seen: dict[str, str] = {}
    for wanted in objects:
        if wanted.name in seen:
            kind = "Hypervisor" if isinstance(wanted, HypervisorWanted) else "Cluster"
            raise ManifestError(
                f"{wanted.source}: {kind} {wanted.name} is also in {seen[wanted.name]}: "
                f"one object per name"
            )
        seen[wanted.name] = wanted.source
    return list(objects)
