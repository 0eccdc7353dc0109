"""Inside each ready cluster, what workers need to join it (render/bootstrap.py)
and what runs on them (render/addons.py: kube-proxy, the network, CoreDNS),
applied at every pass of the cluster's worker and whenever its join tokens
change: level-triggered, so an object deleted or changed by someone comes
back at the next pass. Bootstrap tokens revoked, or expired, are deleted.
"""

from __future__ import annotations

import datetime as dt
import ssl

import httpx

from ..errors import KubeError
from ..model import events as ev
from ..model.decider.joins import expired
from ..model.state import Cluster, api_server_endpoint
from ..pki.sealing import unseal
from ..render.addons import addons
from ..render.bootstrap import LiveToken, bootstrap_objects
from ..runtime.kube import ClusterAPI
from .shared import Shared


class InCluster:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._apis: dict[str, ClusterAPI] = {}  # by cluster id

    async def live_tokens(self, cluster: Cluster, now: dt.datetime) -> list[LiveToken]:
        data_key = self.shared.fleet.keys.get(cluster.key_id)
        tokens = []
        for token in cluster.join_tokens.values():
            if expired(token.expires_at, now):
                continue
            created = await self.shared.events.get(token.created_at, ev.JoinTokenCreated)
            secret = unseal(created.secret, data_key).decode()
            tokens.append(LiveToken(token.token_id, secret, token.expires_at,
                                    token.description, list(token.groups)))  # fmt: skip
        return tokens

    async def reconcile(self, cluster: Cluster, tls: ssl.SSLContext) -> str:
        """Apply and prune; what was done, in a few words. Raises KubeError."""
        endpoint = api_server_endpoint(cluster, self.shared.fleet.state.hypervisors)
        if endpoint is None:
            raise KubeError("the cluster has no ingress")
        pki = (await self.shared.events.get(cluster.created_at, ev.ClusterCreated)).pki
        tokens = await self.live_tokens(cluster, dt.datetime.now(dt.UTC))
        manifests = [
            *bootstrap_objects(cluster, endpoint, pki.ca.certificate, tokens),
            *addons(cluster, endpoint),
        ]
        api = self._apis.get(cluster.cluster_id)
        if api is None:
            api = self._apis[cluster.cluster_id] = ClusterAPI(endpoint, tls)
        try:
            applied = await api.apply(manifests)
            pruned = await api.prune_token_secrets(
                {f"bootstrap-token-{t.token_id}" for t in tokens}
            )
        except httpx.HTTPError as error:
            raise KubeError(f"{type(error).__name__}: {error}") from None
        done = f"{applied} objects applied"
        return done + (f", {len(pruned)} revoked or expired token(s) deleted" if pruned else "")

    async def forget(self, cluster_id: str) -> None:
        api = self._apis.pop(cluster_id, None)
        if api is not None:
            await api.close()
