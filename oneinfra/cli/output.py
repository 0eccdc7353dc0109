"""How the CLI prints: human tables by default, JSON or YAML on request; and
how it reads a stream of replies."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpclib.client import UnaryStreamMethod

WIDE_INTEGERS = frozenset(
    {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
     FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
)  # fmt: skip


def as_data(message: Message) -> dict[str, Any]:
    """A message as plain data with camelCase keys, defaults included, 64-bit
    numbers as numbers (proto3's JSON makes them strings) and an optional
    field left out as null: what `-o json` and `-o yaml` print."""
    from google.protobuf import json_format  # only for -o json and yaml

    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return plain(message.DESCRIPTOR, data)


def plain(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    """`data` fixed in place, field by field of the message's descriptor."""
    for field in descriptor.fields:
        key = field.json_name
        if key not in data:
            if field.has_presence:
                data[key] = None
            continue
        value = data[key]
        if field.type in WIDE_INTEGERS:
            data[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            items = value if isinstance(value, list) else [value]
            for item in items:
                plain(field.message_type, item)
    return data


async def replies(method: UnaryStreamMethod[Any, Any], request: Message) -> AsyncIterator[Any]:
    """The replies of a server-streaming call, as they come."""
    async with method.open() as stream:
        await stream.send_message(request, end=True)
        async for reply in stream:
            yield reply


def emit(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:
        import yaml  # only for YAML output: a tenth of the CLI's start-up otherwise

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def pairs(values: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
