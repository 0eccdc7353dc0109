"""Progress of the long steps (builds, images, packages) on stderr, so that
stdout stays machine-readable: redrawn in place on a terminal (rich), and
elsewhere (a CI log, a pipe) one line at each change of phase and one every
~10 s, so that a build of ten minutes never looks like a hang.

Each step shows what it is doing, how long it has run, and an estimate:
from the last time it ran when there was one, else from how far it is.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

EVERY = 10.0  # seconds between lines when not on a terminal


def minutes(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Step:
    """One long step: its phase, how far the phase is, when it started."""

    def __init__(self, reporter: Reporter, name: str, estimate: float | None) -> None:
        self.reporter = reporter
        self.name = name
        self.estimate = estimate  # seconds the whole step took last time
        self.started = time.monotonic()
        self.phase_name = "starting"
        self.done = 0
        self.total: int | None = None
        self.task: TaskID | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> str:
        if self.estimate is not None:
            left = self.estimate - self.elapsed
            return (
                f"~{minutes(left)} left (last time {minutes(self.estimate)})"
                if left > 0
                else (f"longer than last time ({minutes(self.estimate)})")
            )
        return ""

    def phase(self, text: str, total: int | None = None) -> None:
        self.phase_name, self.done, self.total = text, 0, total
        self.reporter.changed(self, phase_changed=True)

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.reporter.changed(self, phase_changed=False)

    def line(self) -> str:
        far = f" {self.done}/{self.total}" if self.total else ""
        left = self.remaining()
        return f"{self.name}: {self.phase_name}{far}, {minutes(self.elapsed)} elapsed" + (
            f", {left}" if left else ""
        )


class Reporter:
    def __init__(self, stream: TextIO = sys.stderr, every: float = EVERY) -> None:
        self.console = Console(file=stream, stderr=stream is sys.stderr)
        self.live = self.console.is_terminal
        self.every = every
        self._lock = threading.Lock()
        self._rich: RichProgress | None = None

    def say(self, message: str) -> None:
        if self._rich is not None:
            self._rich.console.print(message, markup=False, highlight=False)
        else:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, name: str, estimate: float | None = None) -> Iterator[Step]:
        step = Step(self, name, estimate)
        if self.live:
            with RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[left]}"),
                console=self.console,
                transient=True,
            ) as rich:
                self._rich = rich
                step.task = rich.add_task(name, total=None, left=step.remaining())
                try:
                    yield step
                finally:
                    self._rich = None
            return
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(step, stop), daemon=True)
        self.say(step.line())
        ticker.start()
        try:
            yield step
        finally:
            stop.set()
            ticker.join()

    def changed(self, step: Step, *, phase_changed: bool) -> None:
        if self._rich is not None and step.task is not None:
            self._rich.update(
                step.task,
                description=f"{step.name}: {step.phase_name}",
                total=step.total,
                completed=step.done,
                left=step.remaining(),
            )
        elif phase_changed:
            with self._lock:
                self.say(step.line())

    def _tick(self, step: Step, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            with self._lock:
                self.say(step.line())
