"""The benchmarks still run: each script's smoke mode, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("*.py") if p.stem.startswith(("bench_", "analyze_"))
)


def test_every_script_is_covered() -> None:
    assert {"bench_handshake.py", "bench_datapath.py", "bench_memory.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_run(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plain" in result.stdout or "RSS" in result.stdout, result.stdout
