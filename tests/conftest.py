"""Shared fixtures: tiny random-weight models built once per run, and the real default model for `slow` tests."""

from __future__ import annotations

import os
import shutil

import pytest

# Tests never touch the network or a hub cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# float32 inference on every CPU, whatever the environment says: `dtype="auto"` means bfloat16 on AVX-512 BF16 /
# AMX CPUs, and tests that compare two computations (batching, engines, cache vs direct, hand-computed losses)
# need float32's exactness. The auto rule and bf16 itself are tested on purpose (tests/models/test_precision.py,
# tests/classify/test_bf16.py), which is also what such a CPU runs by default.
os.environ["SLMKIT_DTYPE"] = "float32"

# Read-only model files the real-model (`slow`) tests reuse from the user's cache instead of rebuilding them
# every run: the assembled GGUFs (from the weight packages) and their safetensors conversions (~100 s each).
SHARED_CACHE_ENTRIES = ("gguf", "converted")


@pytest.fixture(scope="session", autouse=True)
def test_cache_dir(tmp_path_factory):
    """Point $SLMKIT_CACHE at a per-session temp dir, so caches the tests write (embedding caches, checksum
    memos, anything new) never land in the user's home.

    The user's existing model entries (SHARED_CACHE_ENTRIES) are symlinked in, so the slow tests still find the
    converted gemma3-270m; only a first-ever conversion of a real model writes through that link into the
    user's cache, where every later run (tests or not) reuses it. The checksum memo is copied, not linked.
    """
    from slmkit.models._weights import cache_dir

    user = cache_dir()  # $SLMKIT_CACHE as the run was started, else ~/.cache/slmkit
    tmp = tmp_path_factory.mktemp("slmkit-cache")
    for name in SHARED_CACHE_ENTRIES:
        if (user / name).is_dir():
            (tmp / name).symlink_to((user / name).resolve(), target_is_directory=True)
    if (user / "checksums.json").is_file():
        shutil.copyfile(user / "checksums.json", tmp / "checksums.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLMKIT_CACHE", str(tmp))
        yield tmp


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
    """A two-layer random Gemma 3 behind the LanguageModel interface (loaded through the real path; float32 even
    where a test changes $SLMKIT_DTYPE, since other tests compare against it)."""
    from slmkit.models import load_model

    return load_model(str(tiny_causal_dir), dtype="float32")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_dir):
    from slmkit.models import load_model

    return load_model(str(tiny_encoder_dir), dtype="float32")  # float32 on every CPU, as tiny_lm


@pytest.fixture(scope="session")
def gemma():
    """The real gemma3-270m (first use converts the GGUF, ~1 min; later runs hit the cache). Use in `slow` tests."""
    from slmkit.models import load_model

    return load_model("gemma3-270m", dtype="float32")  # float32 on every CPU, as tiny_lm
