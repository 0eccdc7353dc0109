"""`oneinfra local up|list|down`: the local hypervisors (oneinfra.local) from
the command line. Progress goes to stderr; the hypervisors, as a table,
JSON or YAML, to stdout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import LocalError
from .output import emit, table

EXIT_OK, EXIT_FAILED = 0, 1


def run_local(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..local import down, join, kubeadm_join, leave, rotate_trust, status, up

    try:
        if args.action == "up":
            binaries = Path(args.binaries) if args.binaries else None
            machines = up(args.public, args.private, binaries, workers=args.workers,
                          behind_nat=args.behind_nat)  # fmt: skip
            show(machines, args.output)
        elif args.action == "join":
            flags = [args.endpoint, "--token", args.token]
            for digest in args.ca_cert_hash:
                flags += ["--discovery-token-ca-cert-hash", digest]
            if args.discovery_timeout is not None and not args.kubeadm:  # kubeadm: no such flag
                flags += ["--discovery-timeout", f"{args.discovery_timeout}s"]
            if args.kubeadm:
                joined = kubeadm_join(args.worker, flags, args.kubernetes_version)
            else:
                joined = join(args.worker, flags, args.kubernetes_version)
            print(f"{args.worker}: the kubelet runs (its log: {joined['log']})", file=sys.stderr)
        elif args.action == "rotate-trust":
            sys.stderr.write(rotate_trust(args.worker))
        elif args.action == "leave":
            leave(args.worker)
        elif args.action == "list":
            show(status(), args.output)
        else:
            down()
    except LocalError as error:
        print(f"oneinfra local: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def show(hypervisors: list[dict[str, Any]], fmt: str) -> None:
    if fmt != "table":
        emit(hypervisors, fmt)
    elif not hypervisors:
        print("no local hypervisors run; 'oneinfra local up' starts them", file=sys.stderr)
    else:
        table(
            ["NAME", "ROLE", "ADDRESS", "ENDPOINT", "DATA DIR"],
            [[h["name"], h["role"], h["address"], h["endpoint"], h["dataDir"] or "-"]
             for h in hypervisors],
        )  # fmt: skip
