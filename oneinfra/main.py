"""`oneinfra`'s entry point: parses the command line and hands each command
to what runs it, imported only then: a client command loads the API's
messages and the channel, never the daemon's modules, so that it answers in
about a tenth of a second; `oneinfra daemon` loads the daemon.

Exit codes: 0 success; 1 a refused command or an unreachable daemon (one
line on stderr says which and why); 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .cli.parser import build_parser
from .errors import CommandFailed

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eventstore"]:  # its own parser, from the standalone package
        from eventstore import cli as eventstore_cli

        return eventstore_cli.main(argv[1:], prog="oneinfra eventstore")
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from .cli.completion import complete

        complete(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except CommandFailed as error:
        print(f"oneinfra: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"oneinfra {__version__}")
        return EXIT_OK
    if args.command == "schema":
        import json

        from .cli.manifests import json_schema

        print(json.dumps(json_schema(), indent=2))
        return EXIT_OK
    if args.command == "completion":
        from .cli.completion import shell_code

        sys.stdout.write(shell_code(args.shell))
        return EXIT_OK
    if args.command == "daemon":
        from .daemon.main import run_from_command_line

        return run_from_command_line(args)
    if args.command == "service":
        from .daemon.unit import run_service

        return run_service(args)
    if args.command == "node" and args.action in ("join", "reset", "rotate-trust"):
        from .node.command import run_node

        return run_node(args)
    if args.command == "local":
        from .cli.local import run_local

        return run_local(args)
    import asyncio

    from .cli import apply  # noqa: F401  # its handlers: apply -f, delete -f
    from .cli.commands import HANDLERS, call

    handler = HANDLERS[(args.command, getattr(args, "action", None))]
    asyncio.run(call(args, handler))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
