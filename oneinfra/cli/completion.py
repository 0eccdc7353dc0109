"""Tab completion for bash and zsh (argcomplete): commands and options from
the parser, cluster and hypervisor names from the daemon when it answers
quickly (and none when it does not: completion never hangs a shell)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

NAMES_TIMEOUT = 0.5  # seconds the daemon has to list names


def shell_code(shell: str) -> str:
    from argcomplete.shell_integration import shellcode

    return shellcode(["oneinfra"], shell=shell)


def complete(parser: argparse.ArgumentParser) -> None:
    """Answers the shell and exits (argcomplete's protocol)."""
    import argcomplete

    for action in actions(parser):
        kind = getattr(action, "names_of", None)
        if kind is not None:
            action.completer = NamesCompleter(kind)  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser, always_complete_options=False)  # options after a "-"


def actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from actions(child)


class NamesCompleter:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
        import asyncio

        try:
            names = asyncio.run(self.names(getattr(parsed_args, "socket", None)))
        except Exception:  # no daemon, no answer in time: nothing to offer
            return []
        return [n for n in names if n.startswith(prefix)]

    async def names(self, socket: str | None) -> list[str]:
        import asyncio

        from grpclib.client import Channel

        from ..api.pb.oneinfra.v1 import fleet_pb2 as api
        from ..api.pb.oneinfra.v1.fleet_grpc import FleetStub
        from ..paths import chosen_socket

        channel = Channel(path=str(chosen_socket(socket)))
        try:
            stub = FleetStub(channel)
            async with asyncio.timeout(NAMES_TIMEOUT):
                if self.kind == "cluster":
                    return [c.name for c in (await stub.ListClusters(api.ListRequest())).clusters]
                reply = await stub.ListHypervisors(api.ListRequest())
                return [h.name for h in reply.hypervisors]
        finally:
            channel.close()
