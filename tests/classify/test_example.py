"""Smoke-run examples/classify_sentiment.py with the tiny model (public API only, end to end)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "classify_sentiment.py"


def test_classify_example_runs(tiny_causal_dir, tmp_path):
    env = {**os.environ, "SLMKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_causal_dir), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held-out accuracy with 20 labels" in proc.stdout
    assert (tmp_path / "classify_report.html").is_file()
    assert (tmp_path / "sentiment-classifier" / "slmkit_config.json").is_file()
