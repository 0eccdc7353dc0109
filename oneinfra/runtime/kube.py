"""A managed cluster's API, as oneinfra's admin: server-side apply of
manifests (field manager `oneinfra`), and pruning what oneinfra put there
and no longer wants. lightkube is the client; the TLS is ours (tls.py), so
the admin key never touches the disk.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.codecs import from_dict
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret

from ..errors import KubeError
from ..render.labels import LABEL_MANAGED_BY, MANAGED

FIELD_MANAGER = "oneinfra"
TIMEOUT = 10.0


class OurTLS(httpx.AsyncHTTPTransport):
    """httpx's transport with our TLS context. lightkube deep-copies its
    connection settings, and an SSLContext cannot be copied: this one is
    shared as it is."""

    def __deepcopy__(self, memo: dict[int, Any]) -> OurTLS:
        return self


class ClusterAPI:
    def __init__(self, endpoint: str, tls: ssl.SSLContext) -> None:
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
