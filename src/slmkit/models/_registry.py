"""Registry of named models and of backends. No other code switches on model-name strings."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from slmkit._constants import RUN_INFO_NAME
from slmkit.errors import ConfigError, UnknownModelError
from slmkit.models._spec import ModelSpec

if TYPE_CHECKING:
    from slmkit.models._base import LanguageModel

_MODELS: dict[str, ModelSpec] = {}
_BACKENDS: dict[str, Callable[..., LanguageModel]] = {}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# A Hub id is "owner/name"; anything else that is not registered must be an existing path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Register `spec` under `spec.name` (lower case, unused)."""
    if not _NAME.match(spec.name):
        raise ConfigError(f"model name {spec.name!r} must be lower case letters, digits, '.', '_' or '-'")
    if spec.name in _MODELS:
        raise ConfigError(f"model name {spec.name!r} is already registered")
    _MODELS[spec.name] = spec
    return spec


def register_backend(name: str, factory: Callable[..., LanguageModel]) -> None:
    """Register a backend factory `factory(spec, **options) -> LanguageModel`."""
    if name in _BACKENDS:
        raise ConfigError(f"backend {name!r} is already registered")
    _BACKENDS[name] = factory


def check_options(backend: str, loader: Callable, options: dict) -> None:
    """A one-line ConfigError for an option `loader` (a backend's keyword-only loader) does not take, naming those
    it does; without it the user meets a TypeError traceback (e.g. `dtype` given to the ctranslate2 backend)."""
    params = inspect.signature(loader).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [name for name, p in params.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"the {backend} backend does not take {', '.join(unknown)}; it takes "
                          f"{', '.join(accepted) or 'no options'}")


def list_models() -> list[ModelSpec]:
    return [_MODELS[k] for k in sorted(_MODELS)]


def get_backend(name: str) -> Callable[..., LanguageModel]:
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name]


def resolve_model(name_or_path: str | ModelSpec, backend: str | None = None) -> ModelSpec:
    """Turn a registry name, a local directory, a `.gguf` file or a Hub id into a ModelSpec.

    Raises:
        UnknownModelError: not registered, not an existing path and not shaped like a Hub id.
    """
    if isinstance(name_or_path, ModelSpec):
        spec = name_or_path
    elif name_or_path in _MODELS:
        spec = _MODELS[name_or_path]
    else:
        path = Path(name_or_path).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            spec = ModelSpec(name=path.stem.lower(), path=str(path.parent), gguf_file=path.name)
        elif path.is_dir() and (path / RUN_INFO_NAME).is_file():
            spec = _run_spec(path)
        elif path.is_dir():
            spec = ModelSpec(name=_local_name(path), path=str(path), kind=_kind_of_dir(path))
        elif _HUB_ID.match(str(name_or_path)) and not str(name_or_path).startswith((".", "/", "~")):
            spec = ModelSpec(name=str(name_or_path).lower(), hub_id=str(name_or_path))
        else:
            known = ", ".join(sorted(_MODELS)) or "none"
            raise UnknownModelError(
                f"unknown model {name_or_path!r}: not a registered name ({known}), an existing directory or "
                ".gguf file, or a Hugging Face id like 'owner/name'"
            )
    if backend and backend != spec.backend:
        spec = replace(spec, backend=backend)
    return spec


def _run_spec(run_dir: Path) -> ModelSpec:
    """A fine-tuned run folder (slmkit.train): full weights load directly; adapters load over their base."""
    try:
        info = json.loads((run_dir / RUN_INFO_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{run_dir}: unreadable {RUN_INFO_NAME} ({exc})") from exc
    model_dir = run_dir / "model"
    if info.get("status") != "done" or not model_dir.is_dir():
        raise ConfigError(f"{run_dir}: the training run has not finished (no model/ folder); resume it first")
    name = _local_name(run_dir)
    if info.get("method") == "full":
        return ModelSpec(name=name, path=str(model_dir), kind=info.get("kind", "causal"))
    base = {k: v for k, v in info["base_model"].items() if k not in ("name", "adapter")}
    return ModelSpec(name=name, adapter=str(model_dir), **base)


def _local_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", path.resolve().name.lower()).strip("-")
    return name or "local"


def _kind_of_dir(path: Path) -> str:
    """'seq2seq' for encoder-decoders, 'encoder' for architectures that are not LMs, else 'causal'."""
    config = path / "config.json"
    if not config.is_file():
        return "causal"
    values = json.loads(config.read_text())
    if values.get("is_encoder_decoder"):
        return "seq2seq"
    architectures = values.get("architectures") or []
    # "...ForCausalLM", and the older "...LMHeadModel" naming of causal LMs (GPT2LMHeadModel, e.g. KoGPT2)
    causal = any("CausalLM" in a or a.endswith("LMHeadModel") for a in architectures)
    return "causal" if not architectures or causal else "encoder"
