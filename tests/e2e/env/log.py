"""Progress lines on stderr, so stdout stays machine-readable (status JSON)."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"e2e-env: {message}", file=sys.stderr, flush=True)
