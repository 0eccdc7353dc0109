"""The apply benchmark keeps running: a small run prints every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "apply_bench.py"


def test_a_small_apply_benchmark_prints_every_metric() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--clusters", "10", "--runs", "1", "--processes", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = {j["metric"]: j["value"] for j in map(json.loads, result.stdout.splitlines())}
    for name in ("apply_to_empty", "apply_unchanged", "apply_dry_run",
                 "create_calls_one_client", "cluster_create_process_p50"):  # fmt: skip
        assert metrics[name] > 0, name
