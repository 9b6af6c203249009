"""PLRClassifier: standardised features + penalised logistic regression, penalty strength chosen by CV."""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from slmkit.errors import DataError

# Tens of examples in hundreds of dimensions need far stronger shrinkage than sklearn's default grid reaches.
DEFAULT_C_RANGE = (-5.0, 1.0)


def check_label_counts(y, where: str = "y") -> None:
    """Every class needs at least two examples for a cross-validated penalty; say which one has fewer."""
    y = np.asarray(y)
    if y.dtype == object and len({type(v) for v in y.tolist()}) > 1:
        kinds = sorted({type(v).__name__ for v in y.tolist()})
        raise DataError(f"{where}: labels mix types ({', '.join(kinds)}); use one type, e.g. all strings")
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:
        shown = repr(labels[0].item() if hasattr(labels[0], "item") else labels[0]) if len(labels) else "none"
        raise DataError(f"{where}: found only 1 class ({shown}); a classifier needs at least two labels")
    few = [(lab.item() if hasattr(lab, "item") else lab, int(c)) for lab, c in zip(labels, counts) if c < 2]
    if few:
        shown = ", ".join(f"{lab!r} ({c} example)" for lab, c in few)
        raise DataError(f"{where}: label(s) {shown} have fewer than 2 examples; add examples or drop the label")


class PLRClassifier(ClassifierMixin, BaseEstimator):
    """Penalised logistic regression on standardised features (Buckmann & Hill 2024's "PLR" head).

    Args:
        penalty: "l2" (default), "l1" or "elasticnet".
        Cs: number of inverse penalty strengths on a log grid from 1e-5 to 10, or an explicit list.
        l1_ratios: elastic-net mixing values tried when penalty="elasticnet".
        cv: folds used to choose C (reduced to the smallest class count when fewer examples exist).
        scoring: sklearn scorer name used to choose C.
        class_weight: "balanced" (default: reweights rare classes) or None or a dict.
        standardize: scale features to zero mean, unit variance before the penalty applies.
        max_iter: solver iterations.
        random_state: seed for fold shuffling and the saga solver.

    Attributes:
        classes_: array of shape (n_classes,).
        coef_: array of shape (1, n_features) for two classes, else (n_classes, n_features), on the raw
            (unstandardised) features: the scaler is folded in, so `X @ coef_.T + intercept_` is the decision
            function.
        intercept_: array of shape (1,) or (n_classes,).
        C_: the chosen inverse penalty strength; l1_ratio_: the chosen mixing (0 for l2).
        n_features_in_: number of features seen in fit.
    """

    _parameter_constraints: ClassVar[dict] = {
        "penalty": [StrOptions({"l2", "l1", "elasticnet"})],
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like"],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "scoring": [str, None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "standardize": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, penalty: str = "l2", Cs=13, l1_ratios=(0.2, 0.5, 0.8), cv: int = 5,
                 scoring: str | None = "neg_log_loss", class_weight="balanced", standardize: bool = True,
                 max_iter: int = 2000, random_state=None) -> None:
        self.penalty = penalty
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.scoring = scoring
        self.class_weight = class_weight
        self.standardize = standardize
        self.max_iter = max_iter
        self.random_state = random_state

    def _grid(self) -> tuple[np.ndarray, list[float]]:
        if isinstance(self.Cs, Integral):
            Cs = np.logspace(*DEFAULT_C_RANGE, int(self.Cs))
        else:
            Cs = np.asarray(self.Cs, dtype=float)
            if Cs.size == 0 or (Cs <= 0).any():
                raise DataError(f"PLRClassifier: Cs must be positive numbers, got {self.Cs!r}")
        ratios = {"l2": [0.0], "l1": [1.0]}.get(self.penalty, [float(r) for r in self.l1_ratios])
        if any(not 0 <= r <= 1 for r in ratios):
            raise DataError(f"PLRClassifier: l1_ratios must lie in [0, 1], got {self.l1_ratios!r}")
        return Cs, ratios

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y) -> PLRClassifier:
        """Standardise X, choose C (and l1_ratio) by stratified CV, refit on all of X.

        Args:
            X: array of shape (n_samples, n_features).
            y: array of shape (n_samples,) of labels; every label needs >= 2 examples.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        check_label_counts(y)
        Cs, ratios = self._grid()
        self.scaler_ = StandardScaler(with_mean=self.standardize, with_std=self.standardize).fit(X)
        Xs = self.scaler_.transform(X)
        # sklearn's CV path fails on number-like string labels ("0", "1"; scikit-learn 1.9), so the logistic
        # model sees integer codes and classes_ keeps the user's labels.
        encoder = LabelEncoder().fit(y)
        codes = encoder.transform(y)
        class_weight = coded_class_weight(self.class_weight, encoder)
        n_splits = int(min(self.cv, np.bincount(codes).min()))
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        solver = "lbfgs" if self.penalty == "l2" else "saga"
        model = LogisticRegressionCV(Cs=Cs, l1_ratios=ratios, cv=folds, scoring=self.scoring, solver=solver,
                                     class_weight=class_weight, max_iter=self.max_iter,
                                     random_state=self.random_state, use_legacy_attributes=False)
        with warnings.catch_warnings():
            # Strongly penalised fits at the grid's ends converge slowly and do not win; the chosen fit is
            # checked below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Xs, codes)
        self.classes_ = encoder.classes_
        self.C_ = float(np.ravel(model.C_)[0])
        self.l1_ratio_ = float(np.ravel(model.l1_ratio_)[0])
        self.estimator_ = model
        self.n_iter_ = np.atleast_1d(np.max(model.n_iter_))
        scale = self.scaler_.scale_ if self.standardize else np.ones(X.shape[1])
        mean = self.scaler_.mean_ if self.standardize else np.zeros(X.shape[1])
        # Fold the scaler into the weights: w.((x - m) / s) + b = (w / s).x + (b - w.(m / s)).
        self.coef_ = model.coef_ / scale
        self.intercept_ = model.intercept_ - model.coef_ @ (mean / scale)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits: array of shape (n_samples,) for two classes (positive = classes_[1]), else (n_samples, n_classes)."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes) in the order of `classes_`."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1 - p, p])
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X) -> np.ndarray:
        """Most probable label for each row, array of shape (n_samples,)."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


def coded_class_weight(class_weight, encoder: LabelEncoder):
    """`class_weight` for a model fitted on `encoder`'s integer codes: a dict's keys (the user's labels) become
    codes; "balanced" and None pass through.

    Raises:
        DataError: the dict names a label that is not in y.
    """
    if not isinstance(class_weight, dict):
        return class_weight
    unknown = [k for k in class_weight if k not in set(encoder.classes_.tolist())]
    if unknown:
        raise DataError(f"PLRClassifier: class_weight names label(s) {unknown!r} not found in y "
                        f"(labels: {encoder.classes_.tolist()!r})")
    return {int(encoder.transform([k])[0]): w for k, w in class_weight.items()}
