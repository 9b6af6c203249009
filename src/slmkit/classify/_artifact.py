"""Save a fitted LMClassifier as an artifact directory, and load it back without any command line.

Layout: `slmkit_config.json` (estimator params, model name + checksum, resolved layers, classes, chosen penalty,
library versions, seed, optional data fingerprint), `head.npz` (the head's weights, scaler folded in) and,
when given, `metrics.json`. The LM's weights are not copied: the config names the model and its checksum, and
loading warns when the model found now differs from the one the head was trained on. When encoder adaptation
chose a fine-tuned encoder, its weights are saved in `encoder/` (a plain transformers folder); when it chose the
LoRA-adapted LM ("lm-ft"), its slmkit.train run folder (adapter weights, run record, no checkpoints) is saved in
`lm_adapter/`, which `load_model` serves as the base model named in its record plus the adapter, offline. The
config's `parts` point there.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from slmkit._constants import CONFIG_NAME, METRICS_NAME
from slmkit.classify._auto import AutoReport
from slmkit.classify._cache import EmbeddingCache
from slmkit.classify._classifier import LMClassifier
from slmkit._files import atomic_dir
from slmkit.data import atomic_open, write_json
from slmkit.errors import ConfigError, DataError
from slmkit.train import is_run_dir

HEAD_NAME = "head.npz"
ENCODER_DIR = "encoder"  # a fine-tuned sentence encoder's weights, inside the artifact
LM_ADAPTER_DIR = "lm_adapter"  # the LM's contrastive LoRA run (adapter + run record), inside the artifact
ARTIFACT_KIND = "slmkit.classify.LMClassifier"
_PARAMS = ("model", "template", "pooling", "layers", "penalty", "Cs", "l1_ratios", "cv", "class_weight",
           "batch_size", "random_state", "adapt_budget_s", "adapt_encoder", "adapt_pairs")


def _versions() -> dict:
    import sklearn

    import slmkit

    out = {"slmkit": slmkit.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__}
    try:
        import torch
        import transformers

        out.update(torch=torch.__version__, transformers=transformers.__version__)
    except ImportError:  # the llama.cpp backend runs without them; record what exists
        pass
    return out


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def save_classifier(clf: LMClassifier, directory: str | Path, *, metrics: dict | None = None,
                    data_fingerprint: str | None = None) -> Path:
    """Write a fitted LMClassifier to `directory` (created if needed); every file is written atomically.

    Raises:
        NotFittedError: the classifier was not fitted.
        ConfigError: the model was given as an object rather than a name or path (it could not be reloaded).
    """
    check_is_fitted(clf, "head_")
    if not isinstance(clf.model, str):
        raise ConfigError(f"save needs the model given by registry name or path, got {type(clf.model).__name__}")
    directory = Path(directory)
    params = {name: _jsonable(getattr(clf, name)) for name in _PARAMS}
    parts = None
    if getattr(clf, "parts_", None):
        parts = []
        for part in clf.parts_:
            part = {k: _jsonable(v) for k, v in part.items()}
            if part.get("adapted"):  # the fine-tuned weights travel with the artifact
                folder = LM_ADAPTER_DIR if is_run_dir(part["model"]) else ENCODER_DIR
                target = directory / folder
                if Path(part["model"]).resolve() != target.resolve():
                    with atomic_dir(target) as tmp:  # a kill mid-copy leaves the previous folder, not half of one
                        shutil.copytree(part["model"], tmp, dirs_exist_ok=True)
                part["model"] = folder
            parts.append(part)
    classes = [_jsonable(c) for c in clf.classes_]
    config = {
        "kind": ARTIFACT_KIND, "params": params, "model": clf.embedder_.model_info_,
        "chosen": {"template": clf.template_, "pooling": clf.pooling_, "layers": _jsonable(clf.layers_)},
        "auto": clf.auto_.to_dict() if getattr(clf, "auto_", None) is not None else None,
        "parts": parts, "adapt": getattr(clf, "adapt_", None),
        "layers_resolved": _layers_resolved(clf.embedder_),
        "n_features": int(clf.head_.n_features_in_),
        "classes": classes, "C": clf.head_.C_, "l1_ratio": clf.head_.l1_ratio_, "seed": params["random_state"],
        "data_fingerprint": data_fingerprint, "versions": _versions(),
    }
    buffer = io.BytesIO()
    np.savez(buffer, coef=clf.head_.coef_, intercept=clf.head_.intercept_)
    with atomic_open(directory / HEAD_NAME, "wb") as handle:
        handle.write(buffer.getvalue())
    write_json(directory / CONFIG_NAME, config)
    if metrics is not None:
        write_json(directory / METRICS_NAME, metrics)
    return directory


def _layers_resolved(embedder) -> list:
    """The absolute layers embedded: a list, or one list per part for concatenated embedders."""
    parts = getattr(embedder, "parts_", None)
    if parts:
        return [[int(v) for v in getattr(p, "layers_", ())] for p in parts]
    return [int(v) for v in getattr(embedder, "layers_", ())]


def read_config(directory: str | Path) -> dict:
    """The artifact's `slmkit_config.json`, checked to be a classifier artifact."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise DataError(f"{directory}: no {CONFIG_NAME}; is this a directory written by `slmkit classify fit`?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if config.get("kind") != ARTIFACT_KIND:
        raise DataError(f"{path}: kind is {config.get('kind')!r}, expected {ARTIFACT_KIND!r}")
    return config


def load_classifier(directory: str | Path, *, cache: EmbeddingCache | None = None) -> LMClassifier:
    """Rebuild the fitted LMClassifier saved in `directory` (loads its LM through `cache`)."""
    import slmkit

    config = read_config(directory)
    head_path = Path(directory) / HEAD_NAME
    if not head_path.is_file():
        raise DataError(f"{directory}: no {HEAD_NAME} beside {CONFIG_NAME}; the artifact is incomplete "
                        "(copy the whole folder, or fit again)")
    missing = [k for k in ("params", "model", "classes", "C", "l1_ratio") if k not in config]
    if missing:
        raise DataError(f"{Path(directory) / CONFIG_NAME}: missing key(s) {', '.join(missing)}; "
                        "the artifact is incomplete or from another tool (fit again)")
    unknown = set(config["params"]) - set(_PARAMS)
    if unknown:
        warnings.warn(f"{directory}: ignoring parameters {sorted(unknown)} written by slmkit "
                      f"{config['versions'].get('slmkit')} (this is {slmkit.__version__}); upgrade slmkit",
                      stacklevel=2)
    params = {k: v for k, v in config["params"].items() if k in _PARAMS}
    if isinstance(params["layers"], list):
        params["layers"] = tuple(params["layers"])
    clf = LMClassifier(**params, cache=cache)
    # Artifacts from before automatic configuration hold fixed params only; those are then the choice.
    chosen = config.get("chosen") or {k: params[k] for k in ("template", "pooling", "layers")}
    clf.template_, clf.pooling_, clf.layers_ = chosen["template"], chosen["pooling"], tuple(chosen["layers"])
    clf.auto_ = AutoReport(**config["auto"]) if config.get("auto") else None
    clf.adapt_ = config.get("adapt")
    clf.parts_ = None
    if config.get("parts"):
        clf.parts_ = []
        for part in config["parts"]:
            part = dict(part, layers=tuple(part["layers"]))
            if part.get("adapted"):
                part["model"] = str(Path(directory) / part["model"])
                if not Path(part["model"]).is_dir():
                    raise DataError(f"{directory}: no {Path(part['model']).name}/ folder, but the classifier uses a "
                                    "fine-tuned model saved there; copy the whole artifact folder, or fit again")
            clf.parts_.append(part)
    clf.embedder_ = clf._make_embedder().fit()
    saved, found = config["model"].get("checksum"), clf.embedder_.model_info_.get("checksum")
    if saved != found:
        warnings.warn(f"{directory}: model {params['model']!r} has checksum {found}, but the head was trained on "
                      f"{saved}; predictions may be meaningless. Refit, or install the original weights.",
                      stacklevel=2)
    try:
        with np.load(head_path) as arrays:
            coef, intercept = arrays["coef"], arrays["intercept"]
    except (OSError, ValueError, KeyError, EOFError) as exc:  # zip / pickle / missing-array failures alike
        raise DataError(f"{head_path}: not a readable classifier head ({exc}); fit again") from exc
    if coef.shape[1] != clf.embedder_.n_features_out_:
        raise DataError(f"{directory}: head expects {coef.shape[1]} features but the model gives "
                        f"{clf.embedder_.n_features_out_}; the artifact does not match this model")
    head = clf._make_head()
    head.classes_, head.coef_, head.intercept_ = np.asarray(config["classes"]), coef, intercept
    head.n_features_in_, head.C_, head.l1_ratio_ = coef.shape[1], config["C"], config["l1_ratio"]
    clf.head_, clf.classes_ = head, head.classes_
    clf.embed_seconds_, clf.fit_seconds_, clf.select_seconds_ = 0.0, 0.0, 0.0
    return clf


def read_metrics(directory: str | Path) -> dict | None:
    path = Path(directory) / METRICS_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

