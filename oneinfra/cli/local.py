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

    from ..local import down, status, up

    try:
        if args.action == "up":
            binaries = Path(args.binaries) if args.binaries else None
            show(up(args.public, args.private, binaries), args.output)
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
            [[h["name"], h["role"], h["address"], h["endpoint"], h["dataDir"]]
             for h in hypervisors],
        )  # fmt: skip
