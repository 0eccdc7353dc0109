"""The daemon benchmark keeps running: a quick run prints every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "daemon_bench.py"


def test_quick_daemon_benchmark_prints_every_metric() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    metrics = {j["metric"]: j["value"] for j in map(json.loads, result.stdout.splitlines())}
    for name in (
        "cluster_create_p50", "cluster_create_p99", "cluster_show_p50", "cluster_show_p99",
        "rebuild_from_snapshot", "rebuild_without_snapshot", "daemon_memory_per_cluster",
        "verify_chain_at_start",
    ):  # fmt: skip
        assert metrics[name] > 0, name
    assert metrics["rebuild_events"] > metrics["config.clusters"]
