"""The command line: every command, option and help line of `oneinfra`.

Building it imports nothing but argparse (paths stay strings here):
`oneinfra version` and the shell's completion build it on every run.
"""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("table", "json", "yaml")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 2**32 - 1  # seconds: the API's field is 32 bits wide
MAX_POSITION = 2**63 - 1  # the log's positions are 64-bit signed integers


# -- argument types -------------------------------------------------------------------


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or len(low) > 5 or len(high) > 5:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW-HIGH, e.g. 30000-32767")
    return int(low), int(high)


def duration(text: str) -> int:
    number, unit = text[:-1], text[-1:]
    if not (number.isascii() and number.isdigit()) or unit not in UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 24h or 7d")
    seconds = int(number) * UNITS[unit]
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_DURATION} seconds")
    return seconds


def count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 999")
    return int(text)


def anchor(text: str) -> tuple[int, str]:
    """POS:HASH, as `oneinfra audit head` prints it."""
    position, sep, digest = text.partition(":")
    if not sep or not (position.isascii() and position.isdigit()) or int(position) < 1:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not POS:HASH (e.g. 42:9f86d0...)")
    if int(position) > MAX_POSITION or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not POS:HASH with a 64-digit hash")
    return int(position), digest


def position_or_time(text: str) -> str:
    """A log position (digits, within the log's range) or an RFC 3339 time,
    checked by the daemon."""
    if text.isascii() and text.isdigit() and int(text) > MAX_POSITION:
        raise argparse.ArgumentTypeError(f"position {text[:20]}... is beyond any log")
    return text


# -- the parser -----------------------------------------------------------------------


class Groups:
    """Sub-command groups that list their commands, each with its help line."""

    def __init__(self, parser: argparse.ArgumentParser, dest: str, title: str) -> None:
        self.actions = parser.add_subparsers(
            dest=dest, required=True, metavar=title.upper(), title=f"{title}s"
        )
        self.client_options = client_options()

    def add(
        self, name: str, help: str, *, client: bool = True, **kwargs: Any
    ) -> argparse.ArgumentParser:
        parents = [self.client_options] if client else []
        return self.actions.add_parser(
            name, help=help, description=help[:1].upper() + help[1:] + ".", parents=parents,
            **kwargs,
        )  # fmt: skip


def client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's socket (default: $ONEINFRA_SOCKET, then /run/oneinfra/oneinfra.sock "
        "as root)",
    )
    common.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="table (default), json or yaml"
    )
    return common


def named(parser: argparse.ArgumentParser, kind: str, help: str | None = None) -> None:
    """The NAME of a cluster or hypervisor, completed from the daemon."""
    action = parser.add_argument("name", metavar="NAME", help=help or f"the {kind}'s name")
    action.names_of = kind  # type: ignore[attr-defined]  # completed by completion.py


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneinfra",
        description="Isolated Kubernetes control planes on CRI hypervisors, with an auditable "
        "event log.",
    )
    top = Groups(parser, "command", "command")

    daemon = top.add("daemon", "run the daemon: the API on a Unix socket and the reconciler",
                     client=False)  # fmt: skip
    daemon.add_argument(
        "--state-dir", metavar="DIR",
        help="where the event log and keys live (default /var/lib/oneinfra as root)",
    )  # fmt: skip
    daemon.add_argument(
        "--store", metavar="URL",
        help="the event log: a postgresql:// URL, or a file (default: events.db in the state "
        "directory; also $ONEINFRA_STORE)",
    )  # fmt: skip
    daemon.add_argument("--socket", metavar="PATH", help="the Unix socket to serve on")
    daemon.add_argument(
        "--socket-group", metavar="GROUP", help="let this group use the socket (mode 0660)"
    )
    daemon.add_argument(
        "--master-key", metavar="FILE",
        help="the master key file (default: master.key in the state directory)",
    )  # fmt: skip
    daemon.add_argument(
        "--resync", type=float, default=30.0, metavar="SECONDS",
        help="seconds between passes over a converged fleet (default 30)",
    )  # fmt: skip
    daemon.add_argument(
        "--no-reconcile", action="store_true", help="keep the log only; touch no hypervisor"
    )
    daemon.add_argument(
        "--metrics-address", metavar="HOST:PORT",
        help="serve Prometheus metrics (/metrics) and /healthz there (off by default; "
        ":PORT is loopback's)",
    )  # fmt: skip
    daemon.add_argument(
        "--backup-dir", metavar="DIR",
        help="where clusters' backups are kept, sealed (default: backups in the state directory)",
    )  # fmt: skip
    daemon.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="text (readable, the default) or json: one object a line, with the cluster's "
        "and hypervisor's names as fields",
    )  # fmt: skip

    service = Groups(top.add("service", "run the daemon as a systemd service", client=False),
                     "action", "action")  # fmt: skip
    unit = service.add("unit", "print the systemd unit (Type=notify, with a watchdog)",
                       client=False)  # fmt: skip
    install = service.add("install", "write the systemd unit where systemd reads it",
                          client=False)  # fmt: skip
    for each in (unit, install):
        each.add_argument(
            "--state-dir", metavar="DIR", default="/var/lib/oneinfra",
            help="the daemon's state directory (default /var/lib/oneinfra)",
        )  # fmt: skip
        each.add_argument("daemon_args", nargs=argparse.REMAINDER, metavar="-- DAEMON-OPTION",
                          help="more options for `oneinfra daemon`, after --")  # fmt: skip
    install.add_argument(
        "--unit-dir", metavar="DIR", default="/etc/systemd/system",
        help="where to write oneinfra.service (default /etc/systemd/system)",
    )  # fmt: skip

    hypervisors(top.add("hypervisor", "register and inspect hypervisors", client=False))
    clusters(top.add("cluster", "create, scale, inspect and delete clusters", client=False))
    nodes(top.add("node", "worker nodes: join this machine to a cluster, list a cluster's",
                  client=False))  # fmt: skip

    for verb, what in (
        ("apply", "bring the fleet to manifests: create, scale, label, enable the VPN, ..."),
        ("delete", "delete the clusters and remove the hypervisors that manifests describe"),
    ):
        manifest = top.add(verb, what)
        manifest.add_argument(
            "-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
            help="a YAML file (several documents), a directory of them (recursively) or - "
            "for stdin (repeatable)",
        )  # fmt: skip
        manifest.add_argument(
            "--dry-run", action="store_true",
            help="print what would be sent, and the changes, sending nothing",
        )  # fmt: skip
        manifest.add_argument(
            "--map-version", action="append", default=[], metavar="FROM=TO",
            help="the original oneinfra's Kubernetes version FROM applied as TO "
            "(e.g. 1.18.2=v1.37.2; repeatable)",
        )  # fmt: skip

    history = top.add("history", "the log of decisions and observations, oldest first")
    which = history.add_mutually_exclusive_group()
    which.add_argument("--cluster", metavar="NAME", help="only what concerns this cluster")
    which.add_argument("--hypervisor", metavar="NAME", help="only what concerns this hypervisor")
    history.add_argument(
        "--since", type=position_or_time, metavar="POS|TIME",
        help="from a log position or an RFC 3339 time",
    )  # fmt: skip
    history.add_argument("--follow", action="store_true", help="go on printing new events")

    replay = top.add("replay", "the desired state at a point of the log")
    replay.add_argument(
        "--at", required=True, type=position_or_time, metavar="POS|TIME",
        help="a log position or an RFC 3339 time",
    )  # fmt: skip

    audit = Groups(top.add("audit", "check the log", client=False), "action", "action")
    verify = audit.add("verify", "walk the log's hash chain and say where it breaks, if it does")
    verify.add_argument(
        "--head", type=anchor, metavar="POS:HASH",
        help="a head kept elsewhere ('audit head'): the log must still hold it, uncut",
    )  # fmt: skip
    audit.add("head", "the log's last position and hash: keep them away from this host")

    local(top.add("local", "local hypervisors on this machine, for trying oneinfra out",
                  client=False))  # fmt: skip

    completion = top.add("completion", "print the shell code of tab completion", client=False)
    completion.add_argument(
        "shell", choices=("bash", "zsh"),
        help="bash: eval \"$(oneinfra completion bash)\"; zsh: the same with zsh",
    )  # fmt: skip
    top.add("info", "the daemon: its version, its store, its place in the log, who leads")
    top.add("schema", "print the JSON Schema of oneinfra's manifests (apply -f), for editors",
            client=False)  # fmt: skip
    top.add("version", "print the version", client=False)
    top.add("eventstore", "inspect and verify an event store file, without the daemon",
            client=False, add_help=False)  # fmt: skip
    return parser


def hypervisors(parser: argparse.ArgumentParser) -> None:
    hv = Groups(parser, "action", "action")
    add = hv.add("add", "register a hypervisor")
    add.add_argument("name", metavar="NAME", help="a DNS label, unique in the fleet")
    add.add_argument("--endpoint", required=True, help="its CRI: unix:///path or tcp://host:port")
    add.add_argument(
        "--ip-address", required=True, metavar="IP", help="where clusters' components listen"
    )
    role = add.add_mutually_exclusive_group(required=True)
    role.add_argument(
        "--public", dest="role", action="store_const", const="public",
        help="it holds ingresses: reachable by users and workers",
    )  # fmt: skip
    role.add_argument(
        "--private", dest="role", action="store_const", const="private",
        help="it holds control planes",
    )  # fmt: skip
    add.add_argument(
        "--port-range", type=parse_port_range, metavar="LOW-HIGH",
        help="host ports components may take (default 30000-32767)",
    )  # fmt: skip
    add.add_argument("--ca-cert", metavar="FILE", help="tcp://: the CA of its CRI's certificate")
    add.add_argument("--client-cert", metavar="FILE", help="tcp://: our client certificate")
    add.add_argument("--client-key", metavar="FILE", help="tcp://: our client key")
    add.add_argument(
        "--label", type=key_value, action="append", default=[], metavar="K=V",
        help="a label (repeatable)",
    )  # fmt: skip
    add.add_argument(
        "--data-dir", metavar="DIR",
        help="on the hypervisor: components' files and data (default /var/lib/oneinfra)",
    )  # fmt: skip
    hv.add("list", "every hypervisor")
    named(hv.add("show", "one hypervisor"), "hypervisor")
    label = hv.add("label", "set labels (K=V) and remove them (K-)")
    named(label, "hypervisor")
    label.add_argument("labels", nargs="+", metavar="K=V|K-", help="a label to set or remove")
    named(hv.add("remove", "take a hypervisor out of the fleet (it must hold nothing)"),
          "hypervisor")  # fmt: skip


def clusters(parser: argparse.ArgumentParser) -> None:
    cl = Groups(parser, "action", "action")
    create = cl.add("create", "create a cluster: its PKI, placement and components")
    create.add_argument("name", metavar="NAME", help="a DNS label, unique in the fleet")
    create.add_argument(
        "--kubernetes-version", metavar="V", help="e.g. v1.37.2 (default: the newest supported)"
    )
    create.add_argument(
        "--control-plane-replicas", type=count, metavar="N", help="1, 3, 5 or 7 (default 1)"
    )
    create.add_argument("--service-cidr", metavar="CIDR", help="default 10.96.0.0/12")
    create.add_argument("--pod-cidr", metavar="CIDR", help="default 10.244.0.0/16")
    create.add_argument("--dns-domain", metavar="DOMAIN", help="default cluster.local")
    create.add_argument(
        "--apiserver-extra-san", action="append", default=[], metavar="SAN",
        help="another name or address of the API server's certificate (repeatable)",
    )  # fmt: skip
    create.add_argument(
        "--vpn", action="store_true", default=None, help="enable the VPN for edge workers"
    )
    create.add_argument("--vpn-cidr", metavar="CIDR", help="the VPN's network")
    create.add_argument(
        "--certificate-lifetime", type=duration, metavar="DURATION",
        help="what its leaf certificates are good for: renewed at 2/3 of it (default 365d)",
    )  # fmt: skip
    create.add_argument(
        "--ca-lifetime", type=duration, metavar="DURATION", help="its CAs' (default 3650d)"
    )
    create.add_argument(
        "--from-backup", metavar="CLUSTER/BACKUP", default="",
        help="a clone: its etcd restored from that cluster's backup, with a PKI of its own",
    )  # fmt: skip
    waits(create, "ready")
    cl.add("list", "every cluster, and whether it is ready")
    named(cl.add("show", "one cluster: its components, where they run, their phases"), "cluster")
    scale = cl.add("scale", "change the number of control-plane replicas")
    named(scale, "cluster")
    scale.add_argument(
        "--control-plane-replicas", type=count, required=True, metavar="N", help="1, 3, 5 or 7"
    )
    waits(scale, "ready with its new replicas")
    vpn = cl.add(
        "enable-vpn", "start the cluster's VPN for edge workers (its server, beside the ingress)"
    )
    named(vpn, "cluster")
    vpn.add_argument(
        "--vpn-cidr", metavar="CIDR", help="the VPN's network (default: the cluster's)"
    )
    waits(vpn, "ready with its VPN server")
    renew = cl.add(
        "renew-certificates", "issue leaf certificates again now, from the same CAs (rolled out)"
    )
    named(renew, "cluster")
    renew.add_argument(
        "--certificate", action="append", default=[], metavar="NAME",
        help="kubeadm's name: apiserver, admin.conf, etcd/server, ... (repeatable; default all)",
    )  # fmt: skip
    renew.add_argument(
        "--component", action="append", default=[], metavar="REPLICA",
        help="a control-plane replica: its etcd member's certificates (repeatable)",
    )  # fmt: skip
    lifetimes = cl.add(
        "set-lifetimes",
        "change what its certificates are good for: leaves from their next renewal on",
    )
    named(lifetimes, "cluster")
    lifetimes.add_argument(
        "--certificate-lifetime", type=duration, metavar="DURATION", help="its leaf certificates'"
    )
    lifetimes.add_argument("--ca-lifetime", type=duration, metavar="DURATION", help="its CAs'")
    rotate = cl.add(
        "rotate-ca",
        "replace its CAs and service-account key in two phases, no client breaking between",
    )
    named(rotate, "cluster")
    rotate.add_argument(
        "--phase", required=True, choices=["prepare", "complete", "status"],
        help="prepare: new CAs trusted beside the old, every certificate from the new; "
        "complete: the old ones dropped; status: where the rotation is",
    )  # fmt: skip
    named(cl.add("backup", "take a backup of its etcd now, sealed with the cluster's key"),
          "cluster")  # fmt: skip
    named(cl.add("backups", "its backups, oldest first, and their schedule"), "cluster")
    restore = cl.add("restore", "rebuild its etcd from a backup: every member, the same PKI")
    named(restore, "cluster")
    restore.add_argument("--backup", required=True, metavar="ID",
                         help="the backup's id ('oneinfra cluster backups NAME')")  # fmt: skip
    waits(restore, "ready on the restored data")
    schedule = cl.add("schedule-backups", "back it up every so often, keeping the newest")
    named(schedule, "cluster")
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=duration, metavar="DURATION",
                      help="between backups: 1h, 30m, 1d (at least 1m)")  # fmt: skip
    when.add_argument("--off", action="store_true", help="no scheduled backups (those taken stay)")
    schedule.add_argument("--keep", type=count, default=24, metavar="N",
                          help="backups kept, the older pruned (default 24)")  # fmt: skip
    delete = cl.add("delete", "delete a cluster and its keys (its history stays)")
    named(delete, "cluster")
    waits(delete, "gone from every hypervisor")
    kubeconfig = cl.add("kubeconfig", "print a new kubeconfig for a person (recorded)")
    named(kubeconfig, "cluster")
    kubeconfig.add_argument("--user", help="the certificate's user (default admin)")
    kubeconfig.add_argument(
        "--group", action="append", default=[],
        help="a group (repeatable; default system:masters)",
    )  # fmt: skip
    kubeconfig.add_argument("--ttl", type=duration, help="e.g. 24h (default), 30m, 7d")
    tokens = Groups(
        cl.add("token", "bootstrap tokens that let workers join a cluster", client=False),
        "token_action", "action",
    )  # fmt: skip
    create_token = tokens.add("create", "a new token; its secret is printed once")
    named(create_token, "cluster")
    join_options(create_token)
    named(tokens.add("list", "a cluster's tokens: id, expiry, description"), "cluster")
    revoke = tokens.add("revoke", "revoke a token: workers can no longer join with it")
    named(revoke, "cluster")
    revoke.add_argument("token_id", metavar="ID", help="the token's id (its first 6 characters)")
    join = cl.add("join-command", "a new token, and the commands a worker joins with")
    named(join, "cluster")
    join_options(join)


def join_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ttl", type=duration, help="how long it lets workers join (default 24h)")
    parser.add_argument("--description", help="what the token is for, for whoever lists them")


def nodes(parser: argparse.ArgumentParser) -> None:
    """Run on the worker, as root: no daemon is asked."""
    no = Groups(parser, "action", "action")
    join = no.add("join", "join this machine to a cluster (what kubeadm join takes)",
                  client=False)  # fmt: skip
    join_inputs(join)
    join.add_argument("--kubelet", metavar="PATH", help="the kubelet binary (default: on PATH)")
    join.add_argument(
        "--discovery-timeout", type=duration, default=60, metavar="DURATION",
        help="how long to wait for the cluster to sign for the token (default 60s)",
    )  # fmt: skip
    join.add_argument(
        "--foreground", action="store_true",
        help="exec the kubelet here instead of a systemd unit (where systemd does not run)",
    )  # fmt: skip
    join.add_argument(
        "--vpn", action="store_true",
        help="refuse a cluster without a VPN (one that has it is joined over it anyway)",
    )  # fmt: skip
    join.add_argument(
        "--vpn-timeout", type=duration, default=60, metavar="DURATION",
        help="how long to wait for the daemon to grant this worker's VPN key (default 60s)",
    )  # fmt: skip
    rotate = no.add(
        "rotate-trust",
        "this worker's side of a CA rotation, between its prepare and complete: the new CAs "
        "trusted, a client certificate of the new CA, the kubelet restarted",
        client=False,
    )
    rotate.add_argument(
        "--no-restart", action="store_true",
        help="leave the kubelet's restart to the caller (where systemd does not run it)",
    )  # fmt: skip
    for target in (join, no.add("reset", "remove what 'node join' wrote", client=False), rotate):
        machine_options(target)
    named(no.add("list", "a cluster's nodes: Ready, version, address, when and by which token "
                         "they joined"), "cluster")  # fmt: skip
    remove = no.add("remove", "delete a node from its cluster (stop its kubelet first: "
                              "'oneinfra node reset' on it)")  # fmt: skip
    named(remove, "cluster")
    remove.add_argument("node", metavar="NODE", help="the node's name")


def join_inputs(parser: argparse.ArgumentParser) -> None:
    """What a join takes, as `kubeadm join` takes it."""
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the cluster's ingress, host:port")
    parser.add_argument("--token", required=True, help="a join token, abcdef.0123456789abcdef")
    parser.add_argument(
        "--discovery-token-ca-cert-hash", dest="ca_cert_hash", action="append", required=True,
        metavar="sha256:HASH", help="the cluster CA's public key hash (repeatable)",
    )  # fmt: skip


def machine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", help="the Node's name (default: the hostname)")
    parser.add_argument("--node-ip", metavar="IP", help="the address the node is reached at")
    parser.add_argument(
        "--cri-socket", default="unix:///run/containerd/containerd.sock", metavar="URI",
        help="the container runtime (default unix:///run/containerd/containerd.sock)",
    )  # fmt: skip
    parser.add_argument(
        "--config-dir", default="/etc/kubernetes", metavar="DIR",
        help="the CA and kubeconfigs (default /etc/kubernetes)",
    )  # fmt: skip
    parser.add_argument(
        "--root-dir", default="/var/lib/kubelet", metavar="DIR",
        help="the kubelet's own (default /var/lib/kubelet)",
    )  # fmt: skip
    parser.add_argument(
        "--pod-logs-dir", default="/var/log/pods", metavar="DIR",
        help="containers' logs (default /var/log/pods)",
    )  # fmt: skip
    parser.add_argument(
        "--cgroup-driver", choices=("systemd", "cgroupfs"),
        help="the runtime's (default: systemd where it runs, else cgroupfs)",
    )  # fmt: skip
    parser.add_argument(
        "--cgroup-root", metavar="PATH",
        help="the kubelet's cgroup root (several kubelets on one machine need one each)",
    )  # fmt: skip


def waits(parser: argparse.ArgumentParser, until: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"return once the cluster is {until}")
    parser.add_argument(
        "--timeout", type=duration, default=300, help="how long --wait waits (default 5m)"
    )


def local(parser: argparse.ArgumentParser) -> None:
    lo = Groups(parser, "action", "action")
    up = lo.add("up", "start local hypervisors (containerd each), building what they need",
                client=False)  # fmt: skip
    up.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="table (default), json or yaml"
    )
    up.add_argument("--public", type=count, default=1, metavar="N", help="public ones (default 1)")
    up.add_argument(
        "--private", type=count, default=3, metavar="N", help="private ones (default 3)"
    )
    up.add_argument(
        "--workers", type=count, default=0, metavar="N",
        help="worker machines to join clusters to ('local join'; default 0)",
    )  # fmt: skip
    up.add_argument(
        "--behind-nat", type=count, default=0, metavar="N",
        help="of the workers, the last N each behind a NAT of its own (a site: edge workers)",
    )  # fmt: skip
    up.add_argument(
        "--binaries", metavar="DIR",
        help="use the Kubernetes and etcd binaries in DIR (kube-apiserver, "
        "kube-controller-manager, kube-scheduler, etcd, etcdctl) instead of building them",
    )  # fmt: skip
    listing = lo.add("list", "the local hypervisors: names, roles, addresses, endpoints",
                     client=False)  # fmt: skip
    listing.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="table (default), json or yaml"
    )
    join = lo.add("join", "join a local worker to a cluster: 'oneinfra node join' run in it",
                  client=False)  # fmt: skip
    join.add_argument("worker", metavar="WORKER", help="a local worker's name (w0, w1, ...)")
    join_inputs(join)
    join.add_argument(
        "--kubernetes-version", metavar="V", help="the kubelet's (default: the newest built)"
    )
    join.add_argument(
        "--discovery-timeout", type=duration, metavar="DURATION",
        help="how long to wait for the cluster to sign for the token (default 60s)",
    )  # fmt: skip
    join.add_argument(
        "--kubeadm", action="store_true",
        help="join with stock upstream kubeadm instead of 'oneinfra node join'",
    )  # fmt: skip
    rotate = lo.add("rotate-trust", "'oneinfra node rotate-trust' in a local worker, its "
                    "kubelet restarted with the same command line", client=False)  # fmt: skip
    rotate.add_argument("worker", metavar="WORKER", help="a local worker's name (w0, w1, ...)")
    leave = lo.add("leave", "a local worker leaves its cluster: its kubelet, pods and files gone",
                   client=False)  # fmt: skip
    leave.add_argument("worker", metavar="WORKER", help="a local worker's name (w0, w1, ...)")
    lo.add("down", "stop the local hypervisors and remove everything they held", client=False)
