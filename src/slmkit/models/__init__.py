"""Shared model runtime: ModelSpec, the registry of named models, and the backends behind LanguageModel.

Knows nothing about tasks, ROUGE or Ray. torch/transformers are imported only when a model is loaded.

Example:
    >>> from slmkit.models import load_model
    >>> lm = load_model("gemma3-270m")
    >>> lm.embed(["A short text."]).shape
    (1, 640)
"""

from __future__ import annotations

from slmkit.models import _builtin  # noqa: F401  (registers the built-in models)
from slmkit.models._base import Generation, GenerationParams, LanguageModel, TokenStates
from slmkit.models._demo import runtime_report
from slmkit.models._inventory import ModelStatus, model_statuses
from slmkit.models._registry import (
    check_options,
    get_backend,
    list_models,
    register_backend,
    register_model,
    resolve_model,
)
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import cache_dir, converted_dir, locate_weights, package_installed, weights_checksum


def _load_transformers(spec, **options):
    from slmkit.models._transformers import load_transformers

    check_options("transformers", load_transformers, options)
    return load_transformers(spec, **options)


def _load_llamacpp(spec, **options):
    from slmkit.models._llamacpp import load_llamacpp

    check_options("llamacpp", load_llamacpp, options)
    return load_llamacpp(spec, **options)


def _load_ctranslate2(spec, **options):
    from slmkit.models._ctranslate2 import load_ctranslate2

    check_options("ctranslate2", load_ctranslate2, options)
    return load_ctranslate2(spec, **options)


register_backend("transformers", _load_transformers)
register_backend("llamacpp", _load_llamacpp)
register_backend("ctranslate2", _load_ctranslate2)


def load_model(name: str | ModelSpec = "gemma3-270m", *, backend: str | None = None, **options) -> LanguageModel:
    """Load a model by registry name, local directory, `.gguf` file or Hugging Face id.

    Args:
        name: what to load; see `slmkit models list` for the built-in names.
        backend: "transformers" (default), "ctranslate2" (fast CPU generation, extra `fast`) or "llamacpp"
            (optional extra, compiles).
        **options: forwarded to the backend loader (`num_threads`; transformers also takes `device`: "auto",
            "cpu", "cuda", "cuda:N", `dtype`: "auto", "float32", "bfloat16", "float16" (default
            `$SLMKIT_DTYPE`, else "auto": bfloat16 where the hardware computes it natively, else float32) and
            `quantize`: None or "int8" (CPU); ctranslate2 takes `quantize`: "int8" (default) or "float32";
            llama.cpp takes `n_ctx`). transformers and ctranslate2 take `keep_tokens`: texts in the language(s)
            the model will write; the output layer keeps only their tokens (plus special and byte tokens), so
            decoding is faster and the model generates (and, with transformers, embeds) but cannot score.
    """
    from slmkit._status import status

    spec = resolve_model(name, backend=backend)
    with status(f"loading model {spec.name} ({spec.backend})"):
        return get_backend(spec.backend)(spec, **options)


def model_checksum(name: str | ModelSpec, *, backend: str | None = None) -> str:
    """The checksum of the model's files alone (no model is loaded): what `load_model(name).info["checksum"]`
    reports for a float32 load. A reduced-precision load names its precision there (`...+bfloat16`, `...+int8`)
    and keeps this value in `info["weights_checksum"]`.

    Raises:
        UnknownModelError: the name is not registered and not a usable path.
        ModelUnavailableError: the model's weights are not installed.
    """
    return weights_checksum(resolve_model(name, backend=backend))


__all__ = [
    "Generation",
    "GenerationParams",
    "LanguageModel",
    "ModelSpec",
    "ModelStatus",
    "TokenStates",
    "cache_dir",
    "converted_dir",
    "get_backend",
    "list_models",
    "load_model",
    "locate_weights",
    "model_checksum",
    "model_statuses",
    "package_installed",
    "register_backend",
    "register_model",
    "resolve_model",
    "runtime_report",
]
