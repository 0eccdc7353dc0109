"""The benchmark keeps running: a quick run prints every figure it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "eventstore_bench.py"


def test_quick_benchmark_prints_every_metric_as_json_lines() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"metric", "value", "unit"} <= line.keys() for line in lines)
    metrics = {line["metric"]: line["value"] for line in lines}
    for side in ("oneinfra", "eventsourcing"):
        for figure in (
            "append_single_p50_ms",
            "append_single_p99_ms",
            "append_batched_events_per_s",
            "replay_events_per_s",
        ):
            assert metrics[f"{side}.{figure}"] > 0
        assert metrics[f"{side}.replayed"] == metrics["config.replay_events"]
    assert metrics["oneinfra.subscribe_p50_ms"] > 0
    assert metrics["ratio.replay_events_per_s"] > 0
