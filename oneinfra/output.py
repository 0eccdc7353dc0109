"""How the CLI prints: human tables by default, JSON or YAML on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import betterproto2
import yaml

FORMATS = ("table", "json", "yaml")


def as_data(message: betterproto2.Message) -> dict[str, Any]:
    """A message as plain data with camelCase keys, defaults included."""
    return message.to_dict(
        include_default_values=True, output_format=betterproto2.OutputFormat.PYTHON
    )


def emit(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def pairs(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
