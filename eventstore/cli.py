"""`python -m eventstore`: inspect and verify a store (a file or a PostgreSQL
database) without the daemon.

Exit codes: 0 fine, 1 the chain does not verify, 2 bad usage or a file that
cannot be read as an event store.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence

import anyio
import msgspec

from .copying import copy_log
from .errors import EventStoreError
from .hashing import GENESIS_HASH
from .locate import open_store
from .records import RecordedEvent

EXIT_OK, EXIT_BROKEN, EXIT_ERROR = 0, 1, 2


def build_parser(prog: str = "python -m eventstore") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Inspect an event store file.")
    add_commands(parser)
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(
        dest="store_command", required=True, metavar="COMMAND", title="commands"
    )
    store_file = "the store: a file (events.db) or a postgresql:// URL, opened read-only"
    verify = commands.add_parser("verify", help="walk the hash chain; exit 1 if it is broken")
    verify.add_argument("file", help=store_file)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--head", metavar="POS:HASH", type=anchor,
        help="a head kept elsewhere: the file must still hold that record (not cut short)",
    )  # fmt: skip
    info = commands.add_parser("info", help="head position, streams, time span")
    info.add_argument("file", help=store_file)
    dump = commands.add_parser("dump", help="print records as JSON lines")
    dump.add_argument("file", help=store_file)
    dump.add_argument(
        "--from", dest="from_position", type=int, default=1, metavar="POS",
        help="the first position (default 1)",
    )  # fmt: skip
    dump.add_argument("--limit", type=int, default=None, metavar="N", help="at most N records")
    copy = commands.add_parser(
        "copy",
        help="copy the log to another store, positions and hashes kept (run again to resume)",
    )
    copy.add_argument("file", metavar="SRC", help="the store copied from, opened read-only")
    copy.add_argument("destination", metavar="DST", help="a new file or an empty database")


def as_text(payload: bytes) -> str | None:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


def record_as_json(record: RecordedEvent) -> dict[str, object]:
    """A record for people and tools: base64 is lossless, *Text is for reading."""
    return {
        "position": record.position,
        "stream": record.stream_id,
        "version": record.stream_version,
        "id": str(record.event_id),
        "type": record.type,
        "schemaVersion": record.schema_version,
        "recordedAt": record.recorded_at.isoformat(),
        "data": base64.b64encode(record.data).decode(),
        "dataText": as_text(record.data),
        "metadata": base64.b64encode(record.metadata).decode(),
        "metadataText": as_text(record.metadata),
        "hash": record.hash.hex(),
    }


def anchor(text: str) -> tuple[int, str]:
    position, sep, digest = text.partition(":")
    if not sep or not position.isdigit() or int(position) < 1 or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not POS:HASH (a 64-digit hash)")
    return int(position), digest


async def run_copy(args: argparse.Namespace) -> int:
    async with (
        await open_store(args.file, read_only=True, create=False) as source,
        await open_store(args.destination) as destination,
    ):
        report = await source.verify()  # a broken source is not copied
        if not report.ok:
            print(f"TAMPERED source at position {report.first_bad_position}: {report.reason}")
            return EXIT_BROKEN
        copied = await copy_log(source, destination)
        head = await destination.head_position()
        record = await destination.read_at(head) if head else None
        print(
            f"copied {copied} records; the destination's head is position {head}, "
            f"hash {record.hash.hex() if record else GENESIS_HASH.hex()}"
        )
    return EXIT_OK


async def run_command(args: argparse.Namespace) -> int:
    if args.store_command == "copy":
        return await run_copy(args)
    async with await open_store(args.file, read_only=True, create=False) as store:
        if args.store_command == "verify":
            report = await store.verify()
            if report.ok and args.head is not None:
                problem = await store.check_anchor(*args.head)
                if problem is not None:
                    report = msgspec.structs.replace(
                        report, ok=False, first_bad_position=args.head[0], reason=problem
                    )
            if args.json:
                print(json.dumps({f: getattr(report, f) for f in report.__struct_fields__}))
            elif report.ok:
                print(
                    f"ok: {report.records_checked} records, head position "
                    f"{report.head_position}, head hash {report.head_hash}"
                )
            else:
                where = (
                    f"at position {report.first_bad_position}"
                    if report.first_bad_position is not None
                    else "in the file"
                )
                print(f"TAMPERED {where}: {report.reason}")
            return EXIT_OK if report.ok else EXIT_BROKEN
        if args.store_command == "info":
            streams: set[str] = set()
            first = last = None
            async for record in store.read_all():
                streams.add(record.stream_id)
                first = first or record
                last = record
            print(
                json.dumps(
                    {
                        "file": str(args.file),
                        "headPosition": last.position if last else 0,
                        "streams": len(streams),
                        "firstRecordedAt": first.recorded_at.isoformat() if first else None,
                        "lastRecordedAt": last.recorded_at.isoformat() if last else None,
                    }
                )
            )
            return EXIT_OK
        printed = 0
        async for record in store.read_all(max(1, args.from_position)):
            if args.limit is not None and printed >= args.limit:
                break
            print(json.dumps(record_as_json(record)))
            printed += 1
        return EXIT_OK


def run(args: argparse.Namespace, prog: str) -> int:
    try:
        return anyio.run(run_command, args)
    except EventStoreError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None, prog: str = "python -m eventstore") -> int:
    parser = build_parser(prog)
    return run(parser.parse_args(argv), parser.prog)
