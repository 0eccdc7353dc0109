"""`oneinfra apply -f` and `oneinfra delete -f`: manifests (manifests.py)
read from files, directories (recursively) or stdin, checked whole, then
planned against what the daemon holds (applyplan.py) and sent, each request
carrying its document's source (FILE#INDEX) for the log's metadata. A line
per object says what became of it; any refused or failed object makes the
command fail, after the others were applied."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grpclib.exceptions import GRPCError

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..api.pb.oneinfra.v1.fleet_grpc import FleetStub
from ..errors import CommandFailed
from ..model.metadata import CORRELATION_HEADER, SOURCE_HEADER
from . import manifests
from .applyplan import Plan, kind_of, plan, plan_delete
from .commands import handles

MAX_BYTES = 32 * 1024 * 1024  # the whole input: a fleet of 10,000 clusters is a few MB
SUFFIXES = (".yaml", ".yml", ".json")
IN_FLIGHT = 8  # requests sent at once: the daemon decides one at a time, the rest is round trips


def inputs(paths: list[str]) -> Iterator[tuple[str, str]]:
    """(name, text) of each file named, each manifest under a directory
    (sorted, recursively), or stdin for '-'; within MAX_BYTES together."""
    total = 0
    for path in paths:
        named: list[tuple[str, Path | None]]
        if path == "-":
            named = [("stdin", None)]
        elif Path(path).is_dir():
            found = sorted(p for p in Path(path).rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise CommandFailed(f"{path}: no {', '.join(SUFFIXES)} file under it")
            named = [(str(p), p) for p in found]
        else:
            named = [(path, Path(path))]
        for name, file in named:
            try:
                if file is None:
                    text = sys.stdin.read(MAX_BYTES + 1 - total)
                else:
                    with file.open(encoding="utf-8") as stream:
                        text = stream.read(MAX_BYTES + 1 - total)
            except OSError as error:
                raise CommandFailed(f"cannot read {name}: {error.strerror}") from None
            except UnicodeDecodeError:
                raise CommandFailed(f"{name}: not UTF-8 text") from None
            total += len(text)
            if total > MAX_BYTES:
                raise CommandFailed(f"{name}: the manifests are over {MAX_BYTES} bytes together")
            yield name, text


def documents(paths: list[str]) -> Iterator[tuple[str, object]]:
    """(FILE#INDEX, document) of every YAML document, from 1 in each file."""
    import yaml  # only for manifests: a tenth of the CLI's start-up otherwise

    class NoAliases(yaml.SafeLoader):
        """YAML without anchors and aliases: a few lines of them expand to
        gigabytes (a billion laughs), and manifests do not need them."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.YAMLError(f"an alias at line {mark.line + 1}: not accepted here")
            return super().compose_node(parent, index)

    for name, text in inputs(paths):
        try:
            for index, document in enumerate(yaml.load_all(text, Loader=NoAliases), 1):
                yield f"{name}#{index}", document
        except yaml.YAMLError as error:
            raise CommandFailed(f"{name}: not YAML: {yaml_problem(error)}") from None
        except RecursionError:
            raise CommandFailed(f"{name}: nested too deeply to be a manifest") from None


def yaml_problem(error: Exception) -> str:
    """PyYAML's error in one line: what, and where."""
    problem = getattr(error, "problem", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())[:300]


def version_map(pairs: list[str]) -> dict[str, str]:
    mapped = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise CommandFailed(f"--map-version {pair[:60]!r} is not FROM=TO (e.g. 1.18=v1.37.2)")
        mapped[old] = new
    return mapped


async def current(stub: FleetStub) -> dict[str, dict[str, Any]]:
    """What the fleet holds, by kind, then by name."""
    hypervisors = (await stub.ListHypervisors(api.ListRequest())).hypervisors
    clusters = (await stub.ListClusters(api.ListRequest())).clusters
    return {
        "Hypervisor": {h.name: h for h in hypervisors},
        "Cluster": {c.name: c for c in clusters},
    }


def summary(done: Plan, failure: str = "") -> str:
    line = f"{done.kind.lower()}/{done.name} {'failed' if failure else done.outcome}"
    why = failure or done.reason
    return f"{line}: {why}" if why else line


async def send(
    stub: FleetStub, plans: list[Plan], correlation: str, order: tuple[str, ...]
) -> dict[int, str]:
    """Each plan's calls in order, plans concurrently (IN_FLIGHT at once),
    one kind after the other in `order`; why each plan that failed did."""
    failures: dict[int, str] = {}
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def run(index: int, each: Plan) -> None:
        async with limit:
            metadata = {SOURCE_HEADER: each.source, CORRELATION_HEADER: correlation}
            for call in each.calls:
                try:
                    await getattr(stub, call.rpc)(call.request, metadata=metadata)
                except GRPCError as error:
                    failures[index] = error.message or error.status.name
                    return

    for kind in order:
        await asyncio.gather(*(run(i, p) for i, p in enumerate(plans) if p.kind == kind))
    return failures


def report(plans: list[Plan], failures: dict[int, str], dry_run: bool) -> None:
    for index, each in enumerate(plans):
        print(summary(each, failures.get(index, "")) + (" (dry run)" if dry_run else ""))
        if dry_run:
            for change in each.changes:
                print(f"  {change}")
            for call in each.calls:
                print(f"  would send {call.describe()}")
    bad = [p for i, p in enumerate(plans) if p.outcome == "refused" or i in failures]
    if bad:
        raise CommandFailed(f"{len(bad)} of {len(plans)} objects not applied")


@handles("apply")
async def apply(stub: FleetStub, args: argparse.Namespace) -> None:
    found = manifests.read(documents(args.filename), version_map(args.map_version))
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    held = await current(stub)
    plans = [plan(w, held[kind_of(w)].get(w.name)) for w in found.objects]
    failures = (
        {}
        if args.dry_run
        else await send(stub, plans, f"apply-{uuid.uuid4()}", ("Hypervisor", "Cluster"))
    )
    report(plans, failures, args.dry_run)


@handles("delete")
async def delete(stub: FleetStub, args: argparse.Namespace) -> None:
    found = manifests.read(documents(args.filename), versions=None)  # the names count
    held = await current(stub)
    # Clusters first: a hypervisor is removed only once it holds nothing.
    ordered = sorted(found.objects, key=lambda w: kind_of(w) == "Hypervisor")
    plans = [plan_delete(w, w.name in held[kind_of(w)]) for w in ordered]
    failures = (
        {}
        if args.dry_run
        else await send(stub, plans, f"delete-{uuid.uuid4()}", ("Cluster", "Hypervisor"))
    )
    report(plans, failures, args.dry_run)
