"""The CLI benchmark keeps running: a quick run prints every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "cli_bench.py"


def test_quick_cli_benchmark_prints_every_metric() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    metrics = {j["metric"]: j["value"] for j in map(json.loads, result.stdout.splitlines())}
    for command in ("version", "cluster_list"):
        for figure in ("first", "median", "min", "max", "import_time", "modules_imported"):
            assert metrics[f"{command}_{figure}"] > 0, f"{command}_{figure}"
    assert metrics["floor_python_median"] > 0 and metrics["floor_client_libraries_median"] > 0
    # A client command imports more than `version`.
    assert metrics["cluster_list_modules_imported"] > metrics["version_modules_imported"]
