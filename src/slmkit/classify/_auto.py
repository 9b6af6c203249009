"""Automatic configuration: template, pooling and layers chosen by repeated stratified CV on the training data.

With every choice left to "auto" there is one candidate per template (the instruction first, then the bare
text): both poolings of the middle and the last layer side by side ("mean+last" x "middle+last", one forward
pass, 4 x hidden size features). The study behind that (bench/classify_selection.py, bench/results/
classify_selection.json; 32 and 64 examples per class x 5 draws on five tasks) compared ways of choosing among
the 12 single-pooling candidates (2 templates x mean/last x last/middle/middle+last) with one head over all four
blocks: the wide candidates, picked by the one-SE rule of the time, scored 0.862 mean test accuracy against 0.847
for the one-standard-error pick among the 12, ahead on every task (sst2 +1.6, nsmc_ko +2.3, trec +2.0, sms_spam +1.0,
ag_news +0.2 points), and cost 2 candidates' CV instead of 12. A fixed pooling or layer set (or a model with
only its last layer, llama.cpp) searches the single-pooling candidates it allows, as before.

Candidates share forward passes: one pass per template gives every pooling and every layer (stored in the
embedding cache one (template, pooling, layer) at a time), so the search costs at most two passes over the
training texts plus cheap head fits. The candidate with the best mean CV score over the repeated folds wins (ties
go to the earlier one). Until this rule, the first candidate within one standard error of the best won, a prior
toward the instruction template; bench/classify_selection_rule.py measured both with the library's own `select`
on the same draws (32 and 64 per class x 5 draws, the five tasks, two seeds, plus Enron e-mails held out): the
best CV mean scored 0.865 / 0.857 mean test accuracy (seed 0 / seed 1) against 0.861 / 0.851 for the one-SE
prior and 0.864 / 0.854 for a prior on the paired per-fold difference; on the Enron e-mails, a task outside that
choice, 0.957 against 0.958 for both priors (two seeds). With two candidates scored on the same ten folds, the
unpaired standard error mostly measures how hard each fold is, so the one-SE prior kept the instruction where
every fold preferred the bare text (trec at 32 per class: 0.851 against 0.876 for the best CV mean).
`one_se_choice` stays for those studies.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler

from slmkit.classify._embedder import BOTH, POOLING_CHOICES
from slmkit.classify._plr import coded_class_weight
from slmkit.errors import ConfigError

AUTO = "auto"
# The paper's finding, and ours on the training folds: an instruction around the text beats the bare text.
GENERIC_TEMPLATE = "Text: {text}\nQuestion: What is this text about, and what is its tone?\nAnswer:"
PLAIN_TEMPLATE = "{text}"
POOLINGS = ("mean", "last")
LAYER_SETS = {"last": (-1,), "middle": (0.5,), "middle+last": (0.5, -1)}
MAX_LABELS_IN_TEMPLATE = 8  # beyond this the instruction gets long (every pass pays for it): use the generic one
# A coarser C grid than the final fit's (13 values from 1e-5), warm-started: enough to rank candidates, and the
# strongest penalties (which predict little more than the class prior) never decide a ranking.
SELECTION_C_GRID = np.logspace(-3.5, 1.0, 4)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def label_template(classes: Sequence) -> str | None:
    """An instruction naming the user's labels ("Is this text sports, business or world?"), or None when the
    labels are not words (numbers such as 0/1, too many or too long labels)."""
    names = [str(c).replace("_", " ").strip() for c in classes]
    if len(names) > MAX_LABELS_IN_TEMPLATE or any(not n or len(n) > 40 or _is_number(n) or "{text}" in n
                                                   for n in names):
        return None
    listed = f"{', '.join(names[:-1])} or {names[-1]}"
    return f"Text: {{text}}\nQuestion: Is this text {listed}?\nAnswer:"


@dataclass(frozen=True)
class Candidate:
    """One frozen-feature configuration: where the text goes, how tokens are pooled, which layers."""

    template_kind: str  # "label-aware", "generic", "plain" or "given"
    template: str
    pooling: str
    layers: str  # a key of LAYER_SETS, or "given"
    layer_values: tuple


def candidates(template, pooling, layers, classes, *, deep: bool = True) -> list[Candidate]:
    """The candidate set, in prior order (the plain default first); fixed choices restrict it to themselves.

    Args:
        template, pooling, layers: the estimator's parameters ("auto" or a fixed choice).
        classes: the labels, for the label-aware template.
        deep: whether the model exposes intermediate layers (llama.cpp gives the last one only).
    """
    if template == AUTO:
        aware = label_template(classes)
        templates = [("label-aware", aware) if aware else ("generic", GENERIC_TEMPLATE), ("plain", PLAIN_TEMPLATE)]
    else:
        templates = [("given", template)]
    poolings = list(POOLINGS) if pooling == AUTO else [pooling]
    if pooling != AUTO and pooling not in POOLING_CHOICES:
        raise ConfigError(f"pooling must be 'auto' or one of {POOLING_CHOICES}, got {pooling!r}")
    if layers == AUTO:
        layer_sets = list(LAYER_SETS.items()) if deep else [("last", (-1,))]
    else:
        layer_sets = [("given", tuple(layers))]
    if pooling == AUTO and layers == AUTO and deep:  # see the module docstring for the study behind this
        return [Candidate(kind, text, BOTH, "middle+last", LAYER_SETS["middle+last"]) for kind, text in templates]
    return [Candidate(kind, text, how, name, values) for kind, text in templates for how in poolings
            for name, values in layer_sets]


@dataclass
class AutoReport:
    """What automatic configuration tried and chose (recorded in the artifact).

    Attributes:
        chosen: index into `table` of the chosen candidate.
        table: per candidate: template kind, pooling, layers, CV mean and standard error, best C.
        metric, n_splits, n_repeats, rule: how candidates were scored and picked.
        seconds: wall time of the search (forward passes included).
    """

    chosen: int
    table: list[dict]
    metric: str
    n_splits: int
    n_repeats: int
    rule: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def fold_scores(X: np.ndarray, codes: np.ndarray, folds: list, *, class_weight, seed) -> np.ndarray:
    """Held-out log-likelihood (negative log-loss) per fold and C, array of shape (n_folds, n_C).

    The L2 head of PLRClassifier on standardised features, warm-started along the C grid; log-loss is computed
    directly because sklearn's scorer checks cost more than these small fits.
    """
    Xs = StandardScaler().fit_transform(X)
    scores = np.zeros((len(folds), len(SELECTION_C_GRID)))
    # Hundreds of small fits: sklearn's per-call checks would cost more than the fits (inputs checked above).
    with warnings.catch_warnings(), config_context(skip_parameter_validation=True, assume_finite=True):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, (train, test) in enumerate(folds):
            model = LogisticRegression(class_weight=class_weight, tol=1e-3, max_iter=200, warm_start=True,
                                       random_state=seed)
            for j, C in enumerate(SELECTION_C_GRID):
                model.set_params(C=C).fit(Xs[train], codes[train])
                proba = np.clip(model.predict_proba(Xs[test]), 1e-15, 1.0)
                scores[i, j] = np.log(proba[np.arange(len(test)), np.searchsorted(model.classes_, codes[test])]).mean()
    return scores


def _summary(scores: np.ndarray) -> tuple[float, float, float]:
    """(mean, standard error, C) at the C whose mean over folds is best."""
    best = int(scores.mean(axis=0).argmax())
    column = scores[:, best]
    return float(column.mean()), float(column.std(ddof=1) / np.sqrt(len(column))), float(SELECTION_C_GRID[best])


def one_se_choice(means: np.ndarray, ses: np.ndarray) -> int:
    """The first candidate (prior order) whose mean is within one standard error of the best mean (the rule
    before the best CV mean; kept for bench/classify_selection*.py)."""
    best = int(means.argmax())
    return int(np.flatnonzero(means >= means[best] - ses[best])[0])


def select(features, cands: Sequence[Candidate], y, *, n_splits: int = 5, n_repeats: int = 2, class_weight="balanced",
           seed=None) -> AutoReport:
    """Score every candidate by repeated stratified CV on (features(c), y) and pick the best mean CV score.

    Every candidate is scored on the first repetition of the folds; only those within two standard errors of
    the best go on to the remaining repetitions (the others cannot win), which roughly halves the cost.

    Args:
        features: callable Candidate -> array of shape (n_samples, n_features) (cached embeddings).
        cands: candidates in prior order.
        y: labels of shape (n_samples,); every class needs >= 2 examples.
    """
    start = time.perf_counter()
    encoder = LabelEncoder().fit(np.asarray(y))
    codes = encoder.transform(np.asarray(y))
    class_weight = coded_class_weight(class_weight, encoder)  # the fits see codes, a dict names the user's labels
    n_splits = int(min(n_splits, np.bincount(codes).min()))
    folds = list(RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
                 .split(np.zeros(len(codes)), codes))
    first, rest = folds[:n_splits], folds[n_splits:]
    kwargs = {"class_weight": class_weight, "seed": seed}
    scores = [fold_scores(features(c), codes, first, **kwargs) for c in cands]
    summaries = [_summary(s) for s in scores]
    best = int(np.argmax([m for m, _, _ in summaries]))
    bar = summaries[best][0] - 2 * summaries[best][1]
    for i, cand in enumerate(cands):
        if rest and summaries[i][0] >= bar:
            scores[i] = np.vstack([scores[i], fold_scores(features(cand), codes, rest, **kwargs)])
            summaries[i] = _summary(scores[i])
    table = [{"template": c.template_kind, "pooling": c.pooling, "layers": c.layers, "cv_mean": round(m, 5),
              "cv_se": round(se, 5), "C": C, "n_folds": len(s), "template_text": c.template,
              "layer_values": list(c.layer_values),
              "fold_scores": [round(float(v), 5) for v in s[:, int(s.mean(axis=0).argmax())]]}
             for c, (m, se, C), s in zip(cands, summaries, scores)]
    # Only candidates scored on every repetition compete (the others were clearly worse on the first one).
    full = np.array([row["n_folds"] == len(folds) for row in table])
    means = np.where(full, [row["cv_mean"] for row in table], -np.inf)
    return AutoReport(chosen=int(np.argmax(means)), table=table, metric="neg_log_loss", n_splits=n_splits,
                      n_repeats=n_repeats, rule="best mean CV score over the repeated folds (ties: the earlier "
                      "candidate)", seconds=round(time.perf_counter() - start, 3))
