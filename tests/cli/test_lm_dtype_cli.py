"""`slmkit lm ... --dtype`: the inference precision from the command line."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()


def test_lm_embed_and_losses_take_dtype(tiny_causal_dir, tmp_path):
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\na,hello there\nb,오늘 날씨가 좋네요\n", encoding="utf-8")
    out = tmp_path / "e.npy"
    model = ["--model", str(tiny_causal_dir)]
    result = runner.invoke(app, ["lm", "embed", str(texts), "--output", str(out), *model, "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    assert np.load(out).dtype == np.float32
    losses = tmp_path / "l.jsonl"
    result = runner.invoke(app, ["lm", "losses", str(texts), "--output", str(losses), *model, "--dtype", "bf16"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["lm", "generate", "hi", *model, "--dtype", "float8"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: --dtype must be one of auto, float32, bfloat16, float16")
    result = runner.invoke(app, ["lm", "generate", "hi", "--backend", "llamacpp", "--dtype", "bfloat16"])
    assert result.exit_code == 1 and "--dtype applies to the transformers backend" in result.output
