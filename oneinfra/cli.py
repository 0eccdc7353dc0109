"""The `oneinfra` command: the daemon, and a client of its socket.

Exit codes: 0 success; 1 a refused command or an unreachable daemon (one
line on stderr says which and why); 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from grpclib.client import Channel
from grpclib.exceptions import GRPCError, StreamTerminatedError

from eventstore import EventStoreError
from eventstore import cli as eventstore_cli

from . import __version__
from .api.oneinfra import v1 as api
from .output import FORMATS, as_data, emit, pairs, table
from .progress import WaitFailed, wait_gone, wait_ready

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CommandFailed(Exception):
    """A one-line reason for exit code 1."""


def socket_path(args: argparse.Namespace) -> Path:
    from .server import default_socket

    chosen = args.socket or os.environ.get("ONEINFRA_SOCKET")
    return Path(chosen) if chosen else default_socket()


# -- argument types -------------------------------------------------------------------


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW-HIGH, e.g. 30000-32767")
    return int(low), int(high)


def duration(text: str) -> int:
    match = DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 24h or 7d")
    return int(match.group(1)) * UNITS[match.group(2)]


def read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise CommandFailed(f"cannot read {path}: {error.strerror}") from None


# -- the parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket", help="the daemon's socket (default: $ONEINFRA_SOCKET, then a default)"
    )
    common.add_argument("-o", "--output", choices=FORMATS, default="table")

    parser = argparse.ArgumentParser(
        prog="oneinfra", description="Isolated Kubernetes control planes on CRI hypervisors."
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    daemon = top.add_parser("daemon", help="run the daemon")
    daemon.add_argument("--state-dir", type=Path, help="where the event store and keys live")
    daemon.add_argument("--socket", type=Path, help="the Unix socket to serve on")
    daemon.add_argument("--socket-group", help="let this group use the socket (mode 0660)")
    daemon.add_argument(
        "--master-key", type=Path, help="the master key file (default: in the state dir)"
    )
    daemon.add_argument(
        "--resync", type=float, default=30.0, metavar="SECONDS",
        help="seconds between passes over a converged fleet (default 30)",
    )  # fmt: skip
    daemon.add_argument(
        "--no-reconcile", action="store_true", help="keep the log only; touch no hypervisor"
    )

    hypervisor = top.add_parser("hypervisor", help="register and inspect hypervisors")
    hv = hypervisor.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = hv.add_parser("add", parents=[common], help="register a hypervisor")
    add.add_argument("name")
    add.add_argument("--endpoint", required=True, help="unix:///path or tcp://host:port")
    add.add_argument("--ip-address", required=True)
    role = add.add_mutually_exclusive_group(required=True)
    role.add_argument("--public", dest="role", action="store_const", const="public")
    role.add_argument("--private", dest="role", action="store_const", const="private")
    add.add_argument("--port-range", type=port_range, help="LOW-HIGH (default 30000-32767)")
    add.add_argument("--ca-cert")
    add.add_argument("--client-cert")
    add.add_argument("--client-key")
    add.add_argument("--label", type=key_value, action="append", default=[], metavar="K=V")
    add.add_argument(
        "--data-dir", help="on the hypervisor: components' files and data (/var/lib/oneinfra)"
    )
    hv.add_parser("list", parents=[common])
    hv.add_parser("show", parents=[common]).add_argument("name")
    label = hv.add_parser("label", parents=[common], help="set K=V, remove K-")
    label.add_argument("name")
    label.add_argument("labels", nargs="+", metavar="K=V|K-")
    hv.add_parser("remove", parents=[common]).add_argument("name")

    cluster = top.add_parser("cluster", help="create and manage clusters")
    cl = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = cl.add_parser("create", parents=[common])
    create.add_argument("name")
    create.add_argument("--kubernetes-version")
    create.add_argument("--control-plane-replicas", type=int)
    create.add_argument("--service-cidr")
    create.add_argument("--pod-cidr")
    create.add_argument("--dns-domain")
    create.add_argument("--apiserver-extra-san", action="append", default=[], metavar="SAN")
    create.add_argument("--vpn", action="store_true", default=None, help="enable the VPN")
    create.add_argument("--vpn-cidr")
    waits(create, "ready")
    cl.add_parser("list", parents=[common])
    cl.add_parser("show", parents=[common]).add_argument("name")
    scale = cl.add_parser("scale", parents=[common])
    scale.add_argument("name")
    scale.add_argument("--control-plane-replicas", type=int, required=True)
    waits(scale, "ready with its new replicas")
    delete = cl.add_parser("delete", parents=[common])
    delete.add_argument("name")
    waits(delete, "gone from every hypervisor")
    kubeconfig = cl.add_parser("kubeconfig", parents=[common], help="print a new kubeconfig")
    kubeconfig.add_argument("name")
    kubeconfig.add_argument("--user")
    kubeconfig.add_argument("--group", action="append", default=[])
    kubeconfig.add_argument("--ttl", type=duration, help="e.g. 24h (default), 30m, 7d")

    history = top.add_parser("history", parents=[common], help="the log of decisions")
    which = history.add_mutually_exclusive_group()
    which.add_argument("--cluster")
    which.add_argument("--hypervisor")
    history.add_argument("--since", help="a log position or an RFC 3339 time")
    history.add_argument("--follow", action="store_true")

    replay = top.add_parser(
        "replay", parents=[common], help="the desired state at a point of the log"
    )
    replay.add_argument("--at", required=True, help="a log position or an RFC 3339 time")

    audit = top.add_parser("audit", help="check the log")
    audit.add_subparsers(dest="action", required=True).add_parser("verify", parents=[common])

    top.add_parser("version", help="print the version")
    store = top.add_parser("eventstore", help="inspect and verify an event store file offline")
    eventstore_cli.add_commands(store)
    return parser


def waits(parser: argparse.ArgumentParser, until: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"return once the cluster is {until}")
    parser.add_argument(
        "--timeout", type=duration, default=300, help="how long --wait waits (default 5m)"
    )


# -- commands -------------------------------------------------------------------------


Handler = Callable[[api.FleetStub, argparse.Namespace], Awaitable[None]]
HANDLERS: dict[tuple[str, str | None], Handler] = {}


def handles(command: str, action: str | None = None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(command, action)] = handler
        return handler

    return register


def show_hypervisors(hypervisors: Sequence[api.Hypervisor], fmt: str, single: bool) -> None:
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
    if fmt != "table":
        data = [as_data(c) for c in clusters]
        emit(data[0] if single else data, fmt)
        return
    if not single:
        table(
            ["NAME", "VERSION", "REPLICAS", "ENDPOINT", "READY"],
            [[c.name, c.kubernetes_version, c.control_plane_replicas, c.api_server_endpoint,
              "yes" if c.status and c.status.ready else "no"] for c in clusters],
        )  # fmt: skip
        return
    (c,) = clusters
    print(f"name:          {c.name}")
    print(f"version:       {c.kubernetes_version}")
    print(f"replicas:      {c.control_plane_replicas}")
    print(f"endpoint:      {c.api_server_endpoint}")
    print(f"networks:      services {c.service_cidr}, pods {c.pod_cidr}, dns {c.dns_domain}")
    print(f"ready:         {'yes' if c.status and c.status.ready else 'no'}")
    if c.status:
        print(f"status:        {c.status.phase}: {c.status.reason}")
    print()
    table(
        ["COMPONENT", "ROLE", "HYPERVISOR", "PORTS", "PHASE", "REASON"],
        [[x.name, x.role, x.hypervisor, pairs(x.ports), x.phase, x.reason]
         for x in c.components],
    )  # fmt: skip


def done(reply: api.CommandReply, fmt: str, message: str) -> None:
    if fmt == "table":
        print(f"{message} (log position {reply.position})")
    else:
        emit(as_data(reply), fmt)


@handles("hypervisor", "add")
async def hypervisor_add(stub: api.FleetStub, args: argparse.Namespace) -> None:
    tls = [args.ca_cert, args.client_cert, args.client_key]
    if any(tls) and not all(tls):
        raise CommandFailed("mutual TLS needs all of --ca-cert, --client-cert and --client-key")
    low, high = args.port_range or (None, None)
    reply = await stub.register_hypervisor(
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
async def hypervisor_list(stub: api.FleetStub, args: argparse.Namespace) -> None:
    show_hypervisors(
        (await stub.list_hypervisors(api.ListRequest())).hypervisors, args.output, False
    )


@handles("hypervisor", "show")
async def hypervisor_show(stub: api.FleetStub, args: argparse.Namespace) -> None:
    show_hypervisors(
        [await stub.get_hypervisor(api.NameRequest(name=args.name))], args.output, True
    )


@handles("hypervisor", "label")
async def hypervisor_label(stub: api.FleetStub, args: argparse.Namespace) -> None:
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
    reply = await stub.label_hypervisor(
        api.LabelHypervisorRequest(name=args.name, set=to_set, remove=to_remove)
    )
    show_hypervisors([reply], args.output, single=True)


@handles("hypervisor", "remove")
async def hypervisor_remove(stub: api.FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.remove_hypervisor(api.NameRequest(name=args.name))
    done(reply, args.output, f"hypervisor {args.name} removed")


@handles("cluster", "create")
async def cluster_create(stub: api.FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.create_cluster(
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
        )
    )
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "list")
async def cluster_list(stub: api.FleetStub, args: argparse.Namespace) -> None:
    show_clusters((await stub.list_clusters(api.ListRequest())).clusters, args.output, False)


@handles("cluster", "show")
async def cluster_show(stub: api.FleetStub, args: argparse.Namespace) -> None:
    show_clusters([await stub.get_cluster(api.NameRequest(name=args.name))], args.output, True)


@handles("cluster", "scale")
async def cluster_scale(stub: api.FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.scale_cluster(
        api.ScaleClusterRequest(name=args.name, control_plane_replicas=args.control_plane_replicas)
    )
    if args.wait:
        reply = await wait_ready(stub, args.name, args.timeout, args.control_plane_replicas)
    show_clusters([reply], args.output, single=True)


@handles("cluster", "delete")
async def cluster_delete(stub: api.FleetStub, args: argparse.Namespace) -> None:
    cluster_id = ""
    if args.wait:
        cluster_id = (await stub.get_cluster(api.NameRequest(name=args.name))).cluster_id
    reply = await stub.delete_cluster(api.NameRequest(name=args.name))
    if args.wait:
        await wait_gone(stub, args.name, cluster_id, reply.position, args.timeout)
    done(reply, args.output, f"cluster {args.name} deleted")


@handles("cluster", "kubeconfig")
async def cluster_kubeconfig(stub: api.FleetStub, args: argparse.Namespace) -> None:
    reply = await stub.issue_kubeconfig(
        api.IssueKubeconfigRequest(
            cluster=args.name, user=args.user, groups=args.group, ttl_seconds=args.ttl
        )
    )
    if args.output == "table":
        sys.stdout.write(reply.kubeconfig)  # a kubeconfig is YAML already
    else:
        emit(as_data(reply), args.output)


def since(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if value.isdigit():
        return {"since_position": int(value)}
    return {"since_time": value}


SUMMARY_FIELDS = (
    "name", "cluster", "component", "role", "hypervisor", "ports", "kubernetes_version",
    "control_plane_replicas", "endpoint", "ip_address", "labels", "user", "groups", "serial",
    "phase", "reachable", "reason", "error",
)  # fmt: skip


def summary(data: dict[str, Any]) -> str:
    """The few fields of an event a person scans for; certificates left out."""
    return " ".join(
        f"{k}={json.dumps(data[k], separators=(',', ':'))}" for k in SUMMARY_FIELDS if k in data
    )


@handles("history")
async def history(stub: api.FleetStub, args: argparse.Namespace) -> None:
    request = api.HistoryRequest(
        cluster=args.cluster, hypervisor=args.hypervisor, follow=args.follow, **since(args.since)
    )
    if args.output == "table":
        print(f"{'POSITION':>8}  {'RECORDED AT':32}  {'BY':10}  {'EVENT':26}  DETAILS")
    async for event in stub.history(request):
        if args.output == "json":
            print(json.dumps(as_data(event)), flush=True)
            continue
        if args.output == "yaml":
            emit([as_data(event)], "yaml")
            continue
        actor = json.loads(event.metadata_json or "{}").get("actor") or {}
        by = actor.get("user") or (f"uid {actor['uid']}" if "uid" in actor else "-")
        print(
            f"{event.position:>8}  {event.recorded_at:32}  {by:10}  {event.type:26}  "
            f"{summary(json.loads(event.data_json))}",
            flush=True,
        )


@handles("replay")
async def replay(stub: api.FleetStub, args: argparse.Namespace) -> None:
    at = args.at
    request = api.ReplayRequest(position=int(at)) if at.isdigit() else api.ReplayRequest(time=at)
    view = await stub.replay(request)
    if args.output != "table":
        emit(as_data(view), args.output)
        return
    print(f"the desired state at position {view.position} ({view.recorded_at or 'empty log'})\n")
    show_hypervisors(view.hypervisors, "table", single=False)
    print()
    show_clusters(view.clusters, "table", single=False)


@handles("audit", "verify")
async def audit_verify(stub: api.FleetStub, args: argparse.Namespace) -> None:
    report = await stub.verify_log(api.VerifyRequest())
    if args.output != "table":
        emit(as_data(report), args.output)
    elif report.ok:
        print(f"ok: {report.records_checked} records, head position {report.head_position}, "
              f"head hash {report.head_hash}")  # fmt: skip
    if not report.ok:
        where = (
            f"at position {report.first_bad_position}"
            if report.first_bad_position is not None
            else "in the file"
        )
        raise CommandFailed(f"the log does not verify {where}: {report.reason}")


async def call(args: argparse.Namespace, handler: Handler) -> None:
    path = socket_path(args)
    channel = Channel(path=str(path))
    try:
        await handler(api.FleetStub(channel), args)
    except BrokenPipeError:
        # Our stdout was closed (e.g. piped into head): not the daemon's fault.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except GRPCError as error:
        raise CommandFailed(error.message or error.status.name) from None
    except WaitFailed as error:
        raise CommandFailed(str(error)) from None
    except (ConnectionError, FileNotFoundError, StreamTerminatedError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise CommandFailed(
            f"cannot reach the oneinfra daemon at {path}: {reason} "
            "(is 'oneinfra daemon' running? --socket or ONEINFRA_SOCKET choose another socket)"
        ) from None
    finally:
        channel.close()


def run_daemon(args: argparse.Namespace) -> int:
    from .controller import Options
    from .secrets import SecretsError
    from .server import DaemonError, announce, default_state_dir, serve

    if args.resync <= 0:
        print("oneinfra daemon: --resync must be a positive number of seconds", file=sys.stderr)
        return EXIT_USAGE

    state_dir = args.state_dir or default_state_dir()
    socket = socket_path(args)  # the same rule as every client command
    try:
        anyio.run(
            lambda: serve(
                state_dir,
                socket,
                socket_group=args.socket_group,
                master_key=args.master_key,
                on_ready=announce(state_dir, socket),
                reconcile=None if args.no_reconcile else Options(resync=args.resync),
            )
        )
    except (DaemonError, SecretsError, EventStoreError, OSError) as error:
        print(f"oneinfra daemon: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"oneinfra {__version__}")
        return EXIT_OK
    if args.command == "eventstore":
        return eventstore_cli.run(args, "oneinfra eventstore")
    if args.command == "daemon":
        return run_daemon(args)
    handler = HANDLERS[(args.command, getattr(args, "action", None))]
    try:
        anyio.run(call, args, handler)
    except CommandFailed as error:
        print(f"oneinfra: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
