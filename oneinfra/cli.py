"""The `oneinfra` command. For now: its version and the event store's tooling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eventstore import cli as eventstore_cli

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneinfra",
        description="Isolated Kubernetes control planes on CRI hypervisors.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the version")
    store = commands.add_parser("eventstore", help="inspect and verify an event store file")
    eventstore_cli.add_commands(store)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"oneinfra {__version__}")
        return 0
    return eventstore_cli.run(args, "oneinfra eventstore")


if __name__ == "__main__":
    sys.exit(main())
