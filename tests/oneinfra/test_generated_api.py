"""The committed API code is what scripts/gen-proto makes from proto/."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_generated_api_matches_the_proto(tmp_path: Path) -> None:
    out = tmp_path / "api"
    subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(out)], check=True, cwd=ROOT)
    committed = ROOT / "oneinfra" / "api"
    for generated in out.rglob("*.py"):
        relative = generated.relative_to(out)
        assert filecmp.cmp(generated, committed / relative, shallow=False), (
            f"{relative} is stale: run scripts/gen-proto"
        )
