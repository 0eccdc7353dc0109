"""A managed cluster's API, as oneinfra's admin: server-side apply of
manifests (field manager `oneinfra`), pruning what oneinfra put there and
no longer wants, its Nodes and CSRs (listed, watched, CSRs decided).
lightkube is the client; the TLS is ours (tls.py), so the admin key never
touches the disk.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from lightkube import AsyncClient
from lightkube.codecs import from_dict
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.certificates_v1 import CertificateSigningRequestCondition
from lightkube.resources.certificates_v1 import (
    CertificateSigningRequest,
    CertificateSigningRequestApproval,
    CertificateSigningRequestStatus,
)
from lightkube.resources.core_v1 import ConfigMap, Node, Secret

from ..errors import KubeError
from ..pki.csr import PeerRequest, ServingRequest, common_name, node_of
from ..render.bootstrap import VPN_PEER_SIGNER, VPN_PUBLIC_KEY_ANNOTATION
from ..render.labels import LABEL_MANAGED_BY, MANAGED

FIELD_MANAGER = "oneinfra"
TIMEOUT = 10.0
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
BOOTSTRAPPER_PREFIX = "system:bootstrap:"


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool
    version: str
    address: str  # its InternalIP, else its first address
    addresses: list[tuple[str, str]]  # (type, address), as the Node's status says
    created: str  # RFC 3339
    pod_cidr: str = ""  # its spec.podCIDR, once the controller manager gave it one


def node_view(node: Node) -> NodeView:
    status, metadata = node.status, node.metadata
    addresses = [(a.type, a.address) for a in (status.addresses or [])] if status else []
    internal = [a for t, a in addresses if t == "InternalIP"]
    ready = any(
        c.type == "Ready" and c.status == "True" for c in (status.conditions or [])
    ) if status else False  # fmt: skip
    created = metadata.creationTimestamp if metadata else None
    return NodeView(
        name=(metadata.name if metadata else None) or "",
        ready=ready,
        version=status.nodeInfo.kubeletVersion if status and status.nodeInfo else "",
        address=(internal or [a for _, a in addresses] or [""])[0],
        addresses=addresses,
        created=created.isoformat() if isinstance(created, dt.datetime) else "",
        pod_cidr=(node.spec.podCIDR or "") if node.spec else "",
    )


def decided(csr: CertificateSigningRequest) -> bool:
    conditions = csr.status.conditions if csr.status else None
    return any(c.type in ("Approved", "Denied", "Failed") for c in conditions or [])


def pending_serving(csrs: Iterable[CertificateSigningRequest]) -> list[ServingRequest]:
    return [
        ServingRequest(
            name=c.metadata.name or "",
            request_pem=base64.b64decode(c.spec.request),  # the PEM, base64 in JSON
            username=c.spec.username or "",
            groups=list(c.spec.groups or []),
            usages=list(c.spec.usages or []),
        )
        for c in csrs
        if c.metadata and c.spec.signerName == SERVING_SIGNER and not decided(c)
    ]  # fmt: skip


def approved_unsigned(csr: CertificateSigningRequest) -> bool:
    conditions = csr.status.conditions if csr.status else None
    approved = any(c.type == "Approved" for c in conditions or [])
    return approved and not (csr.status and csr.status.certificate)


def pending_peers(csrs: Iterable[CertificateSigningRequest]) -> list[PeerRequest]:
    """Workers' requests to be VPN peers not answered yet: undecided, or
    approved by a pass that did not get to sign."""
    return [
        PeerRequest(
            name=c.metadata.name or "",
            request_pem=base64.b64decode(c.spec.request),
            username=c.spec.username or "",
            groups=list(c.spec.groups or []),
            usages=list(c.spec.usages or []),
            public_key=(c.metadata.annotations or {}).get(VPN_PUBLIC_KEY_ANNOTATION, ""),
            approved=approved_unsigned(c),
        )
        for c in csrs
        if c.metadata and c.spec.signerName == VPN_PEER_SIGNER
        and (not decided(c) or approved_unsigned(c))
    ]  # fmt: skip


def join_tokens(csrs: Iterable[CertificateSigningRequest]) -> dict[str, str]:
    """node -> the bootstrap token its first client CSR was filed with."""
    found = {}
    for csr in csrs:
        username = csr.spec.username or ""
        if csr.spec.signerName != CLIENT_SIGNER or not username.startswith(BOOTSTRAPPER_PREFIX):
            continue
        node = node_of(common_name(base64.b64decode(csr.spec.request)) or "")
        if node is not None:
            found[node] = username.removeprefix(BOOTSTRAPPER_PREFIX)
    return found


ROTATION_CSR_PREFIX = "oneinfra-rotate-"  # node/trust.py's: the CA file written first


def rotated_trust(csrs: Iterable[CertificateSigningRequest]) -> dict[str, tuple[str, str]]:
    """node -> (CSR, certificate PEM) of the client certificates `oneinfra
    node rotate-trust` got, filed by the node itself, issued."""
    found = {}
    for csr in csrs:
        name = (csr.metadata.name if csr.metadata else None) or ""
        issued = csr.status.certificate if csr.status else None
        if not name.startswith(ROTATION_CSR_PREFIX) or csr.spec.signerName != CLIENT_SIGNER:
            continue
        node = node_of(csr.spec.username or "")
        if node is not None and issued:
            found[node] = (name, base64.b64decode(issued).decode(errors="replace"))
    return found


class OurTLS(httpx.AsyncHTTPTransport):
    """httpx's transport with our TLS context. lightkube deep-copies its
    connection settings, and an SSLContext cannot be copied: this one is
    shared as it is."""

    def __deepcopy__(self, memo: dict[int, Any]) -> OurTLS:
        return self


class ClusterAPI:
    def __init__(self, endpoint: str, tls: ssl.SSLContext) -> None:
        self.tls = tls
        config = KubeConfig.from_dict({
            "clusters": [{"name": "managed", "cluster": {"server": endpoint}}],
            "users": [{"name": "oneinfra", "user": {}}],
            "contexts": [{"name": "oneinfra", "context": {"cluster": "managed",
                                                         "user": "oneinfra"}}],
            "current-context": "oneinfra",
        })  # fmt: skip
        self.client = AsyncClient(
            config=config,
            field_manager=FIELD_MANAGER,
            timeout=httpx.Timeout(TIMEOUT),
            trust_env=False,
            transport=OurTLS(verify=tls),
        )

    async def apply(self, manifests: Iterable[dict[str, Any]]) -> int:
        """Apply each manifest; how many were."""
        count = 0
        for manifest in manifests:
            try:
                await self.client.apply(from_dict(manifest), force=True)
            except ApiError as error:
                kind, name = manifest["kind"], manifest["metadata"]["name"]
                raise KubeError(f"applying {kind} {name}: {error.status.message}") from None
            count += 1
        return count

    async def prune_token_secrets(self, keep: set[str]) -> list[str]:
        """Delete oneinfra's bootstrap-token Secrets not in `keep` (revoked ones)."""
        gone = []
        selector: dict[str, Any] = {LABEL_MANAGED_BY: MANAGED[LABEL_MANAGED_BY]}
        try:
            async for secret in self.client.list(
                Secret, namespace="kube-system", labels=selector,
                fields={"type": "bootstrap.kubernetes.io/token"},
            ):  # fmt: skip
                name = secret.metadata.name if secret.metadata else None
                if name and name not in keep:
                    await self.client.delete(Secret, name, namespace="kube-system")
                    gone.append(name)
        except ApiError as error:
            raise KubeError(f"pruning bootstrap tokens: {error.status.message}") from None
        return gone

    async def close(self) -> None:
        await self.client.close()

    async def root_ca(self) -> str:
        """The CA bundle the controller manager publishes to pods
        (kube-root-ca.crt), as it is now."""
        try:
            found = await self.client.get(ConfigMap, "kube-root-ca.crt", namespace="kube-system")
        except ApiError as error:
            raise KubeError(f"reading kube-root-ca.crt: {error.status.message}") from None
        return str((found.data or {}).get("ca.crt", ""))

    async def nodes(self) -> list[NodeView]:
        try:
            return [node_view(n) async for n in self.client.list(Node)]
        except ApiError as error:
            raise KubeError(f"listing nodes: {error.status.message}") from None

    async def delete_node(self, name: str) -> None:
        try:
            await self.client.delete(Node, name)
        except ApiError as error:
            if error.status.code != 404:
                raise KubeError(f"deleting node {name}: {error.status.message}") from None

    async def signing_requests(self) -> list[CertificateSigningRequest]:
        try:
            return [c async for c in self.client.list(CertificateSigningRequest)]
        except ApiError as error:
            raise KubeError(f"listing CSRs: {error.status.message}") from None

    async def decide(
        self, csr: CertificateSigningRequest, approve: bool, message: str
    ) -> CertificateSigningRequest:
        """Approve or deny, on the CSR's approval subresource; the CSR as it is then."""
        condition = CertificateSigningRequestCondition(
            type="Approved" if approve else "Denied",
            status="True",
            reason="OneinfraApproved" if approve else "OneinfraDenied",
            message=message,
        )
        assert csr.status is not None and csr.metadata is not None
        csr.status.conditions = [*(csr.status.conditions or []), condition]
        approval = CertificateSigningRequestApproval.from_dict(csr.to_dict())  # type: ignore[no-untyped-call]
        try:
            decided = await self.client.replace(approval, csr.metadata.name)
        except ApiError as error:
            raise KubeError(f"deciding CSR {csr.metadata.name}: {error.status.message}") from None
        as_decided: CertificateSigningRequest = CertificateSigningRequest.from_dict(  # type: ignore[no-untyped-call]
            decided.to_dict()
        )
        return as_decided

    async def issue(self, csr: CertificateSigningRequest, certificate_pem: str) -> None:
        """The signer's part: the certificate, on an approved CSR's status."""
        assert csr.status is not None and csr.metadata is not None
        csr.status.certificate = base64.b64encode(certificate_pem.encode()).decode()
        status = CertificateSigningRequestStatus.from_dict(csr.to_dict())  # type: ignore[no-untyped-call]
        try:
            await self.client.replace(status, csr.metadata.name)
        except ApiError as error:
            raise KubeError(f"signing CSR {csr.metadata.name}: {error.status.message}") from None

    async def watch_nodes_and_requests(self, ring: Callable[[], None]) -> None:
        """Until a watch ends: `ring` at every change of a Node or a CSR."""

        async def follow(resource: type[Node] | type[CertificateSigningRequest]) -> None:
            async for _ in self.client.watch(resource):
                ring()

        try:
            async with anyio.create_task_group() as watches:
                watches.start_soon(follow, Node)
                watches.start_soon(follow, CertificateSigningRequest)
        except ApiError as error:
            raise KubeError(f"watching nodes and CSRs: {error.status.message}") from None
