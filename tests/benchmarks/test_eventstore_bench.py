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


def test_quick_postgresql_benchmark_prints_both_stores_and_both_drivers() -> None:
    from tests.pgserver import ensure_postgres_bin

    ensure_postgres_bin()  # installed, or the test says what is missing
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--backend", "postgresql"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = {
        json.loads(line)["metric"]: json.loads(line)["value"] for line in result.stdout.splitlines()
    }
    for side in ("oneinfra", "eventsourcing", "driver_asyncpg", "driver_psycopg"):
        assert metrics[f"{side}.append_batched_events_per_s"] > 0
        assert metrics[f"{side}.replay_events_per_s"] > 0
    assert metrics["oneinfra.replayed"] == metrics["eventsourcing.replayed"] == 3000
    assert metrics["ratio.driver.append_batched_events_per_s"] > 0
