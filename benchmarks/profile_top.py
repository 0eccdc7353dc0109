"""The functions that took most of one thread's samples in a py-spy
speedscope file: by samples in the function itself and below it (inclusive)
and in the function alone (self), as a share of that thread's samples.

    .venv/bin/python benchmarks/profile_top.py FILE [--thread MainThread] [--top 25]
        [--by NAME,NAME,...]

--by: each sample counted once, under the first of the named functions
(py-spy's names, e.g. ClusterLoop.check_ready) found in its stack, in the
order given; the rest as "elsewhere".
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def samples(document: dict[str, Any], thread: str) -> Iterator[tuple[list[int], Any]]:
    """The thread's samples: each stack (frame indexes, outermost first)
    and its weight."""
    for profile in document["profiles"]:
        if f'"{thread}"' in profile["name"]:
            yield from zip(profile["samples"], profile["weights"], strict=True)


def shares(path: Path, thread: str) -> tuple[float, Counter[str], Counter[str]]:
    """The thread's sample count, and samples by function: inclusive, self."""
    document = json.loads(path.read_text())
    frames = [
        f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', 0)})"
        for f in document["shared"]["frames"]
    ]
    inclusive: Counter[str] = Counter()
    alone: Counter[str] = Counter()
    total = 0.0
    for stack, weight in samples(document, thread):
        total += weight
        for name in {frames[i] for i in stack}:  # a recursive frame counts once
            inclusive[name] += weight
        if stack:
            alone[frames[stack[-1]]] += weight
    return total, inclusive, alone


def package(file: str) -> str:
    """Where a frame's code comes from: a site package, the standard
    library's module, or this project's package."""
    parts = Path(file).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for ours in ("oneinfra", "eventstore"):
        if ours in parts:
            return ours
    return Path(file).stem


def grouped(path: Path, thread: str, names: list[str]) -> tuple[float, dict[str, float]]:
    """Seconds sampled, and by group: the first of `names` in the stack, or
    else "elsewhere" and the package of the stack's innermost frame (py-spy
    catches some stacks of coroutines in part, their leaf only)."""
    document = json.loads(path.read_text())
    frames = document["shared"]["frames"]
    groups = dict.fromkeys(names, 0.0)
    total = 0.0
    for stack, weight in samples(document, thread):
        total += weight
        present = {frames[i]["name"] for i in stack}
        group = next((n for n in names if n in present), None)
        if group is None:
            leaf = frames[stack[-1]].get("file", "?") if stack else "?"
            group = f"elsewhere: {package(leaf)}"
        groups[group] = groups.get(group, 0.0) + weight
    return total, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", default="MainThread")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--by", help="group the samples by these functions (comma-separated)")
    args = parser.parse_args()
    if args.by:
        seconds, groups = grouped(args.file, args.thread, args.by.split(","))
        print(f"{seconds:.1f} s of {args.thread} sampled")
        for name, weight in sorted(groups.items(), key=lambda g: -g[1])[: args.top]:
            print(f"{100 * weight / seconds:5.1f}%  {weight:6.2f} s  {name}")
        return
    total, inclusive, alone = shares(args.file, args.thread)
    print(f"{total} samples of {args.thread}")
    for title, counts in (("inclusive", inclusive), ("self", alone)):
        print(f"-- {title}")
        for name, n in counts.most_common(args.top):
            print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
