"""Table-in, artifact-out entry points behind `slmkit classify ...` (also usable from Python)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, f1_score

from slmkit._constants import DEFAULT_MODEL, DEFAULT_SEED
from slmkit.classify._artifact import _versions, load_classifier, read_config, save_classifier
from slmkit.classify._auto import AUTO
from slmkit.classify._cache import EmbeddingCache
from slmkit.classify._embedder import POOLING_CHOICES
from slmkit.classify._classifier import LMClassifier
from slmkit.classify._curves import DEFAULT_SHOTS, learning_curve, plot_learning_curves
from slmkit.classify._explain import explain
from slmkit.classify._global import explanation_stability, global_explanation
from slmkit.classify._plr import check_label_counts
from slmkit.classify._report import write_html_report
from slmkit.data import fingerprint_file, is_missing, read_table, write_json, write_table
from slmkit.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclass
class ClassifyConfig:
    """Everything `slmkit classify fit` and `curve` need besides file paths (CLI options map 1:1 to fields)."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "registry name or local model directory"})
    template: str = field(default=AUTO, metadata={"help": "auto (chosen by CV) or an instruction with {text} once"})
    pooling: str = field(default=AUTO, metadata={"help": "auto (chosen by CV), mean (exact explanations), last or "
                                                         "mean+last"})
    layers: tuple | str = field(default=AUTO, metadata={"help": "auto (chosen by CV) or layers to concatenate; "
                                                                "floats are depth fractions"})
    penalty: str = field(default="l2", metadata={"help": "l2, l1 or elasticnet"})
    cv: int = field(default=5, metadata={"help": "folds used to choose the penalty strength"})
    class_weight: str | None = field(default="balanced", metadata={"help": "balanced or None"})
    batch_size: int = field(default=16, metadata={"help": "texts per forward pass"})
    text_column: str = field(default="text", metadata={"help": "column holding the texts"})
    label_column: str = field(default="label", metadata={"help": "column holding the labels"})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "seed for CV folds and draws"})
    cache_dir: str | None = field(default="default", metadata={"help": "embedding cache dir; None: memory only"})
    adapt_budget: float | str = field(default=AUTO, metadata={"help": "seconds for encoder adaptation candidates "
                                                                      "(0 = off; auto: 900 on a GPU, off on a CPU)"})
    adapt_pairs: int | str = field(default=AUTO, metadata={"help": "pairs per example for adaptation's fine-tunes: "
                                                                  "auto (sized to the budget) or a fixed even number "
                                                                  "(machine-independent)"})

    def __post_init__(self) -> None:
        if self.pooling not in (AUTO, *POOLING_CHOICES):
            raise ConfigError(f"pooling must be 'auto' or one of {POOLING_CHOICES}, got {self.pooling!r}")
        if self.penalty not in ("l2", "l1", "elasticnet"):
            raise ConfigError(f"penalty must be 'l2', 'l1' or 'elasticnet', got {self.penalty!r}")
        if self.template != AUTO and self.template.count("{text}") != 1:
            raise ConfigError(f"template must be 'auto' or contain '{{text}}' exactly once, got {self.template!r}")
        if self.class_weight not in ("balanced", None):
            raise ConfigError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        if self.cv < 2:
            raise ConfigError(f"cv must be >= 2 (cross-validation folds), got {self.cv}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.layers != AUTO:
            self.layers = tuple(self.layers)
        if self.adapt_budget != AUTO:
            given = self.adapt_budget
            try:
                self.adapt_budget = float(given)
            except (TypeError, ValueError):
                self.adapt_budget = -1.0
            if not self.adapt_budget >= 0:
                raise ConfigError(f"adapt_budget must be 'auto' or seconds >= 0 (0 = off), got {given!r}")
        from slmkit.classify._adapt import resolve_pairs

        fixed = resolve_pairs(self.adapt_pairs)
        self.adapt_pairs = AUTO if fixed is None else fixed

    def classifier(self, cache: EmbeddingCache | None = None) -> LMClassifier:
        return LMClassifier(self.model, template=self.template, pooling=self.pooling, layers=self.layers,
                            penalty=self.penalty, cv=self.cv, class_weight=self.class_weight,
                            batch_size=self.batch_size, random_state=self.seed, cache=cache or self.cache(),
                            adapt_budget_s=self.adapt_budget, adapt_pairs=self.adapt_pairs)

    def cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.cache_dir)


def label_array(values, where: str) -> np.ndarray:
    """A table's labels as the user wrote them (strings stay strings, JSON numbers stay numbers).

    Raises:
        DataError: a missing label (naming its 1-based row).
    """
    values = list(values)
    for row, value in enumerate(values):
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: row {row + 1}: missing label; fill it in or drop the row")
        if isinstance(value, (list, tuple, dict, np.ndarray)):
            raise DataError(f"{where}: row {row + 1}: a label must be one value, found a {type(value).__name__}")
    values = [v.item() if isinstance(v, np.generic) else v for v in values]  # numpy scalars as Python values
    if {type(v) for v in values} == {int, float} and all(float(v).is_integer() for v in values):
        values = [int(v) for v in values]  # JSONL with 1 and 1.0: one class, not two
    mixed = len({type(v) for v in values}) > 1  # e.g. JSONL with 1 and "1"
    # scikit-learn reads fractional numbers (0.5, 1.5) as a regression target; as text they are classes
    fractional = any(isinstance(v, float) and not v.is_integer() for v in values)
    if mixed or fractional:
        return np.array([str(v) for v in values])
    return np.array(values)


def read_labelled(path, text_column: str, label_column: str) -> tuple[list[str], np.ndarray]:
    """Texts and labels from a table; errors name the file, row and column."""
    frame = read_table(path, required=[label_column], text_columns=[text_column])
    where = f"{path}: column {label_column!r}"
    y = label_array(frame[label_column], where)
    check_label_counts(y, where=where)
    return frame[text_column].tolist(), y


def _label_key(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    try:
        return repr(float(value)) if not isinstance(value, bool) else str(value)
    except (TypeError, ValueError):
        return str(value)


def match_labels(y, classes) -> np.ndarray:
    """`y` as strings comparable with `classes` (as strings), so 1, "1" and "1.0" name the same class.

    A label spelled exactly as a class is that class; the numeric reading is a fallback used only where it names
    one class ("01" and "1" may both be classes: zero-padded codes).
    """
    exact = {str(c) for c in classes}
    by_key: dict[str, list[str]] = {}
    for c in classes:
        by_key.setdefault(_label_key(c), []).append(str(c))

    def match(v) -> str:
        text = str(v.item() if isinstance(v, np.generic) else v)
        if text in exact:
            return text
        found = by_key.get(_label_key(v), [])
        return found[0] if len(found) == 1 else text

    return np.array([match(v) for v in y])


def _scores(y_true, pred) -> dict:
    return {"accuracy": float(accuracy_score(y_true, pred)),
            "macro_f1": float(f1_score(y_true, pred, average="macro")),
            "per_class": classification_report(y_true, pred, output_dict=True, zero_division=0), "n": len(y_true)}


def fit_classifier(train_path, out_dir, config: ClassifyConfig) -> tuple[LMClassifier, dict]:
    """Fit on a labelled table and save the artifact to `out_dir`; returns it with its training metrics."""
    texts, y = read_labelled(train_path, config.text_column, config.label_column)
    clf = config.classifier().fit(texts, y)
    metrics = {"train": _scores(y, clf.predict(texts)), "C": clf.head_.C_, "fit_seconds": clf.fit_seconds_,
               "adapt": (clf.adapt_ or {}).get("chosen"),
               "embed_seconds": clf.embed_seconds_, "select_seconds": clf.select_seconds_,
               "train_file": str(train_path)}
    save_classifier(clf, out_dir, metrics=metrics, data_fingerprint=fingerprint_file(train_path))
    return clf, metrics


def predict_table(model_dir, input_path, output_path, *, text_column: str = "text",
                  cache_dir: str | None = "default") -> pd.DataFrame:
    """Add `prediction` and `probability` columns to a table and write it to `output_path`."""
    frame = read_table(input_path, text_columns=[text_column])  # a bad table fails before the model loads
    clf = load_classifier(model_dir, cache=EmbeddingCache(cache_dir))
    proba = clf.predict_proba(frame[text_column].tolist())
    frame["prediction"] = clf.classes_[proba.argmax(axis=1)]
    frame["probability"] = proba.max(axis=1).round(5)
    write_table(output_path, frame)
    return frame


def evaluate_table(model_dir, input_path, *, text_column: str = "text", label_column: str = "label",
                   output_path=None, cache_dir: str | None = "default") -> dict:
    """Accuracy, macro-F1 and a per-class report of a saved classifier on a labelled table.

    Raises:
        DataError: no label of the table is a class the classifier knows (the scores would be a silent 0).
    """
    frame = read_table(input_path, required=[label_column], text_columns=[text_column])
    labels = label_array(frame[label_column], f"{input_path}: column {label_column!r}")
    # The classes are in the artifact's config: a table with none of them is refused before its LM loads.
    config = read_config(model_dir)
    if "classes" not in config:
        load_classifier(model_dir)  # raises its "incomplete artifact" error
    classes = np.asarray(config["classes"])
    y = match_labels(labels, classes)
    known = {str(c) for c in classes}
    unseen = sorted({v for v in y if v not in known})
    if unseen and len(unseen) == len(set(y)):
        raise DataError(f"{input_path}: column {label_column!r}: none of its labels ({', '.join(unseen[:5])}) is a "
                        f"class of {model_dir} ({', '.join(sorted(known)[:10])}); is this the right label column "
                        "or model?")
    if unseen:
        rows = [i + 1 for i, v in enumerate(y) if v not in known]
        warnings.warn(f"{input_path}: {len(rows)} row(s) (first: row {rows[0]}) have label(s) the classifier "
                      f"never saw ({', '.join(unseen[:5])}); they count as errors", stacklevel=2)
    clf = load_classifier(model_dir, cache=EmbeddingCache(cache_dir))
    metrics = _scores(y, clf.predict(frame[text_column].tolist()).astype(str)) | {"file": str(input_path)}
    if unseen:
        metrics["unseen_labels"] = unseen
    if output_path:
        write_json(output_path, metrics)
    return metrics


def curve_tables(train_path, test_path, out_dir, config: ClassifyConfig, *, shots=DEFAULT_SHOTS,
                 draws: int = 5) -> dict:
    """Learning curve of `config`'s classifier: writes `curve.json` and `curve.png` to `out_dir`."""
    if not shots or min(shots) < 1 or draws < 1:
        raise ConfigError(f"shots must be positive examples-per-class counts and draws >= 1, "
                          f"got {list(shots)}, {draws}")
    texts, y = read_labelled(train_path, config.text_column, config.label_column)
    test_texts, y_test = read_labelled(test_path, config.text_column, config.label_column)
    # A budget over the smallest class's count would draw the same whole pool at every such budget and report it
    # as "k per class": those budgets are left out, and named in the result.
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    smallest = int(counts.min())
    skipped = [int(k) for k in shots if k > smallest]
    shots = [k for k in shots if k <= smallest]
    if not shots:  # a small table: its one honest budget is the smallest class's count
        if smallest < 2:
            raise ConfigError(f"{train_path}: class {str(labels[counts.argmin()])!r} has {smallest} example; a "
                              "learning curve needs at least 2 per class")
        shots = [smallest]
    if skipped:
        logger.warning("%s: shots %s skipped: the smallest class has %d examples", train_path, skipped, smallest)
    fits = []

    def record(k, draw, model) -> None:  # what each fit used: "auto" settings resolve per fit
        adapt = getattr(model, "adapt_", None) or {}
        fits.append({"k": int(k), "draw": int(draw), "template": model.template_, "pooling": model.pooling_,
                     "layers": [float(v) if isinstance(v, float) else int(v) for v in model.layers_],
                     "C": float(model.head_.C_), "adapted": adapt.get("chosen"),
                     "model_checksum": model.embedder_.model_info_.get("checksum")})

    curve = learning_curve(config.classifier(), texts, y, test_texts, y_test, shots=shots, draws=draws,
                           seed=config.seed, on_fit=record)
    out_dir = Path(out_dir)
    result = curve.to_dict() | {
        "model": config.model, "template": config.template, "train": str(train_path), "test": str(test_path),
        "config": asdict(config), "fits": fits, "versions": _versions(),
        "skipped_shots": {"shots": skipped, "smallest_class_count": smallest} if skipped else None,
        "data_sha256": {"train": fingerprint_file(train_path), "test": fingerprint_file(test_path)},
    }
    write_json(out_dir / "curve.json", result)
    plot_learning_curves({config.model: curve}, out_dir / "curve.png", title=f"{Path(train_path).name}")
    return result


def explain_table(model_dir, input_path, output_html, *, text_column: str = "text", limit: int = 20,
                  method: str = "auto", train_path=None, label_column: str = "label", n_boot: int = 0,
                  seed: int = DEFAULT_SEED, cache_dir: str | None = "default") -> dict:
    """Explain the first `limit` texts of a table as an HTML report (+ a JSON beside it).

    With `train_path` (mean pooling), the report adds the words that push toward each class over the training
    texts, and `n_boot` > 1 measures explanation stability across bootstrap re-fits of the head.
    """
    if limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    if method not in ("auto", "exact", "occlusion"):
        raise ConfigError(f"method must be 'auto', 'exact' or 'occlusion', got {method!r}")
    if n_boot < 0:
        raise ConfigError(f"n_boot must be >= 0, got {n_boot}")
    if n_boot == 1 or (n_boot and train_path is None):  # it was silently ignored
        raise ConfigError(f"n_boot={n_boot}: stability needs at least 2 re-fits of the head on the training table "
                          "(give --train with --n-boot 2 or more; 0 turns it off)")
    json_path = explain_json_path(output_html)
    if json_path.resolve() == Path(output_html).resolve():
        raise ConfigError(f"{output_html}: the HTML report and its JSON would be the same file; give an .html name")
    frame = read_table(input_path, text_columns=[text_column])  # bad tables fail before the model loads
    if train_path is not None:
        train_texts, y = read_labelled(train_path, text_column, label_column)
    clf = load_classifier(model_dir, cache=EmbeddingCache(cache_dir))
    texts = frame[text_column].tolist()[:limit]
    explanations = explain(clf, texts, method=method)
    result: dict = {"explanations": [e.to_dict() for e in explanations]}
    global_words = None
    if train_path is not None and clf.embedder_.pooling != "mean":
        # Word rankings need exact (mean-pooled) contributions; per-text explanations above used occlusion.
        result["global_skipped"] = (f"global words and stability need mean pooling in one embedder; this "
                                    f"classifier uses {clf.embedder_.pooling!r} pooling (refit with pooling='mean' "
                                    "and --adapt-budget 0 for them)")
    elif train_path is not None:
        global_words = global_explanation(clf, train_texts)
        result["global"] = global_words
        if n_boot > 1:
            result["stability"] = explanation_stability(clf, train_texts, y, texts, n_boot=n_boot,
                                                        seed=seed).to_dict()
    write_html_report(output_html, explanations, title=f"Explanations: {Path(input_path).name}",
                      global_words=global_words)
    write_json(json_path, result)
    return result


def explain_json_path(output_html) -> Path:
    """Where `explain_table` writes the JSON beside its HTML report."""
    return Path(output_html).with_suffix(".json")
