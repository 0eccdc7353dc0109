"""The daemon's gRPC API: the servicer (grpclib, with protobuf's messages,
encoded and decoded in C: a list of 1,000 clusters is a few milliseconds,
not a quarter of a second).

Queries read the state and the board under their locks, on whichever loop
serves the socket; what needs the store (commands, watches, the audit
trail) is handed to the main loop, which owns it. Refusals become gRPC
statuses here, at the boundary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from eventstore import EventStoreError, StoreFull

from .. import __version__
from ..api.pb.oneinfra.v1 import fleet_grpc
from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..backup.service import Backups, check_backup, check_clone_source
from ..errors import (
    BackupFailed,
    Conflict,
    DomainError,
    SecretsError,
    ServiceClosed,
    StateFull,
    shown,
)
from ..model import commands as cmd
from ..model import events as ev
from ..model.metadata import Actor
from ..model.state import Cluster, FleetState, api_server_endpoint
from ..pki.x509 import public_key_hash
from ..reconcile.board import StatusBoard
from . import messages as views
from .callers import asked
from .certificate_status import certificates_view
from .leadership import Leadership, current_term
from .mainloop import MainLoop
from .messages import given
from .service import FleetService, Outcome
from .wire import request_of

WATCH_REFRESH = 2.0  # seconds: a watcher hears at least this often
MAX_POSITION = 2**63 - 1  # the log's positions are signed 64-bit integers

T = TypeVar("T")


MAX_REFUSAL = 1000  # characters of a refusal's message on the wire


def refusal(status: Status, message: str) -> GRPCError:
    """A refusal as a gRPC status, its message one bounded line (it travels
    in an HTTP/2 header)."""
    if len(message) > MAX_REFUSAL:
        message = message[:MAX_REFUSAL] + "..."
    return GRPCError(status, message.replace("\n", " "))


async def refusals_as_status(call: Awaitable[T]) -> T:
    """Domain refusals and daemon states as gRPC statuses with their message."""
    try:
        return await call
    except DomainError as error:
        raise refusal(Status.FAILED_PRECONDITION, str(error)) from None
    except Conflict as error:
        raise refusal(Status.ABORTED, str(error)) from None
    except ServiceClosed as error:
        raise refusal(Status.UNAVAILABLE, str(error)) from None
    except (StateFull, StoreFull) as error:
        raise refusal(
            Status.RESOURCE_EXHAUSTED,
            f"the state directory is full; nothing was done ({error})",
        ) from None
    except SecretsError as error:
        raise refusal(Status.INTERNAL, f"the key store failed: {error}") from None
    except EventStoreError as error:
        raise refusal(Status.INTERNAL, f"the event store failed: {error}") from None


def log_position(value: int, what: str) -> int:
    """A position a caller sent, within what a log can hold."""
    if value > MAX_POSITION:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{what} {value} is beyond any log's positions")
    return value


def checked_hash(value: str) -> str:
    """A record's hash as a person types it: 64 hex digits."""
    try:
        if len(value) == 64 and len(bytes.fromhex(value)) == 32:
            return value.lower()
    except ValueError:
        pass
    raise GRPCError(Status.INVALID_ARGUMENT, f"{shown(value)} is not a hash: 64 hex digits")


def known_cluster(state: FleetState, name: str) -> Cluster:
    """The named cluster of the state, or NOT_FOUND saying so."""
    cluster = state.clusters.get(name)
    if cluster is None:
        raise GRPCError(Status.NOT_FOUND, f"unknown cluster {shown(name)}")
    return cluster


def parse_time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise GRPCError(
            Status.INVALID_ARGUMENT,
            f"{shown(value)} is not an RFC 3339 time (2026-11-24T12:00:00Z)",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class FleetServer(fleet_grpc.FleetBase):
    """The API. Queries read the state and the board under their locks, on
    whichever loop serves the socket; what needs the store runs on the main
    loop (`main`), which owns it."""

    def __init__(
        self,
        service: FleetService,
        board: StatusBoard | None = None,
        main: MainLoop | None = None,
        backups: Backups | None = None,
        leadership: Leadership | None = None,
        store_name: str = "",
        followed: StatusBoard | None = None,
    ) -> None:
        self.service = service
        self.leadership = leadership  # several daemons on the store: None when alone
        self.store_name = store_name
        self.backups = backups  # taken by the reconciler's side: None without one
        self.own_board = board or StatusBoard()  # the reconciler's; empty without one
        self.followed = followed  # the leader's transitions as recorded (statusfollower.py)
        self.reconciling = board is not None
        self.main = main or MainLoop()

    @property
    def board(self) -> StatusBoard:
        """This daemon's reconciler's board while it reconciles; while it
        stands by, the fleet as the leader last recorded it."""
        if self.followed is not None and (self.leadership is None or self.leadership.term is None):
            return self.followed
        return self.own_board

    @contextlib.contextmanager
    def reading(self) -> Iterator[FleetState]:
        """The state and the board, held still while a query reads them."""
        with self.service.lock, self.board.lock:
            yield self.service.state

    def cluster_view(self, cluster: Cluster) -> api.Cluster:
        status = self.board.clusters.get(cluster.cluster_id)
        return views.cluster_view(cluster, self.service.state, status)

    async def _execute(
        self,
        command: cmd.Command,
        actor: Actor | None,
        correlation: str | None,
        source: str | None = None,
    ) -> Outcome:
        return await refusals_as_status(self.service.execute(command, actor, correlation, source))

    async def _run(self, command: cmd.Command) -> int:
        outcome = await self.main.call(self._execute, command, *asked())
        return outcome.position

    # -- commands -------------------------------------------------------------------

    async def register_hypervisor(self, message: api.RegisterHypervisorRequest) -> api.Hypervisor:
        await self._run(views.register_hypervisor(message))
        return await self.get_hypervisor(api.NameRequest(name=message.name))

    async def label_hypervisor(self, message: api.LabelHypervisorRequest) -> api.Hypervisor:
        await self._run(
            cmd.LabelHypervisor(
                name=message.name, set=dict(message.set), remove=list(message.remove)
            )
        )
        return await self.get_hypervisor(api.NameRequest(name=message.name))

    async def remove_hypervisor(self, message: api.NameRequest) -> api.CommandReply:
        return api.CommandReply(position=await self._run(cmd.RemoveHypervisor(name=message.name)))

    async def create_cluster(self, message: api.CreateClusterRequest) -> api.Cluster:
        if message.from_backup:
            await self.main.call(
                refusals_as_status, check_clone_source(self.service, message.from_backup)
            )
        await self._run(views.create_cluster(message))
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def scale_cluster(self, message: api.ScaleClusterRequest) -> api.Cluster:
        await self._run(
            cmd.ScaleCluster(
                name=message.name, control_plane_replicas=message.control_plane_replicas
            )
        )
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def enable_vpn(self, message: api.EnableVpnRequest) -> api.Cluster:
        vpn_cidr = message.vpn_cidr if message.HasField("vpn_cidr") else None
        await self._run(cmd.EnableVpn(cluster=message.name, vpn_cidr=vpn_cidr))
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def renew_certificates(self, message: api.RenewCertificatesRequest) -> api.Cluster:
        command = cmd.RenewCertificates(
            cluster=message.name,
            certificates=list(message.certificates),
            components=list(message.components),
        )
        await self._run(command)
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def set_certificate_lifetimes(
        self, message: api.SetCertificateLifetimesRequest
    ) -> api.Cluster:
        command = cmd.SetCertificateLifetimes(
            cluster=message.name,
            certificate_lifetime=given(message, "certificate_lifetime_seconds", 0),
            ca_lifetime=given(message, "ca_lifetime_seconds", 0),
        )
        await self._run(command)
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def rotate_ca(self, message: api.RotateCARequest) -> api.Cluster:
        command = cmd.RotateCA(cluster=message.name, phase=message.phase)
        if message.phase == "complete":
            await self.workers_trust_the_new_ca(message.name)
        await self._run(command)
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def workers_trust_the_new_ca(self, name: str) -> None:
        """Complete cuts off a worker still on the old CA: refused while one
        is (`node rotate-trust` on it records that it no longer is)."""
        untrusting = await self.nodes_on_old_ca(name)
        if untrusting is None:
            raise refusal(
                Status.FAILED_PRECONDITION,
                f"cluster {shown(name)}'s nodes were not observed since the daemon started; "
                f"try again in a few seconds",
            )
        if untrusting:
            listed = ", ".join(shown(n) for n in untrusting[:10])
            raise refusal(
                Status.FAILED_PRECONDITION,
                f"completing would cut off {len(untrusting)} node(s) of cluster {shown(name)} "
                f"that still trust only the old CA: {listed}; run 'oneinfra node rotate-trust' "
                f"on each (or remove it: 'oneinfra node remove'), then complete",
            )

    async def nodes_on_old_ca(self, name: str) -> list[str] | None:
        """A rotation in progress: the cluster's nodes not known to hold the
        new CAs; None when its nodes were not observed since the start; []
        when there is nothing to know (no rotation in progress, no reconciler)."""
        if not self.reconciling:
            return []  # nobody watches the nodes: nothing to know them by
        with self.reading() as state:
            cluster = state.clusters.get(name)
            if cluster is None or cluster.rotation is None or not cluster.rotation.in_progress:
                return []  # the decider says why not, if asked to complete
            cluster_id = cluster.cluster_id
        pki = await self.main.call(self.service.cluster_pki, name)
        return self.board.untrusting_nodes(name, cluster_id, public_key_hash(pki.ca.certificate))

    async def backup_cluster(self, message: api.NameRequest) -> api.Backup:
        if self.backups is None:
            raise refusal(
                Status.FAILED_PRECONDITION,
                "backups are taken by the reconciler; this daemon runs without one",
            )
        backup = await self.main.call(refusals_as_status, self._backup(message.name))
        return views.backup_view(backup)

    async def _backup(self, name: str) -> ev.Backup:
        assert self.backups is not None
        try:
            return await self.backups.take(name)
        except BackupFailed as error:
            raise refusal(Status.UNAVAILABLE, str(error)) from None

    async def restore_cluster(self, message: api.RestoreClusterRequest) -> api.Cluster:
        await self.main.call(
            refusals_as_status, check_backup(self.service, message.name, message.backup_id)
        )
        await self._run(cmd.RestoreCluster(cluster=message.name, backup_id=message.backup_id))
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def list_backups(self, message: api.NameRequest) -> api.BackupList:
        with self.reading() as state:
            cluster = known_cluster(state, message.name)
            return views.backups_view(cluster)

    async def schedule_backups(self, message: api.ScheduleBackupsRequest) -> api.Cluster:
        every, keep = min(message.every_seconds, 2**62), message.keep
        await self._run(cmd.ScheduleBackups(cluster=message.name, every=every, keep=keep))
        return await self.get_cluster(api.NameRequest(name=message.name))

    async def delete_cluster(self, message: api.NameRequest) -> api.CommandReply:
        return api.CommandReply(position=await self._run(cmd.DeleteCluster(name=message.name)))

    async def issue_kubeconfig(self, message: api.IssueKubeconfigRequest) -> api.Kubeconfig:
        command = views.issue_kubeconfig(message)
        outcome = await self.main.call(self._execute, command, *asked())
        (issued,) = outcome.decision.events
        assert outcome.decision.reply is not None
        return api.Kubeconfig(
            kubeconfig=outcome.decision.reply,
            serial=getattr(issued, "serial", ""),
            not_after=getattr(issued, "not_after", ""),
        )

    async def create_join_token(self, message: api.CreateJoinTokenRequest) -> api.JoinToken:
        command = views.create_join_token(message)
        outcome = await self.main.call(self._execute, command, *asked())
        created = outcome.decision.events[-1]
        assert isinstance(created, ev.JoinTokenCreated) and outcome.decision.reply is not None
        with self.reading() as state:
            cluster = state.clusters[created.cluster]
            endpoint = api_server_endpoint(cluster, state.hypervisors) or ""
        pki = await self.main.call(self.service.cluster_pki, created.cluster)
        return api.JoinToken(
            token=outcome.decision.reply,
            id=created.token_id,
            expires_at=created.expires_at,
            endpoint=endpoint,
            ca_cert_hash=public_key_hash(pki.ca.certificate),
            position=outcome.position,
        )

    async def list_join_tokens(self, message: api.NameRequest) -> api.JoinTokenList:
        with self.reading() as state:
            cluster = known_cluster(state, message.name)
            return views.join_tokens_view(cluster, dt.datetime.now(dt.UTC))

    async def list_nodes(self, message: api.NameRequest) -> api.NodeList:
        with self.reading() as state:
            cluster = known_cluster(state, message.name)
            status = self.board.clusters.get(cluster.cluster_id)
            return views.nodes_view(cluster, status, self.board.joins)

    async def remove_node(self, message: api.RemoveNodeRequest) -> api.CommandReply:
        with self.reading() as state:
            cluster = state.clusters.get(message.cluster)
            status = self.board.clusters.get(cluster.cluster_id) if cluster else None
            known = {n.name for n in status.nodes} if status and status.inside else None
            if known is not None and message.node not in known:
                raise GRPCError(
                    Status.NOT_FOUND,
                    f"cluster {shown(message.cluster)} has no node {shown(message.node)} "
                    "('oneinfra node list')",
                )
        command = cmd.RemoveNode(cluster=message.cluster, node=message.node)
        return api.CommandReply(position=await self._run(command))

    async def revoke_join_token(self, message: api.RevokeJoinTokenRequest) -> api.CommandReply:
        command = cmd.RevokeJoinToken(cluster=message.cluster, token_id=message.id)
        return api.CommandReply(position=await self._run(command))

    # -- queries --------------------------------------------------------------------

    async def get_hypervisor(self, message: api.NameRequest) -> api.Hypervisor:
        with self.reading() as state:
            hypervisor = state.hypervisors.get(message.name)
            if hypervisor is None:
                raise GRPCError(Status.NOT_FOUND, f"unknown hypervisor {shown(message.name)}")
            return views.hypervisor_view(hypervisor)

    async def list_hypervisors(self, message: api.ListRequest) -> api.HypervisorList:
        with self.reading() as state:
            hypervisors = sorted(state.hypervisors.items())
            return api.HypervisorList(
                hypervisors=[views.hypervisor_view(h) for _, h in hypervisors]
            )

    async def get_cluster(self, message: api.NameRequest) -> api.Cluster:
        with self.reading() as state:
            cluster = known_cluster(state, message.name)
            shown_cluster = self.cluster_view(cluster)
            shown_cluster.certificates.extend(certificates_view(cluster))
            rotating = cluster.rotation is not None and cluster.rotation.in_progress
        if rotating:
            shown_cluster.ca_rotation.nodes_on_old_ca.extend(
                await self.nodes_on_old_ca(message.name) or []
            )
        return shown_cluster

    async def list_clusters(self, message: api.ListRequest) -> api.ClusterList:
        with self.reading() as state:
            clusters = sorted(state.clusters.items())
            return api.ClusterList(clusters=[self.cluster_view(c) for _, c in clusters])

    async def watch_cluster(
        self, message: api.WatchClusterRequest
    ) -> AsyncIterator[api.ClusterProgress]:
        if message.deleted_at:
            deleted_at = log_position(message.deleted_at, "deleted_at")
            await self.main.call(self.service.wait_position, deleted_at)
        elif message.name not in self.service.state.clusters:
            raise GRPCError(Status.NOT_FOUND, f"unknown cluster {shown(message.name)}")
        last = None
        while True:
            with self.reading():
                progress = self.progress(message)
            if progress != last:
                yield progress
                last = progress
            if progress.gone:
                return
            await self.main.call(self.board_change, WATCH_REFRESH)

    async def board_change(self, seconds: float) -> None:
        """Returns at the board's next change, or after `seconds`."""
        with anyio.move_on_after(seconds):
            await self.board.changed()

    def progress(self, message: api.WatchClusterRequest) -> api.ClusterProgress:
        state = self.service.state
        cluster = state.clusters.get(message.name)
        if not message.deleted_at:
            if cluster is None:
                return api.ClusterProgress(gone=True)
            # Components scaled away that still run somewhere.
            leaving = self.board.remaining(cluster.name, cluster.cluster_id)
            lines = [
                f"{hv}: {component} (leaving)"
                for hv, names in sorted(leaving.items())
                for component in sorted(names)
                if component not in cluster.components
            ]
            return api.ClusterProgress(cluster=self.cluster_view(cluster), remaining=lines)
        cluster_id = message.cluster_id or None
        remaining = self.board.remaining(message.name, cluster_id)
        unobserved = [
            name
            for name in state.hypervisors
            if (health := self.board.hypervisors.get(name)) is None
            or health.observed_position < message.deleted_at
        ]
        lines = [f"{hv}: {', '.join(sorted(c))}" for hv, c in sorted(remaining.items())]
        for name in sorted(unobserved):
            health = self.board.hypervisors.get(name)
            why = f"unreachable: {health.error}" if health and health.error else "not observed yet"
            lines.append(f"{name}: {why}")
        return api.ClusterProgress(gone=not remaining and not unobserved, remaining=lines)

    # -- the audit trail ------------------------------------------------------------

    async def history(self, message: api.HistoryRequest) -> AsyncIterator[api.HistoryEvent]:
        async for event in self.main.stream(self.read_history, message):
            yield event

    async def read_history(self, message: api.HistoryRequest) -> AsyncIterator[api.HistoryEvent]:
        since = parse_time(message.since_time) if message.since_time else None
        events = self.service.history(
            since_position=max(1, log_position(given(message, "since_position", 1), "since")),
            since=since,
            cluster=given(message, "cluster", None),
            hypervisor=given(message, "hypervisor", None),
            follow=message.follow,
        )
        async for record, _ in events:
            yield api.HistoryEvent(
                position=record.position,
                version=record.stream_version,
                type=record.type,
                schema_version=record.schema_version,
                recorded_at=record.recorded_at.isoformat(),
                data_json=record.data.decode(),
                metadata_json=record.metadata.decode(),
                hash=record.hash.hex(),
            )

    async def replay(self, message: api.ReplayRequest) -> api.FleetView:
        at = parse_time(message.time) if message.time else None
        position = given(message, "position", None)
        if position is not None:
            position = log_position(position, "position")
        state, last = await self.main.call(refusals_as_status, self.service.replay(position, at))
        return views.fleet_view(state, last.recorded_at.isoformat() if last else "")

    async def verify_log(self, message: api.VerifyRequest) -> api.VerifyReply:
        anchor = None
        if message.HasField("anchor_position") or message.HasField("anchor_hash"):
            anchor = (
                log_position(message.anchor_position, "anchor position"),
                checked_hash(message.anchor_hash),
            )
        report = await self.main.call(refusals_as_status, self.service.verify(anchor))
        return api.VerifyReply(
            ok=report.ok,
            records_checked=report.records_checked,
            head_position=report.head_position,
            head_hash=report.head_hash,
            first_bad_position=report.first_bad_position,
            reason=report.reason or "",
        )

    async def info(self, message: api.InfoRequest) -> api.InfoReply:
        last = await self.main.call(refusals_as_status, current_term(self.service.store))
        if not self.reconciling:
            role = "not reconciling"
        elif self.leadership is None:
            role = "alone"
        else:
            role = "leading" if self.leadership.term is not None else "standing by"
        reply = api.InfoReply(
            version=__version__,
            store=self.store_name,
            position=self.service.state.position,
            role=role,
        )
        if last is not None:
            term, since_us = last
            reply.term, reply.leader = term.term, term.daemon
            reply.leader_host, reply.leader_pid = term.host, term.pid
            reply.leader_since = dt.datetime.fromtimestamp(since_us / 1e6, dt.UTC).isoformat()
        return reply

    async def log_head(self, message: api.LogHeadRequest) -> api.LogHeadReply:
        record = await self.main.call(refusals_as_status, self.service.head())
        if record is None:
            return api.LogHeadReply(position=0, hash=bytes(32).hex())
        return api.LogHeadReply(
            position=record.position,
            hash=record.hash.hex(),
            recorded_at=record.recorded_at.isoformat(),
        )

    # -- the wire: each call's stream, to the method that answers it ---------------

    async def RegisterHypervisor(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.register_hypervisor)

    async def LabelHypervisor(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.label_hypervisor)

    async def RemoveHypervisor(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.remove_hypervisor)

    async def CreateCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.create_cluster)

    async def ScaleCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.scale_cluster)

    async def EnableVpn(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.enable_vpn)

    async def RenewCertificates(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.renew_certificates)

    async def SetCertificateLifetimes(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.set_certificate_lifetimes)

    async def RotateCA(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.rotate_ca)

    async def DeleteCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.delete_cluster)

    async def IssueKubeconfig(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.issue_kubeconfig)

    async def GetHypervisor(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.get_hypervisor)

    async def ListHypervisors(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.list_hypervisors)

    async def GetCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.get_cluster)

    async def ListClusters(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.list_clusters)

    async def WatchCluster(self, stream: Stream[Any, Any]) -> None:
        await streaming(stream, self.watch_cluster)

    async def History(self, stream: Stream[Any, Any]) -> None:
        await streaming(stream, self.history)

    async def Replay(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.replay)

    async def VerifyLog(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.verify_log)

    async def LogHead(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.log_head)

    async def Info(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.info)

    async def CreateJoinToken(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.create_join_token)

    async def ListJoinTokens(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.list_join_tokens)

    async def RevokeJoinToken(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.revoke_join_token)

    async def ListNodes(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.list_nodes)

    async def RemoveNode(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.remove_node)

    async def BackupCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.backup_cluster)

    async def ListBackups(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.list_backups)

    async def ScheduleBackups(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.schedule_backups)

    async def RestoreCluster(self, stream: Stream[Any, Any]) -> None:
        await unary(stream, self.restore_cluster)


async def unary(stream: Stream[Any, Any], answer: Callable[[Any], Awaitable[Any]]) -> None:
    await stream.send_message(await answer(await request_of(stream)))


async def streaming(stream: Stream[Any, Any], answers: Callable[[Any], AsyncIterator[Any]]) -> None:
    async for reply in answers(await request_of(stream)):
        await stream.send_message(reply)
