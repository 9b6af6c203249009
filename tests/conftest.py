"""Shared fixtures: tiny random-weight models built once per run, and the real default model for `slow` tests."""

from __future__ import annotations

import os

import pytest

# Tests never touch the network or a hub cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory):
    from slmkit.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-causal"), kind="causal")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    from slmkit.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-encoder"), kind="encoder")


@pytest.fixture(scope="session")
def tiny_lm(tiny_causal_dir):
    """A two-layer random Gemma 3 behind the LanguageModel interface (loaded through the real path)."""
    from slmkit.models import load_model

    return load_model(str(tiny_causal_dir))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir):
    from slmkit.models import load_model

    return load_model(str(tiny_encoder_dir))


@pytest.fixture(scope="session")
def gemma():
    """The real gemma3-270m (first use converts the GGUF, ~1 min; later runs hit the cache). Use in `slow` tests."""
    from slmkit.models import load_model

    return load_model("gemma3-270m")
