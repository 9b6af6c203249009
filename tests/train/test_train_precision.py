"""Training loads float32 master weights whatever $SLMKIT_DTYPE (an inference setting) says."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from slmkit.errors import ConfigError
from slmkit.models import load_model
from slmkit.testing import TOY_TEXTS
from slmkit.train import TrainConfig, merge, train

PROMPTS = [f"Text: {t}\nFirst word:" for t in TOY_TEXTS]
TARGETS = [" " + t.split()[0] for t in TOY_TEXTS]


def fast(**kw) -> TrainConfig:
    values = {"batch_size": 8, "max_steps": 2, "learning_rate": 1e-2, "logging_steps": 1, "report_to": "none",
              "precision": "fp32"}
    return TrainConfig(**(values | kw))


def _dtypes(folder) -> set:
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return {handle.get_tensor(key).dtype for key in handle.keys()}  # noqa: SIM118 (not a dict)


def test_training_and_merging_ignore_slmkit_dtype(tiny_causal_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMKIT_DTYPE", "bfloat16")
    full = train(str(tiny_causal_dir), fast(method="full"), tmp_path / "full", train_pairs=(PROMPTS, TARGETS))
    assert _dtypes(full.model_dir) == {torch.float32}
    assert "+" not in full.info["base_checksum"]  # the float32 base, not a bf16 cast of it
    train(str(tiny_causal_dir), fast(method="lora"), tmp_path / "lora", train_pairs=(PROMPTS, TARGETS))
    merged = merge(tmp_path / "lora", tmp_path / "merged")
    assert _dtypes(merged) == {torch.float32}
    assert load_model(str(merged)).info["dtype"] == "bfloat16"  # serving it follows the setting


def test_training_refuses_a_model_loaded_in_reduced_precision(tiny_causal_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SLMKIT_DTYPE", raising=False)
    for options in ({"dtype": "bfloat16"}, {"quantize": "int8"}):
        lm = load_model(str(tiny_causal_dir), **options)
        with pytest.raises(ConfigError, match="training needs float32 weights"):
            train(lm, fast(), tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
