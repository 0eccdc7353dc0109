"""`oneinfra node join|reset` from the command line: this machine's
defaults, the request, one line on a refusal."""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

from .. import cgroups
from ..errors import JoinError
from . import discovery, join, trust
from .kubelet import NodeSettings

EXIT_OK, EXIT_FAILED = 0, 1


def settings_of(args: argparse.Namespace) -> NodeSettings:
    return NodeSettings(
        node_name=args.node_name or socket.gethostname().lower(),
        node_ip=args.node_ip,
        cri_socket=args.cri_socket,
        config_dir=Path(args.config_dir),
        root_dir=Path(args.root_dir),
        pod_logs_dir=Path(args.pod_logs_dir),
        # The kubelet's driver must be the runtime's: systemd's where it runs.
        cgroup_driver=args.cgroup_driver or ("systemd" if join.systemd_runs() else "cgroupfs"),
        cgroup_v1=cgroups.v1(),
        cgroup_root=args.cgroup_root,
    )


def kubelet_binary(given: str | None) -> Path:
    found = given or shutil.which("kubelet")
    if found is None:
        raise JoinError("no kubelet binary: put one on PATH or give --kubelet PATH")
    return Path(found)


def run_node(args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        settings = settings_of(args)
        if args.action == "reset":
            gone = join.reset(settings)
            say(f"removed {len(gone)} files of the kubelet's" if gone else "nothing to remove")
            return EXIT_OK
        if args.action == "rotate-trust":
            trust.rotate_trust(settings, restart=not args.no_restart, say=say)
            return EXIT_OK
        request = join.JoinRequest(
            endpoint=args.endpoint,
            token=discovery.parse_token(args.token),
            ca_hashes=[discovery.parse_ca_hash(h) for h in args.ca_cert_hash],
            settings=settings,
            kubelet=kubelet_binary(args.kubelet),
            foreground=args.foreground,
            discovery_timeout=args.discovery_timeout,
            require_vpn=args.vpn,
            peer_timeout=args.vpn_timeout,
        )
        join.join(request, say)
    except JoinError as error:
        print(f"oneinfra node {args.action}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
