"""Counts from ginkgo's JUnit reports of a conformance run, as JSON lines.

ginkgo reports every spec of the suite, those the focus left out too (as
skipped, with no message of their own), so the counts here are of the
[Conformance] specs only: passed, failed, skipped by the suite while
running (a spec that found its environment lacking says why), and not
selected (left out by the run's focus and skip: [Serial] ones without
SERIAL=1). Every failure is listed with the first line of its message.

    python -m tests.conformance.summary report/*.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CONFORMANCE = "[Conformance]"


@dataclass
class Summary:
    passed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # spec, why
    skipped: list[tuple[str, str]] = field(default_factory=list)  # spec, why
    not_selected: int = 0

    def lines(self) -> Iterable[dict[str, object]]:
        yield {"metric": "conformance.passed", "value": self.passed, "unit": "specs"}
        yield {"metric": "conformance.failed", "value": len(self.failed), "unit": "specs"}
        yield {"metric": "conformance.skipped", "value": len(self.skipped), "unit": "specs"}
        yield {"metric": "conformance.not_selected", "value": self.not_selected, "unit": "specs"}
        for spec, why in self.failed:
            yield {"failed": spec, "why": why}
        for spec, why in self.skipped:
            yield {"skipped": spec, "why": why}


def first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def summarize(reports: Iterable[str]) -> Summary:
    """Each spec counted once, by its last outcome across the reports (a
    serial run after the parallel one reports the parallel specs as not
    selected, so a spec run in any report counts as run)."""
    outcomes: dict[str, tuple[str, str]] = {}
    for text in reports:
        for case in ET.fromstring(text).iter("testcase"):
            name = case.get("name", "")
            if CONFORMANCE not in name:
                continue
            outcome = outcome_of(case)
            if outcome[0] != "not selected" or name not in outcomes:
                outcomes[name] = outcome
    summary = Summary()
    for name, (state, why) in sorted(outcomes.items()):
        if state == "passed":
            summary.passed += 1
        elif state == "failed":
            summary.failed.append((name, why))
        elif state == "skipped":
            summary.skipped.append((name, why))
        else:
            summary.not_selected += 1
    return summary


def outcome_of(case: ET.Element) -> tuple[str, str]:
    status = case.get("status", "")
    for tag in ("failure", "error"):
        found = case.find(tag)
        if found is not None:
            return "failed", first_line(found.get("message") or found.text)
    skipped = case.find("skipped")
    if skipped is not None or status == "skipped":
        message = (skipped.get("message") if skipped is not None else "") or ""
        # ginkgo marks specs its filters left out as plainly "skipped".
        if message.strip() in ("", "skipped"):
            return "not selected", ""
        return "skipped", first_line(message.removeprefix("skipped - "))
    if status in ("passed", ""):
        return "passed", ""
    return "failed", status


def main(paths: list[str]) -> None:
    summary = summarize(Path(p).read_text() for p in paths)
    for line in summary.lines():
        print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv[1:])
