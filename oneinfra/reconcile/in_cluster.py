"""Inside each ready cluster, what workers need to join it (render/bootstrap.py)
and what runs on them (render/addons.py: kube-proxy, the network, CoreDNS),
applied at every pass of the cluster's worker and whenever its join tokens
change: level-triggered, so an object deleted or changed by someone comes
back at the next pass. Bootstrap tokens revoked, or expired, are deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Callable

import anyio
import httpx

from ..errors import KubeError
from ..model import events as ev
from ..model.certificates import trusted_pki
from ..model.decider.joins import expired, parse_rfc3339, rfc3339
from ..model.state import Cluster, api_server_endpoint, vpn_endpoint
from ..pki.csr import node_of, requested_names, serving_refusal
from ..pki.sealing import unseal
from ..pki.x509 import first_certificate, issued_by, public_key_hash
from ..render.addons import addons, newest_ca_stamp, restarted_for_rotation
from ..render.bootstrap import LiveToken, bootstrap_objects
from ..render.metrics_server import api_service, metrics_server
from ..runtime.kube import ClusterAPI, NodeView, join_tokens, pending_serving, rotated_trust
from .certificates import cluster_pki, cluster_trust
from .shared import Shared
from .vpn import answer_peer_requests

log = logging.getLogger("oneinfra.reconciler")
WATCH_RETRY = 5.0  # seconds before a broken watch starts again


def removed(cluster: Cluster, nodes: list[NodeView]) -> list[NodeView]:
    """The Nodes someone removed: registered before the removal (one that
    registers again later, its kubelet joined anew, stays)."""
    return [
        n for n in nodes
        if n.name in cluster.removed_nodes and n.created
        and parse_rfc3339(n.created) < parse_rfc3339(cluster.removed_nodes[n.name])
    ]  # fmt: skip


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

    async def reconcile(self, cluster: Cluster, tls: ssl.SSLContext) -> tuple[str, bool]:
        """Apply and prune, and watch over the nodes; what was done, in a few
        words, and whether to come back soon. Raises KubeError."""
        endpoint = api_server_endpoint(cluster, self.shared.fleet.state.hypervisors)
        if endpoint is None:
            raise KubeError("the cluster has no ingress")
        # cluster-info gives joining workers the CAs trusted now (both, mid-rotation).
        pki = trusted_pki(
            await cluster_pki(self.shared.events, cluster),
            await cluster_trust(self.shared.events, cluster),
        )
        tokens = await self.live_tokens(cluster, dt.datetime.now(dt.UTC))
        api = self._apis.get(cluster.cluster_id)
        if api is not None and api.tls is not tls:  # a renewed admin certificate
            await self.forget(cluster.cluster_id)
            api = None
        if api is None:
            api = self._apis[cluster.cluster_id] = ClusterAPI(endpoint, tls)
        try:
            # Rotated once: the workloads start again as the newest CA reaches pods.
            stamp = newest_ca_stamp(cluster, await api.root_ca()) if cluster.rotation else None
            manifests = [
                *bootstrap_objects(
                    cluster,
                    endpoint,
                    pki.ca.certificate,
                    tokens,
                    vpn_endpoint(cluster, self.shared.fleet.state.hypervisors),
                ),
                *restarted_for_rotation(
                    [*addons(cluster, endpoint), *metrics_server(endpoint)], stamp
                ),
            ]
            applied = await api.apply(manifests)
            pruned = await api.prune_token_secrets(
                {f"bootstrap-token-{t.token_id}" for t in tokens}
            )
            newest = first_certificate(pki.ca.certificate) if cluster.rotation else None
            busy, serving = await self.nodes(cluster, api, newest)
            if serving:
                applied += await api.apply([api_service()])
        except httpx.HTTPError as error:
            raise KubeError(f"{type(error).__name__}: {error}") from None
        done = f"{applied} objects applied"
        done += f", {len(pruned)} revoked or expired token(s) deleted" if pruned else ""
        return done, busy

    async def nodes(
        self, cluster: Cluster, api: ClusterAPI, newest_ca: str | None = None
    ) -> tuple[bool, bool]:
        """The Nodes recorded as they join and leave; kubelets' serving CSRs
        approved when they ask for their own names only, refused (and told
        why) otherwise. Whether something is under way (a node not Ready, a
        request decided): the next pass comes soon then; and whether a node
        is Ready, so that the metrics API can be served."""
        nodes, csrs = await api.nodes(), await api.signing_requests()
        gone = removed(cluster, nodes)
        for removal in gone:
            await api.delete_node(removal.name)
        nodes = [n for n in nodes if n not in gone]
        now = rfc3339(dt.datetime.now(dt.UTC))
        board = self.shared.board
        board.nodes_observed(cluster.name, cluster.cluster_id, nodes, join_tokens(csrs), now)
        addresses = {n.name: n.addresses for n in nodes}
        objects = {c.metadata.name: c for c in csrs if c.metadata and c.metadata.name}
        if newest_ca is not None:  # rotated: which workers took the newest CA
            ca = public_key_hash(newest_ca)
            for node, (csr, pem) in rotated_trust(csrs).items():
                if issued_by(pem, newest_ca):
                    board.trust_rotated(ev.NodeTrustRotated(cluster.name, cluster.cluster_id,
                                                            node, csr, ca))  # fmt: skip
        peers = await answer_peer_requests(self.shared, cluster, api, csrs)
        pending = pending_serving(csrs)
        for request in pending:
            node = node_of(request.username) or request.username
            refusal = serving_refusal(request, addresses.get(node))
            event: ev.ServingCertificateApproved | ev.ServingCertificateRefused
            if refusal is None:
                names = requested_names(request.request_pem)
                event = ev.ServingCertificateApproved(cluster.name, cluster.cluster_id, node,
                                                      request.name, names)  # fmt: skip
                message = f"oneinfra: node {node}'s own names ({', '.join(names)})"
            else:
                event = ev.ServingCertificateRefused(cluster.name, cluster.cluster_id, node,
                                                     request.name, refusal)  # fmt: skip
                message = f"oneinfra: {refusal}"
            await api.decide(objects[request.name], refusal is None, message)
            board.csr_decided(event)
        busy = bool(pending) or bool(peers) or not all(n.ready for n in nodes)
        return busy, any(n.ready for n in nodes)

    async def watch(self, cluster_id: str, ring: Callable[[], None]) -> None:
        """Forever: a pass rung as nodes or CSRs change (a node joining, a
        kubelet asking for its serving certificate), rather than at the next
        resync. Broken watches start again, a few seconds later."""
        while True:
            api = self._apis.get(cluster_id)
            if api is not None:
                try:
                    await api.watch_nodes_and_requests(ring)
                except Exception as error:
                    # Whatever breaks a watch (the cluster going away, a
                    # timeout, an error group from its two streams) only
                    # delays a pass until the resync: never the daemon.
                    log.debug("watching cluster %s: %r", cluster_id, error)
            await anyio.sleep(WATCH_RETRY)

    async def forget(self, cluster_id: str) -> None:
        api = self._apis.pop(cluster_id, None)
        if api is not None:
            await api.close()
