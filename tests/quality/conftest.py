"""Fixtures for the quality tests: a tiny from-scratch scorer pair trained once, and corpora written from the
project's own example texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmkit.testing import TOY_TEXTS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def make_config(seed: int = 0, route: str = "scratch", base_model: str = "gemma3-270m", **training):
    """A pair that trains in seconds: a 1-layer, 32-wide model, a few steps, float32, no MLflow."""
    from slmkit.quality import QualityConfig
    from slmkit.train import ScratchConfig, TrainConfig

    values = dict(
        objective="documents",
        method="full" if route == "scratch" else "lora",
        max_steps=4,
        batch_size=4,
        learning_rate=1e-2,
        max_length=256,  # the scratch pair scores texts up to its training length
        report_to="none",
        precision="fp32",
        logging_steps=1,
    )
    values.update(training)
    scratch = ScratchConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return QualityConfig(
        route=route, base_model=base_model, scratch=scratch, training=TrainConfig(**values), seed=seed
    )


def example_texts() -> list[str]:
    lines = (EXAMPLES / "texts.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(seed=..., route=..., **TrainConfig fields)` -> a QualityConfig that trains in seconds."""
    return make_config


@pytest.fixture(scope="session")
def scorer_dir(tmp_path_factory):
    from slmkit.quality import train_scorer

    path = tmp_path_factory.mktemp("scorer") / "pair"
    train_scorer(TOY_TEXTS * 3, path, make_config(), progress=False)
    return path


@pytest.fixture(scope="session")
def pair(scorer_dir):
    from slmkit.quality import load_scorer

    return load_scorer(scorer_dir)


@pytest.fixture()
def corpus_jsonl(tmp_path):
    """20 rows: the project's example texts and toy texts, with ids and a domain column."""
    rows = [{"id": f"e{i}", "text": t, "domain": "examples"} for i, t in enumerate(example_texts())]
    rows += [{"id": f"t{i}", "text": t, "domain": "toy"} for i, t in enumerate(TOY_TEXTS)]
    rows += [{"id": f"x{i}", "text": t.upper(), "domain": "toy"} for i, t in enumerate(TOY_TEXTS[:4])]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path
