"""What a `predict` output was made with: the identity its resume manifest records (see slmkit.data).

A rerun into an existing output continues it only when this identity is unchanged, so rows made by another
method, model, prompt setting or input are never passed off as new ones.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from slmkit.data import fingerprint_file
from slmkit.data._table import table_suffix
from slmkit.summarize._data import DialogueColumns

# Fields that change how fast rows are made, not what they say.
_NOT_IDENTITY = ("batch_size", "chunk_size", "limit")
# The settings the extractive baselines' rows depend on (see build_summarizer).
_EXTRACTIVE = {"lead": ("method", "lead_k"), "longest": ("method",)}


def predict_identity(input_path: str | Path, config, columns: DialogueColumns | None = None) -> dict:
    """Config, model checksum and input fingerprint of a `predict` run (no model is loaded).

    Raises:
        DataError: the input (or the example table) is missing or of an unsupported type.
        UnknownModelError / ModelUnavailableError: the model cannot be found.
    """
    input_path = Path(input_path)
    table_suffix(input_path)
    from slmkit.summarize._predict import resolved_max_new_tokens, resolved_repetition_penalty

    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_IDENTITY}
    if config.method in _EXTRACTIVE:  # no model, prompt or seed makes their rows: a change there is not a new run
        settings = {k: settings[k] for k in _EXTRACTIVE[config.method]}
    elif "max_new_tokens" in settings:  # the budget it decodes with (None: a fine-tuned run's own, or 64)
        settings["max_new_tokens"] = resolved_max_new_tokens(config)
        settings["repetition_penalty"] = resolved_repetition_penalty(config)  # likewise (None: 1.0 or the run's)
    if settings.get("dtype", "") is None:  # unset: outputs written before the option existed still resume
        del settings["dtype"]
    if settings.get("quantize", "") in (None, "int8"):  # the engine's default, as before the option existed
        del settings["quantize"]
    identity = {
        "config": settings,
        "columns": asdict(columns or DialogueColumns()),
        "input_sha256": fingerprint_file(input_path),
    }
    if config.examples:
        table_suffix(Path(config.examples))
        identity["examples_sha256"] = fingerprint_file(config.examples)
    if getattr(config, "keep_tokens", None):  # the trimmed vocabulary comes from this table
        table_suffix(Path(config.keep_tokens))
        identity["keep_tokens_sha256"] = fingerprint_file(config.keep_tokens)
    if config.method in ("zero-shot", "few-shot"):
        from slmkit.models import model_checksum

        identity["model_checksum"] = model_checksum(config.model)
        if config.backend == "transformers":
            # dtype None follows $SLMKIT_DTYPE or "auto" (bfloat16 where the CPU computes it natively), so the same
            # options can decode in another precision on another machine or environment; rows of two precisions
            # must not mix. Recorded only when reduced, so float32 outputs of earlier versions still resume.
            from slmkit.models._precision import resolve_precision
            from slmkit.models._transformers import resolve_device

            precision = resolve_precision(config.dtype, None, resolve_device(None))[0]
            if precision != "float32":
                identity["precision"] = precision
    return identity
