"""slmkit.train's contrastive objective (SetFit-style pairs, cosine-similarity loss) on a tiny random Gemma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.train import TrainConfig, train
from slmkit.train._data import PairCollator, TextPairDataset, encode_text_pairs
from slmkit.train._trainer import backbone, pool_states

FRUIT = ["I ate a ripe banana.", "The apple was crisp and sweet.", "She peeled an orange slowly.",
         "Cherries were on sale today.", "He blended mango and lime.", "A bowl of grapes sat there."]
VEHICLES = ["The bus arrived ten minutes late.", "He parked the truck outside.", "Her bicycle has a flat tyre.",
            "The train left the station at noon.", "A red car sped down the road.", "They sailed a small boat."]
TEMPLATE = "Text: {text}\nIs this about fruit or vehicles? Answer:"


def _pairs():
    """Every same-class pair (similarity 1) and as many different-class pairs (0), in a fixed shuffled order."""
    same = [(a, b, 1.0) for group in (FRUIT, VEHICLES) for i, a in enumerate(group) for b in group[i + 1:]]
    other = [(a, b, 0.0) for a in FRUIT for b in VEHICLES][: len(same)]
    rows = same + other
    order = np.random.default_rng(0).permutation(len(rows))
    first, second, sim = zip(*(rows[i] for i in order))
    return list(first), list(second), list(sim)


def _config(**kw) -> TrainConfig:
    values = {"method": "lora", "objective": "contrastive", "embed_template": TEMPLATE, "embed_pooling": "mean",
              "embed_layers": [1, -1], "epochs": 3, "batch_size": 10, "learning_rate": 5e-3, "scheduler": "constant",
              "warmup_ratio": 0.0, "logging_steps": 1, "report_to": "none", "precision": "fp32"}
    return TrainConfig(**(values | kw))


def _pair_loss(lm, pairs, config) -> float:
    """The objective itself, computed from the runtime's `embed` (the path a classifier serves)."""
    first, second, sim = pairs
    recipe = {"template": config.embed_template, "pooling": config.embed_pooling, "layers": config.embed_layers}
    a, b = lm.embed(first, **recipe), lm.embed(second, **recipe)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(np.mean((cos - np.asarray(sim)) ** 2))


@pytest.mark.parametrize("pooling, layers", [("mean", [1, -1]), ("last", [-1])])
def test_training_pools_exactly_as_the_runtime_embeds(tiny_lm, pooling, layers):
    """The vectors the loss compares are the vectors `embed` serves: same tokens, template, pooling and layers."""
    first, second, sim = _pairs()
    rows = encode_text_pairs(tiny_lm.tokenizer, first[:5], second[:5], sim[:5], template=TEMPLATE, max_length=512)
    batch = PairCollator(tiny_lm.tokenizer.pad_token_id)([TextPairDataset(rows)[i] for i in range(5)])
    with torch.no_grad():
        states = backbone(tiny_lm.model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                         output_hidden_states=True).hidden_states
        ours = pool_states(states, batch["input_ids"], batch["attention_mask"], pooling=pooling, layers=layers,
                           bos_id=tiny_lm.tokenizer.bos_token_id).numpy()
    runtime = tiny_lm.embed(first[:5] + second[:5], pooling=pooling, layers=layers, template=TEMPLATE)
    np.testing.assert_allclose(ours, runtime, rtol=1e-5, atol=1e-5)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == sim[:5]


def test_contrastive_objective_lowers_its_loss_and_changes_the_embeddings(tiny_causal_dir, tmp_path):
    from slmkit.models import load_model

    pairs, config = _pairs(), _config()
    base = load_model(str(tiny_causal_dir))
    before = _pair_loss(base, pairs, config)
    result = train(str(tiny_causal_dir), config, tmp_path / "run", text_pairs=pairs, progress=False)
    assert result.info["status"] == "done" and result.info["steps"] == 3 * 6  # 3 epochs of 60 pairs in tens
    assert result.model is not None and (tmp_path / "run" / "model" / "adapter_model.safetensors").is_file()
    adapted = load_model(str(tmp_path / "run"))  # base + LoRA adapter, merged on load
    after = _pair_loss(adapted, pairs, config)
    assert after < before - 0.02, (before, after)
    recipe = {"template": TEMPLATE, "pooling": "mean", "layers": [1, -1]}
    moved = np.abs(adapted.embed(FRUIT, **recipe) - base.embed(FRUIT, **recipe)).max()
    assert moved > 1e-3
    # The loaded base model, which the run started from, is untouched: it was loaded by name, not passed in.
    assert _pair_loss(base, pairs, config) == pytest.approx(before)


def test_contrastive_config_and_data_are_checked(tiny_causal_dir, tmp_path):
    with pytest.raises(ConfigError, match="P-tuning"):
        _config(method="ptuning")
    with pytest.raises(ConfigError, match="embed_template"):
        _config(embed_template="no slot")
    with pytest.raises(ConfigError, match="embed_pooling"):
        _config(embed_pooling="max")
    assert _config(embed_layers=["6", "-1"]).embed_layers == [6, -1]  # what the CLI's --set gives
    with pytest.raises(ConfigError, match="text_pairs"):
        train(str(tiny_causal_dir), _config(), tmp_path / "a", train_pairs=(["a"], ["b"]))
    from slmkit.errors import DataError

    with pytest.raises(DataError, match="pair 2"):
        train(str(tiny_causal_dir), _config(), tmp_path / "b", text_pairs=(["a b", "c"], ["d", " "], [1.0, 0.0]))


@pytest.mark.slow
def test_training_pools_exactly_as_the_runtime_embeds_on_gemma(gemma):
    """The real default model: its BOS attention sink is left out of mean pooling on both sides."""
    first, second, sim = _pairs()
    rows = encode_text_pairs(gemma.tokenizer, first[:3], second[:3], sim[:3], template=TEMPLATE,
                             max_length=gemma.max_length)
    batch = PairCollator(gemma.tokenizer.pad_token_id)([TextPairDataset(rows)[i] for i in range(3)])
    with torch.no_grad():
        states = backbone(gemma.model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                       output_hidden_states=True).hidden_states
        for pooling, layers in (("mean", [9, 18]), ("last", [18])):
            ours = pool_states(states, batch["input_ids"], batch["attention_mask"], pooling=pooling, layers=layers,
                               bos_id=gemma.tokenizer.bos_token_id).numpy()
            runtime = gemma.embed(first[:3] + second[:3], pooling=pooling, layers=layers, template=TEMPLATE)
            np.testing.assert_allclose(ours, runtime, rtol=1e-4, atol=1e-3 * np.abs(runtime).max())
