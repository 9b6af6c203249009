"""Smoke-run the example scripts (with the tiny model, so they stay fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_runtime_tour_runs(tiny_causal_dir):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "runtime_tour.py"), str(tiny_causal_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cosine similarity" in proc.stdout and "generation:" in proc.stdout
