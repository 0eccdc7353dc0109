"""Checks on snapshot arguments, shared by the backends."""

from __future__ import annotations

from .errors import InvalidArgument
from .planning import validate_non_negative


def check_snapshot_args(name: object, position: object, data: object, head: int) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgument("snapshot name must be a non-empty string")
    checked = validate_non_negative("snapshot position", position)
    if checked > head:
        raise InvalidArgument(f"snapshot position {checked} is beyond the head of the log ({head})")
    if not isinstance(data, bytes):
        raise InvalidArgument(f"snapshot data must be bytes, got {type(data).__name__}")
