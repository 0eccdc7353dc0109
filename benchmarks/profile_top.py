"""The functions that took most of one thread's samples in a py-spy
speedscope file: by samples in the function itself and below it (inclusive)
and in the function alone (self), as a share of that thread's samples.

    .venv/bin/python benchmarks/profile_top.py FILE [--thread MainThread] [--top 25]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def shares(path: Path, thread: str) -> tuple[int, Counter[str], Counter[str]]:
    """The thread's sample count, and samples by function: inclusive, self."""
    document = json.loads(path.read_text())
    frames = [
        f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', 0)})"
        for f in document["shared"]["frames"]
    ]
    inclusive: Counter[str] = Counter()
    alone: Counter[str] = Counter()
    total = 0
    for profile in document["profiles"]:
        if f'"{thread}"' not in profile["name"]:
            continue
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            total += weight
            for name in {frames[i] for i in stack}:  # a recursive frame counts once
                inclusive[name] += weight
            if stack:
                alone[frames[stack[-1]]] += weight
    return total, inclusive, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", default="MainThread")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, inclusive, alone = shares(args.file, args.thread)
    print(f"{total} samples of {args.thread}")
    for title, counts in (("inclusive", inclusive), ("self", alone)):
        print(f"-- {title}")
        for name, n in counts.most_common(args.top):
            print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
