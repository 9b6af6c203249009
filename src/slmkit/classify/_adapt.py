"""Encoder adaptation: candidates the automatic configuration adds when frozen LM features may fall short.

Four candidates beside the chosen frozen configuration ("frozen"), in prior order:

- "concat": the frozen LM features next to a sentence encoder's (MiniLM, mean-pooled last layer), one PLR head;
- "encoder-ft": the sentence encoder after a SetFit-style contrastive fine-tune (pairs of training texts, same
  label = 1, different = 0, cosine-similarity loss), mean-pooled, PLR head;
- "concat-ft": the frozen LM features next to the fine-tuned encoder's;
- "lm-ft": the classifier's own LM after the same contrastive fine-tune, as LoRA adapters trained by
  `slmkit.train` (objective "contrastive"), on the hidden states of the frozen configuration (its template,
  pooling and layers; the backbone only, nothing projected onto the vocabulary), PLR head.

Selection is nested: every contrastive fine-tune is refit inside every fold on that fold's training rows only and
the fold's held-out rows are embedded by a model that never saw them. All candidates are scored on the same folds
(the first repetition of the frozen search's folds), and a candidate replaces the one before it in prior order
only when it beats it by more than one standard error of the paired per-fold difference - adaptation has to pay.

The encoder's fine-tune uses sentence-transformers' trainer (the `adapt` extra: `pip install slmkit[adapt]`); the
LM's uses slmkit.train (transformers + peft). The time budget covers the whole adaptation (fold fine-tunes, the
final one, embeddings); the encoder's fine-tunes come first and may use ENCODER_SHARE of it when the LM's are
tried too, the LM's get the rest. In each, the first fold measures the pace and shrinks the pairs per example to
fit, or gives that fine-tune up (and says why in the report) when even the minimum does not fit. That sizing
depends on the machine's speed; a fixed `adapt_pairs` (pairs per example for every fine-tune) turns it off, so a
fit gives the same result for a seed on any machine, however long it takes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from slmkit.classify._embedder import POOLINGS
from slmkit.errors import ConfigError

logger = logging.getLogger(__name__)

AUTO = "auto"
DEFAULT_ENCODER = "minilm-l6"
ENCODER_TEMPLATE = "{text}"  # a sentence encoder was trained on bare sentences
# "auto" budget: adaptation on where the LM runs on a GPU (a MiniLM fine-tune takes seconds there), off on a
# CPU, where the SetFit-sized recipe costs minutes per fold (measured: README, classification section).
GPU_BUDGET_S = 900.0
PAIRS_PER_EXAMPLE = 40  # SetFit's default: 20 iterations x (one positive + one negative pair) per example
MIN_PAIRS_PER_EXAMPLE = 4  # below this the fine-tune barely moves the encoder: give up rather than pretend
BATCH_SIZE = 16
LEARNING_RATE = 2e-5  # SetFit's body learning rate; constant, so a run stopped early is a shorter run
TRAIN_SHARE = 0.8  # of the budget left, for fine-tuning (the rest: embeddings, head fits)
CANDIDATES = ("frozen", "concat", "encoder-ft", "concat-ft", "lm-ft")
# The LM's LoRA fine-tune. Half SetFit's pairs: a gemma3-270m step costs about ten MiniLM steps (README). LoRA
# needs a higher learning rate than SetFit's full fine-tune of the encoder; rank 8 keeps the adapter that the
# artifact carries small (~7 MB for gemma3-270m) and the run close to the frozen model it starts from.
LM_PAIRS_PER_EXAMPLE = 20
LM_LEARNING_RATE = 1e-4
LM_LORA_R = 8
LM_LORA_ALPHA = 16
ENCODER_SHARE = 0.5  # of the budget, the most the encoder's fine-tunes may use when the LM's are tried as well
_NO_CHECKPOINTS = 10**9  # save_steps beyond any run: a fold fine-tune writes no checkpoint


def resolve_budget(budget, device: str) -> float:
    """Seconds allowed for adaptation: `budget` itself, or for "auto" GPU_BUDGET_S on a GPU and 0 on a CPU."""
    if isinstance(budget, str):
        if budget != AUTO:
            raise ConfigError(f"adapt_budget_s must be 'auto' or seconds >= 0, got {budget!r}")
        return GPU_BUDGET_S if device and device != "cpu" else 0.0
    if budget is None or not float(budget) >= 0:
        raise ConfigError(f"adapt_budget_s must be 'auto' or seconds >= 0 (0 = off), got {budget!r}")
    return float(budget)


def resolve_pairs(pairs) -> int | None:
    """Pairs per example for every contrastive fine-tune: None for "auto" (sized to the budget from the measured
    pace), or the fixed even number given."""
    if isinstance(pairs, str) and pairs.strip().lower() == AUTO:
        return None
    try:
        value = int(str(pairs).strip())  # an int or its digits; "8.0", 8.5 and True are refused
    except ValueError:
        value = None
    if value is None or value < MIN_PAIRS_PER_EXAMPLE or value % 2:
        raise ConfigError(f"adapt_pairs must be 'auto' or an even number of pairs per example >= "
                          f"{MIN_PAIRS_PER_EXAMPLE}, got {pairs!r}")
    return value


def finetune_available() -> bool:
    try:
        import datasets  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def sentence_pairs(texts: Sequence[str], y, pairs_per_example: int, seed) -> tuple[list, list, list]:
    """SetFit-style pairs: per round, every example with one random same-label and one other-label partner.

    Returns (first texts, second texts, similarity labels 1.0 / 0.0); rounds = pairs_per_example // 2.
    """
    y = np.asarray(y)
    rng = random.Random(seed)
    by_label = {label: np.flatnonzero(y == label).tolist() for label in np.unique(y)}
    others = {label: np.flatnonzero(y != label).tolist() for label in by_label}
    first, second, sim = [], [], []
    for _ in range(max(1, pairs_per_example // 2)):
        for i, label in enumerate(y):
            same = [j for j in by_label[label] if j != i] or [i]
            for j, value in ((rng.choice(same), 1.0), (rng.choice(others[label]), 0.0)):
                first.append(texts[i])
                second.append(texts[j])
                sim.append(value)
    order = list(range(len(first)))
    rng.shuffle(order)
    return [first[k] for k in order], [second[k] for k in order], [sim[k] for k in order]


def contrastive_finetune(base: str, texts: Sequence[str], y, *, pairs_per_example: int = PAIRS_PER_EXAMPLE,
                         seed=0, device: str = "cpu", pace=None):
    """Fine-tune a sentence encoder on pairs of `texts` (CosineSimilarityLoss); returns (SentenceTransformer, info).

    Args:
        base: registry name or directory of the encoder (loaded offline from its packaged weights).
        pace: optional callable(seconds per step, planned steps) -> steps allowed (0 = stop now), asked once
            after the first steps; lets a time budget shorten the run.
    """
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers import TrainerCallback

    try:
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import CosineSimilarityLoss

    from slmkit.models import locate_weights, resolve_model

    location, _ = locate_weights(resolve_model(base))
    start = time.perf_counter()
    first, second, sim = sentence_pairs(list(texts), y, pairs_per_example, seed)
    planned = math.ceil(len(first) / BATCH_SIZE)
    state = {"limit": None, "t0": None}
    Pace = _pace_callback(TrainerCallback, pace, planned, state)

    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="slmkit-adapt-") as scratch:
        warnings.simplefilter("ignore")
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        logging.getLogger("transformers").setLevel(logging.ERROR)
        model = SentenceTransformer(str(location), device=device, local_files_only=True)
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, num_train_epochs=1, per_device_train_batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE, lr_scheduler_type="constant", warmup_steps=0, save_strategy="no",
            report_to="none", logging_strategy="no", seed=int(seed or 0), data_seed=int(seed or 0),
            disable_tqdm=True, use_cpu=device == "cpu")
        data = Dataset.from_dict({"sentence1": first, "sentence2": second, "label": sim})
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                             loss=CosineSimilarityLoss(model), callbacks=[Pace()])
        trainer.train()
        steps = int(trainer.state.global_step)
    model.eval()
    info = {"base": str(base), "pairs": min(len(first), steps * BATCH_SIZE), "steps": steps,
            "planned_steps": planned, "stopped_by_budget": state["limit"] is not None and steps < planned,
            "pairs_per_example": pairs_per_example, "seconds": round(time.perf_counter() - start, 2)}
    return model, info


def _pace_callback(base, pace, planned: int, state: dict):
    """A TrainerCallback class that asks `pace(seconds per step, planned steps)` once for the steps allowed and
    stops training there; `state["limit"]` holds the answer (None until asked, or when `pace` is None)."""

    class Pace(base):
        # The pace is measured over steps 2-4: the first step pays one-off set-up (optimizer state, allocations)
        # and made a 300 s budget look several times too small on sst2.
        def on_step_end(self, args, st, control, **kwargs):
            if st.global_step == 1:
                state["t0"] = time.perf_counter()
            probe = min(4, planned)
            if pace is not None and state["limit"] is None and st.global_step == probe:
                elapsed = time.perf_counter() - state["t0"] if probe > 1 else 0.0
                per_step = elapsed / (probe - 1) if probe > 1 else 0.0
                state["limit"] = int(pace(per_step, planned))
            if state["limit"] is not None and st.global_step >= state["limit"]:
                control.should_training_stop = True
            return control

    return Pace


def lm_unsupported(lm, pooling: str = "mean") -> str | None:
    """Why `lm` cannot take the contrastive LoRA fine-tune of the `pooling` recipe (None when it can):
    slmkit.train trains causal LMs loaded with transformers, on one pooling."""
    if pooling not in POOLINGS:
        return f"the frozen choice pools {pooling!r}; the contrastive LoRA fine-tune trains one pooling"
    if not hasattr(lm, "model") or not hasattr(lm, "tokenizer"):
        return f"the LM runs on the {lm.info.get('backend', 'non-transformers')} backend; LoRA needs transformers"
    if lm.info.get("quantize"):
        return f"the LM is loaded quantized ({lm.info['quantize']}); LoRA trains float weights"
    tuned = getattr(lm, "prompt_tuned", False)
    if lm.spec.kind != "causal" or tuned:
        return (f"the LM is a {lm.spec.kind} model{' (P-tuned)' if tuned else ''}; the contrastive LoRA fine-tune "
                "trains causal LMs")
    return None


def lm_contrastive_finetune(lm, texts: Sequence[str], y, *, template: str, pooling: str, layers: Sequence[int],
                            pairs_per_example: int = LM_PAIRS_PER_EXAMPLE, seed=0, pace=None,
                            run_dir: str | Path | None = None):
    """SetFit-style contrastive LoRA fine-tune of a copy of `lm` through slmkit.train (objective "contrastive").

    The pairs are `sentence_pairs`; each text is embedded as the classifier embeds it (`template`, `pooling`,
    absolute hidden-state `layers`), and the cosine of each pair is pulled toward 1 (same label) or 0. The loaded
    `lm` itself is never modified (the training runs on a deep copy of its weights).

    Args:
        lm: a loaded transformers causal LanguageModel (the classifier's, from its EmbeddingCache).
        pace: as in `contrastive_finetune`.
        run_dir: where to keep the run (pruned to what `load_model(run_dir)` needs: the adapter and the run
            record); None trains in a temporary folder that is removed afterwards.

    Returns:
        (adapted, info): `adapted` is a LanguageModel serving the copy with the LoRA weights merged in (embed it
        right away; it is not the model `load_model(run_dir)` returns, but computes the same), `info` the sizes
        and times of the run.
    """
    from transformers import TrainerCallback

    from slmkit.models._transformers import TransformersLM
    from slmkit.train import TrainConfig, train

    start = time.perf_counter()
    first, second, sim = sentence_pairs(list(texts), y, pairs_per_example, seed)
    planned = math.ceil(len(first) / BATCH_SIZE)
    state = {"limit": None, "t0": None}
    config = TrainConfig(
        method="lora", objective="contrastive", lora_r=LM_LORA_R, lora_alpha=LM_LORA_ALPHA,
        learning_rate=LM_LEARNING_RATE, epochs=1, batch_size=BATCH_SIZE, warmup_ratio=0.0, scheduler="constant",
        max_length=int(lm.max_length), embed_template=template, embed_pooling=pooling,
        embed_layers=[int(v) for v in layers], save_steps=_NO_CHECKPOINTS, save_total_limit=1,
        logging_steps=max(1, planned // 10), report_to="none", seed=int(seed or 0))
    # A copy in float32, as slmkit.train wants its master weights (a GPU may serve the LM in bfloat16).
    model = copy.deepcopy(lm.model).float()
    copy_lm = TransformersLM(lm.spec, model, lm.tokenizer, {**lm.info, "dtype": "float32"})
    scratch = None
    if run_dir is None:
        scratch = tempfile.mkdtemp(prefix="slmkit-lm-adapt-")
        run_dir = Path(scratch) / "run"
    try:
        # Quiet: the Trainer prints every logged step when there is no progress bar (metrics.jsonl keeps them).
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            result = train(copy_lm, config, run_dir, text_pairs=(first, second, sim), task="classify-contrastive",
                           task_info={"template": template, "pooling": pooling, "layers": config.embed_layers},
                           progress=False, callbacks=[_pace_callback(TrainerCallback, pace, planned, state)()])
        merged = result.model.merge_and_unload()
        merged.eval()
        info = {**lm.info, "name": f"{lm.spec.name}-lm-ft", "checksum": None}
        adapted = TransformersLM(lm.spec, merged, lm.tokenizer, info)
        if scratch is None:
            prune_run(Path(run_dir))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    steps = int(result.info["steps"])
    losses = [h["loss"] for h in result.history if "loss" in h]
    out = {"base": lm.spec.name, "pairs": min(len(first), steps * BATCH_SIZE), "steps": steps,
           "planned_steps": planned, "stopped_by_budget": state["limit"] is not None and steps < planned,
           "pairs_per_example": pairs_per_example, "lora_r": LM_LORA_R, "learning_rate": LM_LEARNING_RATE,
           "first_loss": round(float(losses[0]), 5) if losses else None,
           "last_loss": round(float(losses[-1]), 5) if losses else None,
           "seconds": round(time.perf_counter() - start, 2)}
    return adapted, out


def prune_run(run_dir: Path) -> Path:
    """Keep what `load_model(run_dir)` needs and what documents the run: the adapter, the run record and config,
    the metrics and the model card. Drops checkpoints, the tokenizer copy (the base's is used) and the
    pickled training arguments (an artifact should hold no pickles)."""
    for name in ("checkpoints", "mlruns"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    model_dir = run_dir / "model"
    for path in model_dir.iterdir() if model_dir.is_dir() else ():
        if not path.name.startswith("adapter_"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return run_dir


def wrap_encoder(st_model, base: str):
    """The fine-tuned SentenceTransformer's transformer as a slmkit LanguageModel (same pooling path as a loaded
    one: `embed` mean-pools every token, as sentence-transformers does, without its final normalisation)."""
    from slmkit.models import resolve_model
    from slmkit.models._transformers import TransformersLM

    module = st_model[0]
    info = {"name": f"{resolve_model(base).name}-adapted", "backend": "transformers", "checksum": None,
            "dtype": "float32"}
    return TransformersLM(resolve_model(base), module.auto_model, module.tokenizer, info)


def save_encoder(st_model, directory: Path) -> Path:
    """Write the fine-tuned encoder as a plain transformers model folder that `slmkit.models.load_model` loads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    module = st_model[0]
    module.auto_model.save_pretrained(str(directory))
    module.tokenizer.save_pretrained(str(directory))
    return directory


def embed_encoder(lm, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    return lm.embed(list(texts), pooling="mean", layers=(-1,), template=ENCODER_TEMPLATE, batch_size=batch_size)


class ConcatEmbedder(TransformerMixin, BaseEstimator):
    """Features of several fitted-or-unfitted LMEmbedders side by side (one PLR head over all of them).

    Explanations use occlusion (`pooling` is "concat"): the parts tokenize differently, so exact per-token
    shares have no common tokens to land on.
    """

    pooling = "concat"

    def __init__(self, parts: Sequence = ()) -> None:
        self.parts = parts

    def fit(self, X=None, y=None) -> ConcatEmbedder:
        if len(self.parts) < 2:
            raise ConfigError("ConcatEmbedder needs at least two embedders")
        self.parts_ = [p if hasattr(p, "lm_") else p.fit() for p in self.parts]
        self.n_features_out_ = int(sum(p.n_features_out_ for p in self.parts_))
        # The artifact records this and load_classifier checks it: every part's weights count (the first part's
        # alone let a swapped encoder pass unnoticed).
        infos = [p.model_info_ for p in self.parts_]
        self.model_info_ = {**infos[0], "checksum": " | ".join(str(i.get("checksum")) for i in infos),
                            "parts": infos}
        self.batch_size = self.parts_[0].batch_size
        return self

    @property
    def embed_seconds_(self) -> float:
        return float(sum(p.embed_seconds_ for p in self.parts_))

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "parts_")
        return np.hstack([p.transform(X) for p in self.parts_]).astype(np.float32, copy=False)

    def embed_uncached(self, texts: Sequence[str]) -> np.ndarray:
        """Features straight from the models, not through the cache (occlusion variants are throw-away)."""
        return np.hstack([p.embed_uncached(texts) for p in self.parts_])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def paired_choice(scores: dict[str, np.ndarray]) -> str:
    """The first candidate (prior order) not beaten by a later one by more than one SE of their paired gap.

    `scores`: candidate -> per-fold held-out scores on the same folds (prior order = insertion order).
    """
    names = list(scores)
    chosen = names[0]
    for name in names[1:]:
        gap = scores[name] - scores[chosen]
        se = gap.std(ddof=1) / np.sqrt(len(gap)) if len(gap) > 1 else np.inf
        if gap.mean() > se:
            chosen = name
    return chosen


def adapt_folds(y, n_splits: int, seed) -> list:
    """The folds adaptation is scored on: the first repetition of the frozen search's repeated folds."""
    codes = LabelEncoder().fit_transform(np.asarray(y))
    n_splits = int(min(n_splits, np.bincount(codes).min()))
    return list(RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=1, random_state=seed)
                .split(np.zeros(len(codes)), codes))


def _fold_finetunes(folds, fit, *, pairs: int, limit_s: float, start: float, what: str, budget: str = "",
                    fixed: bool = False):
    """Run `fit(train rows, pairs per example, pace) -> (features of every text, info)` once per fold.

    The first fold measures the pace and shrinks `pairs` so that every fold's fine-tune and the final one fit
    before `limit_s` (seconds since `start`; TRAIN_SHARE of it for fine-tuning); later folds are skipped once the
    limit is passed. Returns (per-fold features or None, pairs per example, per-fold infos, why skipped or None).
    `what` names the fine-tune and `budget` the limit in those reasons. `fixed`: `pairs` as given for every fold,
    no pacing and no time limit, so the result does not depend on how fast the machine is.
    """
    if fixed:
        runs = [fit(train, pairs, None) for train, _ in folds]
        return [features for features, _ in runs], pairs, [info for _, info in runs], None
    budget = budget or f"budget of {limit_s:.0f} s"
    # fine-tuned examples over every fold and the final fit, in units of one fold's training set
    n = sum(len(tr) + len(te) for tr, te in folds[:1])
    fits = sum(len(tr) for tr, _ in folds) / len(folds[0][0]) + n / len(folds[0][0])
    decision: dict = {}

    def pace(seconds_per_step: float, planned: int) -> int:
        left = limit_s * TRAIN_SHARE - (time.perf_counter() - start)
        scale = min(1.0, left / max(seconds_per_step * planned * fits, 1e-9))
        decision["pairs"] = int(pairs * scale) // 2 * 2
        decision["seconds_per_step"] = round(seconds_per_step, 4)
        if decision["pairs"] < MIN_PAIRS_PER_EXAMPLE:
            return 0
        return planned if scale >= 1 else max(1, math.floor(planned * scale))

    feats, infos = [], []
    for i, (train, _) in enumerate(folds):
        if i and time.perf_counter() - start > limit_s:
            return None, pairs, infos, f"{budget} spent after {i} of {len(folds)} {what}fold fine-tunes"
        features, info = fit(train, pairs, pace if i == 0 else None)
        if i == 0 and decision.get("pairs", pairs) < MIN_PAIRS_PER_EXAMPLE:
            need = decision["seconds_per_step"] * info["planned_steps"] * fits * MIN_PAIRS_PER_EXAMPLE / pairs
            return None, pairs, infos, (f"{budget} too small: the minimum {what}fine-tune "
                                        f"({MIN_PAIRS_PER_EXAMPLE} pairs per example) needs about {need:.0f} s")
        if i == 0:
            pairs = decision.get("pairs", pairs)
        infos.append(info)
        feats.append(features)
    return feats, pairs, infos, None


def search(texts: list[str], y, frozen: np.ndarray, encoder_features, *, budget_s: float, encoder: str,
           n_splits: int = 5, class_weight="balanced", seed=None, device: str = "cpu",
           batch_size: int = 16, lm: dict | None = None, pairs: int | None = None) -> dict:
    """Score "frozen", "concat", "encoder-ft", "concat-ft" and "lm-ft" on the same folds; pick by `paired_choice`.

    Args:
        frozen: the chosen frozen LM features, shape (n_samples, d).
        encoder_features: callable () -> the frozen encoder's features of `texts` (cached).
        budget_s: seconds for everything here (the fine-tunes included); the final fine-tune is planned in.
        lm: the LM candidate's recipe, {"lm": the loaded LanguageModel, "template", "pooling", "layers" (absolute
            hidden-state indices)}: the frozen configuration the LoRA fine-tune adapts; None leaves "lm-ft" out.
        pairs: pairs per example for every fine-tune, fixed (no pacing, no time limit: the same result for a
            seed on any machine); None sizes them to the budget (PAIRS_PER_EXAMPLE / LM_PAIRS_PER_EXAMPLE at most).

    Returns:
        a report dict: candidates (name, per-fold scores, mean, se, C), chosen, and per fine-tune family the
        pairs per example for the final fine-tune, the fold fine-tunes' sizes and times and why it was skipped
        (None when it ran): `pairs_per_example`, `fold_finetunes`, `skipped` for the encoder, and `lm_` +
        the same for the LM.
    """
    from slmkit.classify._auto import SELECTION_C_GRID, fold_scores
    from slmkit.classify._plr import coded_class_weight
    from slmkit.errors import TrainingDivergedError

    start = time.perf_counter()
    y = np.asarray(y)
    labels = LabelEncoder().fit(y)
    codes = labels.transform(y)
    folds = adapt_folds(y, n_splits, seed)
    kwargs = {"class_weight": coded_class_weight(class_weight, labels), "seed": seed}  # as in select()

    def per_fold(make) -> np.ndarray:  # (n_folds, n_C): each fold scored on its own features
        return np.vstack([fold_scores(make(i), codes, [fold], **kwargs) for i, fold in enumerate(folds)])

    grids = {"frozen": per_fold(lambda i: frozen)}
    enc = encoder_features()
    grids["concat"] = per_fold(lambda i: np.hstack([frozen, enc]))
    lm_reason = "not asked for" if lm is None else lm_unsupported(lm["lm"], lm["pooling"])
    report: dict = {"budget_s": budget_s, "encoder": encoder, "n_folds": len(folds), "skipped": None,
                    "pairs_per_example": None, "fold_finetunes": [], "lm": None if lm is None else lm["lm"].spec.name,
                    "lm_skipped": lm_reason, "lm_pairs_per_example": None, "lm_fold_finetunes": [],
                    "pairs_fixed": pairs is not None}
    if not finetune_available():
        report["skipped"] = "sentence-transformers and datasets are not installed (pip install slmkit[adapt])"
    else:
        def encoder_fit(train, n_pairs, pace):
            model, info = contrastive_finetune(encoder, [texts[j] for j in train], y[train], pairs_per_example=n_pairs,
                                               seed=seed, device=device, pace=pace)
            features = embed_encoder(wrap_encoder(model, encoder), texts, batch_size)
            del model
            return features, info

        shared = lm_reason is None  # the LM's fine-tunes follow: the encoder's may use ENCODER_SHARE of the budget
        limit = budget_s * (ENCODER_SHARE if shared else 1.0)
        feats, encoder_pairs, infos, why = _fold_finetunes(
            folds, encoder_fit, pairs=pairs or PAIRS_PER_EXAMPLE, limit_s=limit, start=start, what="",
            budget=f"the encoder's share ({limit:.0f} s) of the {budget_s:.0f} s budget" if shared else "",
            fixed=pairs is not None)
        report.update(fold_finetunes=infos, skipped=why)
        if feats is not None:
            report["pairs_per_example"] = encoder_pairs
            grids["encoder-ft"] = per_fold(lambda i: feats[i])
            grids["concat-ft"] = per_fold(lambda i: np.hstack([frozen, feats[i]]))
    if lm_reason is None:
        recipe = {k: lm[k] for k in ("template", "pooling", "layers")}

        def lm_fit(train, n_pairs, pace):
            adapted, info = lm_contrastive_finetune(lm["lm"], [texts[j] for j in train], y[train], **recipe,
                                                    pairs_per_example=n_pairs, seed=seed, pace=pace)
            features = adapted.embed(texts, batch_size=batch_size, **recipe)
            del adapted
            return features, info

        if pairs is None and time.perf_counter() - start > budget_s:
            report["lm_skipped"] = f"budget of {budget_s:.0f} s spent before the LM's fine-tunes could start"
        else:
            try:
                feats, lm_pairs, infos, why = _fold_finetunes(folds, lm_fit, pairs=pairs or LM_PAIRS_PER_EXAMPLE,
                                                              limit_s=budget_s, start=start, what="LM ",
                                                              fixed=pairs is not None)
            except TrainingDivergedError as exc:
                feats, lm_pairs, infos, why = None, None, [], f"the LM's fine-tune diverged ({exc})"
            report.update(lm_fold_finetunes=infos, lm_skipped=why)
            if feats is not None:
                report["lm_pairs_per_example"] = lm_pairs
                grids["lm-ft"] = per_fold(lambda i: feats[i])
    columns, table = {}, []
    for name, grid in grids.items():
        best = int(grid.mean(axis=0).argmax())
        columns[name] = grid[:, best]
        col = grid[:, best]
        table.append({"candidate": name, "cv_mean": round(float(col.mean()), 5),
                      "cv_se": round(float(col.std(ddof=1) / np.sqrt(len(col))), 5),
                      "C": float(SELECTION_C_GRID[best]), "fold_scores": [round(float(v), 5) for v in col]})
    report.update(table=table, chosen=paired_choice(columns), metric="neg_log_loss",
                  rule="a later candidate replaces the current pick only if it beats it by more than one SE "
                       "of the paired per-fold difference",
                  seconds=round(time.perf_counter() - start, 2))
    return report
