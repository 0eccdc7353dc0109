"""The client commands: each a call to the daemon's API, its reply printed
as a table, JSON or YAML. Loaded only for a command that talks to the
daemon (`oneinfra version` never imports this)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..api.pb.oneinfra.v1.fleet_grpc import FleetStub
from ..errors import CommandFailed
from ..paths import chosen_socket
from .applyplan import cluster_manifest, hypervisor_manifest
from .output import as_data, emit, pairs, replies, table
from .parser import key_value
from .progress import wait_gone, wait_ready


def read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise CommandFailed(f"cannot read {path}: {error.strerror}") from None


# -- commands -------------------------------------------------------------------------


Handler = Callable[[FleetStub, argparse.Namespace], Awaitable[None]]
HANDLERS: dict[tuple[str, str | None], Handler] = {}


def handles(command: str, action: str | None = None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(command, action)] = handler
        return handler

    return register


def manifests_out(objects: Sequence[dict[str, Any]]) -> None:
    """-o yaml: the objects as manifests, one document each, as `apply -f`
    reads them (applied again, they change nothing)."""
    import yaml  # only for YAML output

    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))


def show_hypervisors(hypervisors: Sequence[api.Hypervisor], fmt: str, single: bool) -> None:
    if fmt == "yaml":
        manifests_out([hypervisor_manifest(h) for h in hypervisors])
        return
    if fmt != "table":
        data = [as_data(h) for h in hypervisors]
        emit(data[0] if single else data, fmt)
        return
    table(
        ["NAME", "ROLE", "IP", "ENDPOINT", "PORTS", "COMPONENTS", "LABELS"],
        [
            [h.name, h.role, h.ip_address, h.endpoint, f"{h.port_range_low}-{h.port_range_high}",
             len(h.components), pairs(h.labels)]
            for h in hypervisors
        ],
    )  # fmt: skip


def show_clusters(clusters: Sequence[api.Cluster], fmt: str, single: bool) -> None:
    if fmt == "yaml":
        manifests_out([cluster_manifest(c) for c in clusters])
        return
    if fmt != "table":
        data = [as_data(c) for c in clusters]
        emit(data[0] if single else data, fmt)
        return
    if not single:
        table(
            ["NAME", "VERSION", "REPLICAS", "ENDPOINT", "READY"],
            [[c.name, c.kubernetes_version, c.control_plane_replicas, c.api_server_endpoint,
              "yes" if c.status.ready else "no"] for c in clusters],
        )  # fmt: skip
        return
    (c,) = clusters
    print(f"name:          {c.name}")
    print(f"version:       {c.kubernetes_version}")
    print(f"replicas:      {c.control_plane_replicas}")
    print(f"endpoint:      {c.api_server_endpoint}")
    print(f"networks:      services {c.service_cidr}, pods {c.pod_cidr}, dns {c.dns_domain}")
    print(f"ready:         {'yes' if c.status.ready else 'no'}")
    if c.HasField("status"):
        print(f"status:        {c.status.phase}: {c.status.reason}")
    if c.HasField("ca_rotation"):
        print(f"ca rotation:   {rotation_state(c.ca_rotation)}")
    if c.last_backup_at or c.backup_every_seconds:
        scheduled = f"; every {c.backup_every_seconds} s" if c.backup_every_seconds else ""
        print(f"last backup:   {c.last_backup_at or 'none yet'}{scheduled}")
    if c.backup_failure:
        print(f"backup failed: {c.backup_failure}")
    if c.restoring_backup:
        print(f"restoring:     etcd from backup {c.restoring_backup}")
    print()
    table(
        ["COMPONENT", "ROLE", "HYPERVISOR", "PORTS", "PHASE", "REASON"],
        [[x.name, x.role, x.hypervisor, pairs(x.ports), x.phase, x.reason]
         for x in c.components],
    )  # fmt: skip
    if c.certificates:
        print()
        table(
            ["CERTIFICATE", "REPLICA", "EXPIRES", "RENEWS"],
            [[x.file, x.component, x.expires_at, x.renews_at or "(a CA: rotate-ca)"]
             for x in c.certificates],
        )  # fmt: skip


def rotation_state(rotation: api.CARotation) -> str:
    if not rotation.completed_at:
        waiting = (
            f"; still on the old CA: {', '.join(rotation.nodes_on_old_ca)}"
            if rotation.nodes_on_old_ca
            else ""
        )
        return (
            f"prepared {rotation.prepared_at}: old and new CAs trusted; run 'oneinfra node "
            f"rotate-trust' on every worker, then complete it{waiting}"
        )
    key = (
        f"old service-account key retired {rotation.old_key_retired_at}"
        if rotation.old_key_retired_at
        else f"old service-account key accepted until {rotation.old_key_until}"
    )
    return f"prepared {rotation.prepared_at}, completed {rotation.completed_at}; {key}"


def done(reply: api.CommandReply, fmt: str, message: str) -> None:
    if fmt == "table":
        print(f"{message} (log position {reply.position})")
    else:
        emit(as_data(reply), fmt)


@handles("hypervisor", "add")
async def hypervisor_add(stub: FleetStub, args: argparse.Namespace) -> None:
    tls = [args.ca_cert, args.client_cert, args.client_key]
    if any(tls) and not all(tls):
        raise CommandFailed("mutual TLS needs all of --ca-cert, --client-cert and --client-key")
    low, high = args.port_range or (None, None)
    reply = await stub.RegisterHypervisor(
        api.RegisterHypervisorRequest(
            name=args.name,
            endpoint=args.endpoint,
            role=args.role,
            ip_address=args.ip_address,
            port_range_low=low,
            port_range_high=high,
            labels=dict(args.label),
            ca_certificate=read_file(args.ca_cert) if args.ca_cert else "",
            client_certificate=read_file(args.client_cert) if args.client_cert else "",
            client_key=read_file(args.client_key) if args.client_key else "",
            data_dir=args.data_dir or "",
        )
    )
    show_hypervisors([reply], args.output, single=True)


@handles("hypervisor", "list")
async def hypervisor_list(stub: FleetStub, args: argparse.Namespace) -> None:
    show_hypervisors(
        (await stub.ListHypervisors(api.ListRequest())).hypervisors, args.output, False
    )


@handles("hypervisor", "show")
async def hypervisor_show(stub: FleetStub, args: argparse.Namespace) -> None:
    show_hypervisors([await stub.GetHypervisor(api.NameRequest(name=args.name))], args.output, True)


@handles("hypervisor", "label")
async def hypervisor_label(stub: FleetStub, args: argparse.Namespace) -> None:
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for item in args.labels:
        if item.endswith("-") and "=" not in item:
            to_remove.append(item[:-1])
        else:
            try:
                key, value = key_value(item)
            except argparse.ArgumentTypeError as error:
                raise CommandFailed(f"{error} (or K- to remove a label)") from None
            to_set[key] = value
    reply = await stub.LabelHypervisor(
        api.LabelHypervisorRequest(name=args.name, set=to_set, remove=to_remove)
    )
    show_hypervisors([reply], args.output, single=True)


@handles("hypervisor", "remove")
async def hypervisor_remove(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.RemoveHypervisor(api.NameRequest(name=args.name))
    done(reply, args.output, f"hypervisor {args.name} removed")


@handles("cluster", "create")
async def cluster_create(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.CreateCluster(
        api.CreateClusterRequest(
            name=args.name,
            kubernetes_version=args.kubernetes_version,
            control_plane_replicas=args.control_plane_replicas,
            service_cidr=args.service_cidr,
            pod_cidr=args.pod_cidr,
            dns_domain=args.dns_domain,
            apiserver_extra_sans=args.apiserver_extra_san,
            vpn_enabled=args.vpn,
            vpn_cidr=args.vpn_cidr,
            certificate_lifetime_seconds=args.certificate_lifetime,
            ca_lifetime_seconds=args.ca_lifetime,
            from_backup=args.from_backup,
        )
    )
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "list")
async def cluster_list(stub: FleetStub, args: argparse.Namespace) -> None:
    show_clusters((await stub.ListClusters(api.ListRequest())).clusters, args.output, False)


@handles("cluster", "show")
async def cluster_show(stub: FleetStub, args: argparse.Namespace) -> None:
    show_clusters([await stub.GetCluster(api.NameRequest(name=args.name))], args.output, True)


@handles("cluster", "scale")
async def cluster_scale(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.ScaleCluster(
        api.ScaleClusterRequest(name=args.name, control_plane_replicas=args.control_plane_replicas)
    )
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout, args.control_plane_replicas)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "enable-vpn")
async def cluster_enable_vpn(stub: FleetStub, args: argparse.Namespace) -> None:
    request = api.EnableVpnRequest(name=args.name)
    if args.vpn_cidr is not None:
        request.vpn_cidr = args.vpn_cidr
    reply = await stub.EnableVpn(request)
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout, reply.control_plane_replicas)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "renew-certificates")
async def cluster_renew_certificates(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.RenewCertificates(
        api.RenewCertificatesRequest(
            name=args.name, certificates=args.certificate, components=args.component
        )
    )
    show_clusters([reply], args.output, single=True)


@handles("cluster", "set-lifetimes")
async def cluster_set_lifetimes(stub: FleetStub, args: argparse.Namespace) -> None:
    request = api.SetCertificateLifetimesRequest(name=args.name)
    if args.certificate_lifetime is not None:
        request.certificate_lifetime_seconds = args.certificate_lifetime
    if args.ca_lifetime is not None:
        request.ca_lifetime_seconds = args.ca_lifetime
    show_clusters([await stub.SetCertificateLifetimes(request)], args.output, single=True)


@handles("cluster", "rotate-ca")
async def cluster_rotate_ca(stub: FleetStub, args: argparse.Namespace) -> None:
    if args.phase == "status":
        reply = await stub.GetCluster(api.NameRequest(name=args.name))
        if args.output != "table":
            emit(as_data(reply.ca_rotation) if reply.HasField("ca_rotation") else {}, args.output)
        elif reply.HasField("ca_rotation"):
            print(f"cluster {reply.name}: {rotation_state(reply.ca_rotation)}")
        else:
            print(f"cluster {reply.name}: its CAs were never rotated")
        return
    request = api.RotateCARequest(name=args.name, phase=args.phase)
    show_clusters([await stub.RotateCA(request)], args.output, single=True)


def show_backups(backups: Sequence[api.Backup]) -> None:
    table(
        ["ID", "TAKEN", "MEMBER", "REVISION", "KEYS", "SIZE"],
        [[b.id, b.taken_at, b.member, b.revision, b.keys, b.size] for b in backups],
    )


@handles("cluster", "backup")
async def cluster_backup(stub: FleetStub, args: argparse.Namespace) -> None:
    backup = await stub.BackupCluster(api.NameRequest(name=args.name))
    if args.output != "table":
        emit(as_data(backup), args.output)
        return
    show_backups([backup])


@handles("cluster", "backups")
async def cluster_backups(stub: FleetStub, args: argparse.Namespace) -> None:
    listed = await stub.ListBackups(api.NameRequest(name=args.name))
    if args.output != "table":
        emit(as_data(listed), args.output)
        return
    if listed.every_seconds:
        print(f"scheduled every {listed.every_seconds} s, the newest {listed.keep} kept")
    if listed.failure:
        print(f"failing since the last good backup ({listed.failures} times, the latest at "
              f"{listed.failed_at}): {listed.failure}")  # fmt: skip
    if listed.every_seconds or listed.failure:
        print()
    show_backups(listed.backups)


@handles("cluster", "restore")
async def cluster_restore(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.RestoreCluster(
        api.RestoreClusterRequest(name=args.name, backup_id=args.backup)
    )
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "schedule-backups")
async def cluster_schedule_backups(stub: FleetStub, args: argparse.Namespace) -> None:
    every = 0 if args.off else args.every
    reply = await stub.ScheduleBackups(
        api.ScheduleBackupsRequest(name=args.name, every_seconds=every, keep=args.keep)
    )
    if args.output != "table":
        emit(as_data(reply), args.output)
    elif every:
        print(f"cluster {reply.name}: backed up every {every} s, the newest {args.keep} kept")
    else:
        print(f"cluster {reply.name}: no scheduled backups")


@handles("cluster", "delete")
async def cluster_delete(stub: FleetStub, args: argparse.Namespace) -> None:
    cluster_id = ""
    if args.wait:
        cluster_id = (await stub.GetCluster(api.NameRequest(name=args.name))).cluster_id
    reply = await stub.DeleteCluster(api.NameRequest(name=args.name))
    if args.wait:
        await wait_gone(stub, args.name, cluster_id, reply.position, args.timeout)
    done(reply, args.output, f"cluster {args.name} deleted")


@handles("cluster", "kubeconfig")
async def cluster_kubeconfig(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.IssueKubeconfig(
        api.IssueKubeconfigRequest(
            cluster=args.name, user=args.user, groups=args.group, ttl_seconds=args.ttl
        )
    )
    if args.output == "table":
        sys.stdout.write(reply.kubeconfig)  # a kubeconfig is YAML already
    else:
        emit(as_data(reply), args.output)


def token_request(args: argparse.Namespace) -> api.CreateJoinTokenRequest:
    return api.CreateJoinTokenRequest(
        cluster=args.name, ttl_seconds=args.ttl, description=args.description
    )


@handles("cluster", "token")
async def cluster_token(stub: FleetStub, args: argparse.Namespace) -> None:
    if args.token_action == "create":
        token = await stub.CreateJoinToken(token_request(args))
        if args.output == "table":
            print(token.token)
        else:
            emit(as_data(token), args.output)
    elif args.token_action == "list":
        listed = await stub.ListJoinTokens(api.NameRequest(name=args.name))
        if args.output != "table":
            emit([as_data(t) for t in listed.tokens], args.output)
            return
        table(
            ["ID", "EXPIRES", "EXPIRED", "DESCRIPTION"],
            [[t.id, t.expires_at, "yes" if t.expired else "no", t.description or "-"]
             for t in listed.tokens],
        )  # fmt: skip
    else:
        reply = await stub.RevokeJoinToken(
            api.RevokeJoinTokenRequest(cluster=args.name, id=args.token_id)
        )
        done(reply, args.output, f"join token {args.token_id} revoked")


@handles("cluster", "join-command")
async def cluster_join_command(stub: FleetStub, args: argparse.Namespace) -> None:
    """As `kubeadm token create --print-join-command` does."""
    token = await stub.CreateJoinToken(token_request(args))
    endpoint = token.endpoint.removeprefix("https://")
    flags = f"--token {token.token} --discovery-token-ca-cert-hash {token.ca_cert_hash}"
    lines = {"kubeadm": f"kubeadm join {endpoint} {flags}",
             "oneinfra": f"oneinfra node join {endpoint} {flags}"}  # fmt: skip
    if args.output != "table":
        emit({**as_data(token), **lines}, args.output)
        return
    print(lines["oneinfra"])
    print(lines["kubeadm"])


@handles("node", "list")
async def node_list(stub: FleetStub, args: argparse.Namespace) -> None:
    listed = await stub.ListNodes(api.NameRequest(name=args.name))
    if args.output != "table":
        emit([as_data(n) for n in listed.nodes], args.output)
    elif not listed.observed:
        print(f"the daemon has not looked inside cluster {args.name} yet: it is not ready",
              file=sys.stderr)  # fmt: skip
    elif not listed.nodes:
        print(f"cluster {args.name} has no nodes: 'oneinfra cluster join-command "
              f"{args.name}' says how workers join", file=sys.stderr)  # fmt: skip
    else:
        vpn = any(n.vpn_address for n in listed.nodes)
        table(
            ["NAME", "READY", "VERSION", "ADDRESS", "JOINED", "TOKEN",
             *(["VPN HANDSHAKE", "VPN FROM"] if vpn else [])],
            [[n.name, "yes" if n.ready else "no", n.version, n.address, n.joined_at or "-",
              n.token_id or "-",
              *([n.vpn_last_handshake or "never", n.vpn_endpoint or "-"] if vpn else [])]
             for n in listed.nodes],
        )  # fmt: skip


@handles("node", "remove")
async def node_remove(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.RemoveNode(api.RemoveNodeRequest(cluster=args.name, node=args.node))
    done(reply, args.output, f"node {args.node} removed from cluster {args.name}")


def since(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if value.isascii() and value.isdigit():
        return {"since_position": int(value)}
    return {"since_time": value}


SUMMARY_FIELDS = (
    "name", "cluster", "component", "role", "hypervisor", "ports", "kubernetes_version",
    "control_plane_replicas", "endpoint", "ip_address", "labels", "user", "groups", "serial",
    "phase", "reachable", "reason", "error", "token_id", "expires_at", "description", "node",
    "address", "csr", "names", "cidr", "server_address", "server_public_key", "public_key",
    "leaf_lifetime", "ca_lifetime", "completed",
)  # fmt: skip


def summary(data: dict[str, Any]) -> str:
    """The few fields of an event a person scans for; certificates left out
    (renewed ones by their ids)."""
    said = [
        f"{k}={json.dumps(data[k], separators=(',', ':'))}" for k in SUMMARY_FIELDS if k in data
    ]
    for kind in ("cas", "certificates"):
        if isinstance(data.get(kind), dict):
            said.append(f"{kind}={','.join(sorted(data[kind]))}")
    return " ".join(said)


@handles("history")
async def history(stub: FleetStub, args: argparse.Namespace) -> None:
    request = api.HistoryRequest(
        cluster=args.cluster, hypervisor=args.hypervisor, follow=args.follow, **since(args.since)
    )
    if args.output == "table":
        print(f"{'POSITION':>8}  {'RECORDED AT':32}  {'BY':10}  {'EVENT':26}  DETAILS")
    async for event in replies(stub.History, request):
        if args.output == "json":
            print(json.dumps(as_data(event)), flush=True)
            continue
        if args.output == "yaml":
            emit([as_data(event)], "yaml")
            continue
        metadata = json.loads(event.metadata_json or "{}")
        actor = metadata.get("actor") or {}
        by = actor.get("user") or (f"uid {actor['uid']}" if "uid" in actor else "-")
        source = f" (from {metadata['source']})" if metadata.get("source") else ""
        print(
            f"{event.position:>8}  {event.recorded_at:32}  {by:10}  {event.type:26}  "
            f"{summary(json.loads(event.data_json))}{source}",
            flush=True,
        )


@handles("replay")
async def replay(stub: FleetStub, args: argparse.Namespace) -> None:
    at = args.at
    by_position = at.isascii() and at.isdigit()
    request = api.ReplayRequest(position=int(at)) if by_position else api.ReplayRequest(time=at)
    view = await stub.Replay(request)
    if args.output != "table":
        emit(as_data(view), args.output)
        return
    print(f"the desired state at position {view.position} ({view.recorded_at or 'empty log'})\n")
    show_hypervisors(view.hypervisors, "table", single=False)
    print()
    show_clusters(view.clusters, "table", single=False)


@handles("info")
async def info(stub: FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.Info(api.InfoRequest())
    if args.output != "table":
        emit(as_data(reply), args.output)
        return
    print(f"version   {reply.version}")
    print(f"store     {reply.store}")
    print(f"position  {reply.position}")
    print(f"role      {reply.role}")
    if reply.term:
        print(f"leader    {reply.leader} (pid {reply.leader_pid} on {reply.leader_host}), "
              f"term {reply.term} since {reply.leader_since}")  # fmt: skip


@handles("audit", "head")
async def audit_head(stub: FleetStub, args: argparse.Namespace) -> None:
    head = await stub.LogHead(api.LogHeadRequest())
    if args.output != "table":
        emit(as_data(head), args.output)
    else:
        print(f"{head.position}:{head.hash}")


@handles("audit", "verify")
async def audit_verify(stub: FleetStub, args: argparse.Namespace) -> None:
    request = api.VerifyRequest()
    if args.head is not None:
        request = api.VerifyRequest(anchor_position=args.head[0], anchor_hash=args.head[1])
    report = await stub.VerifyLog(request)
    if args.output != "table":
        emit(as_data(report), args.output)
    elif report.ok:
        anchored = f"; it holds the anchor {args.head[0]}" if args.head else ""
        print(f"ok: {report.records_checked} records, head position {report.head_position}, "
              f"head hash {report.head_hash}{anchored}")  # fmt: skip
    if not report.ok:
        where = (
            f"at position {report.first_bad_position}"
            if report.HasField("first_bad_position")
            else "in the file"
        )
        raise CommandFailed(f"the log does not verify {where}: {report.reason}")


async def call(args: argparse.Namespace, handler: Handler) -> None:
    path = chosen_socket(args.socket)
    channel = Channel(path=str(path))
    try:
        await handler(FleetStub(channel), args)
    except BrokenPipeError:
        # Our stdout was closed (e.g. piped into head): not the daemon's fault.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except GRPCError as error:
        raise CommandFailed(error.message or error.status.name) from None
    except (ConnectionError, FileNotFoundError, StreamTerminatedError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if reason == "Connection lost" and path.exists():
            raise CommandFailed(
                f"the oneinfra daemon at {path} closed the connection: it may be at its limit "
                "of open connections (its log says whose)"
            ) from None
        raise CommandFailed(
            f"cannot reach the oneinfra daemon at {path}: {reason} "
            "(is 'oneinfra daemon' running? --socket or ONEINFRA_SOCKET choose another socket)"
        ) from None
    except AttributeError as error:
        # grpclib, on a connection the daemon closes as soon as it opens it
        # (at its limit of connections): its stream has no transport left.
        if "_transport" not in str(error):
            raise
        raise CommandFailed(
            f"the oneinfra daemon at {path} closed the connection at once: it is at its "
            "limit of open connections (its log says whose)"
        ) from None
    finally:
        channel.close()
