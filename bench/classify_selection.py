"""How should automatic configuration pick among its candidates? A study on the `auto_audit` draws (issue 10).

`bench/classify.py --methods auto_audit` refits every candidate of the automatic configuration on the same
training rows as the default and scores it on the test rows. This script takes those draws (32 and 64 per class,
5 draws, the five shared tasks; embeddings come back from the cache the audit filled) and compares selection
rules, all of which see the training rows only:

- `one_se`: the library's rule: repeated stratified 5-fold CV (2 repeats) of held-out log-loss, the first
  candidate in prior order within one standard error of the best;
- `argmax`: the candidate with the best CV log-loss;
- `top3_mean`: the mean predicted probability of the three candidates with the best CV log-loss (an ensemble of
  heads; it costs both templates' forward passes at prediction time when the three span both);
- `all_mean`: the mean predicted probability of every candidate;
- `concat_template`: one PLR head over the concatenated features of every pooling and layer set of the
  best candidate's template (one forward pass at prediction time);
- `concat_all`: one PLR head over every candidate's features side by side (both templates);
- `default`: the first candidate (label-aware or generic template, mean pooling, last layer), never changed.

Each rule's test accuracy is averaged over draws and tasks. The candidates and the rules are fixed here in
advance; a rule that wins should win on every task, not on the average alone, before it becomes the default.

Result (bench/results/classify_selection.json, gemma3-270m in bf16 on an AVX-512 BF16 EPYC): mean test accuracy
over the five tasks: default 0.820, one_se 0.847, argmax 0.849, top3_mean 0.864, all_mean 0.867,
concat_template 0.865, concat_all 0.865, concat_cv 0.862, concat_before_one_se 0.859, concat_after_one_se 0.851.
`concat_cv` beats `one_se` on every task and needs one forward pass and two candidates' CV, so it became the
library's rule (slmkit/classify/_auto.py); the ensembles score a little higher but cost both templates' passes.
Checked where it was not chosen: with `--seed 1` (other test rows and draws; classify_selection_seed1.json)
concat_cv 0.852 vs one_se 0.845, ahead on every task; on the held-out Enron e-mails (`--tasks enron_spam`,
classify_selection_heldout.json) concat_cv 0.960 vs one_se 0.949 and default 0.944.

    SLMKIT_NUM_THREADS=1 python bench/classify_selection.py   # after bench/classify.py --methods auto_audit
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.preprocessing import LabelEncoder

from slmkit.classify import EmbeddingCache, LMClassifier, LMEmbedder, PLRClassifier, sample_per_class
from slmkit.classify._auto import (LAYER_SETS, POOLINGS, Candidate, _summary, candidates, fold_scores,
                                  one_se_choice)
from slmkit.data import write_json

from classify import DATA, TASKS, Task, load_task


def gutenberg_books_table() -> Path:
    """Which of six Project Gutenberg novels (three by Austen, three by Chesterton) a paragraph comes from: the
    quality benchmark's clean paragraphs (licence stripped, 40-250 words), read in place from ../shared/data and
    written as a text,label table to the temp directory (derived data stays out of the repository)."""
    import pandas as pd

    from quality import MAX_EVAL_WORDS, MIN_WORDS, _read, gutenberg_paragraphs

    rows = [(paragraph, path.stem) for path in sorted((DATA.parent / "quality" / "gutenberg").glob("*.txt"))
            for paragraph in dict.fromkeys(gutenberg_paragraphs(_read(path)))
            if MIN_WORDS <= len(paragraph.split()) <= MAX_EVAL_WORDS]
    out = Path(tempfile.gettempdir()) / "slmkit_bench_gutenberg_books.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(out, index=False)
    return out


# Tasks outside the five-task benchmark, to check a rule where it was not chosen (data read in place). Their
# Task fields other than the name and splits are unused here (the study builds its own candidates). The third
# field caps each text's characters: Enron e-mails run to 20,000 characters (5,000+ tokens), and embedding them
# whole did not finish in 50 minutes on one core; the first 2,000 characters (subject and opening; the median
# e-mail is 549) keep the study to minutes.
HELD_OUT = {
    "enron_spam": (Task("enron_spam", "", "", {}, None, None),
                   DATA.parent / "quality" / "enron_spam" / "enron1_spam1500_ham1500.csv", 2000),
    # a six-class task of another kind (style and story, not topic or sentiment); a path-making function
    "gutenberg_books": (Task("gutenberg_books", "", "", {}, None, None), gutenberg_books_table, None),
}


def load_study_task(name: str, seed: int):
    """A task's pool and test rows as both selection studies read them: a shared task from bench/classify.py, or
    a held-out one (its table made on demand, its texts capped)."""
    task, path, max_chars = HELD_OUT.get(name, (TASKS.get(name), None, None))
    texts, y, test_texts, y_test, _ = load_task(task, 500, 256, seed, path=path() if callable(path) else path)
    if max_chars:
        texts, test_texts = [t[:max_chars] for t in texts], [t[:max_chars] for t in test_texts]
    return texts, y, test_texts, y_test


logger = logging.getLogger("bench.classify_selection")
RULES = ("default", "one_se", "argmax", "top3_mean", "all_mean", "concat_template", "concat_all", "concat_cv",
         "concat_after_one_se", "concat_before_one_se")


def single_candidates(classes) -> list[Candidate]:
    """The 12 single-pooling candidates the library searched before this study, in its prior order (template,
    then pooling, then layer set); the concatenations are built from their cached blocks below."""
    templates = list(dict.fromkeys((c.template_kind, c.template) for c in candidates("auto", "auto", "auto", classes)))
    return [Candidate(kind, text, how, name, values) for kind, text in templates for how in POOLINGS
            for name, values in LAYER_SETS.items()]


def cv_table(cands, features, y, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CV mean and standard error of held-out log-likelihood per candidate (every candidate on every fold)."""
    codes = LabelEncoder().fit_transform(y)
    n_splits = int(min(5, np.bincount(codes).min()))
    folds = list(RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=2, random_state=seed)
                 .split(np.zeros(len(codes)), codes))
    summaries = [_summary(fold_scores(features(c), codes, folds, class_weight="balanced", seed=seed)) for c in cands]
    return np.array([m for m, _, _ in summaries]), np.array([se for _, se, _ in summaries])


def study_draw(task_name: str, cache, texts, y, test_texts, y_test, k: int, seed: int) -> dict:
    idx = sample_per_class(y, k, seed)
    train, y_train = [texts[i] for i in idx], y[idx]
    cands = single_candidates(np.unique(y_train))

    def features(cand):
        return LMEmbedder("gemma3-270m", template=cand.template, pooling=cand.pooling, layers=cand.layer_values,
                          cache=cache).fit().transform(train)

    means, ses = cv_table(cands, features, y_train, seed=0)  # the library's folds use the estimator's seed (0)
    probas, accuracy, classes = [], [], None
    for cand in cands:
        clf = LMClassifier("gemma3-270m", template=cand.template, pooling=cand.pooling,
                           layers=tuple(cand.layer_values), cache=cache, random_state=0).fit(train, y_train)
        proba = clf.predict_proba(test_texts)
        classes = clf.classes_
        probas.append(proba)
        accuracy.append(float(accuracy_score(y_test, classes[proba.argmax(axis=1)])))
    order = np.argsort(-means)

    def ensemble(members) -> float:
        mean = np.mean([probas[i] for i in members], axis=0)
        return float(accuracy_score(y_test, classes[mean.argmax(axis=1)]))

    def blocks_of(members) -> list[tuple]:
        # (template, pooling, layer) blocks, each once: a "middle+last" candidate repeats its single-layer siblings
        return list(dict.fromkeys((cands[i].template, cands[i].pooling, v) for i in members
                                  for v in cands[i].layer_values))

    def stack(blocks, rows) -> np.ndarray:
        return np.hstack([LMEmbedder("gemma3-270m", template=t, pooling=how, layers=(v,), cache=cache).fit()
                          .transform(rows) for t, how, v in blocks])

    def concat(blocks) -> float:
        head = PLRClassifier(random_state=0).fit(stack(blocks, train), y_train)
        return float(accuracy_score(y_test, head.predict(stack(blocks, test_texts))))

    # One concatenated candidate per template: both poolings x middle and last layer (one forward pass).
    templates = list(dict.fromkeys(c.template for c in cands))
    per_template = [blocks_of([i for i, c in enumerate(cands) if c.template == t]) for t in templates]
    concat_means, concat_ses = cv_table(per_template, lambda blocks: stack(blocks, train), y_train, seed=0)
    concat_accuracy = [concat(blocks) for blocks in per_template]
    best_template = templates.index(cands[int(order[0])].template)
    picks = {"default": 0, "one_se": one_se_choice(means, ses), "argmax": int(order[0])}
    scores = {rule: accuracy[i] for rule, i in picks.items()}
    scores["top3_mean"] = ensemble(order[:3])
    scores["all_mean"] = ensemble(range(len(cands)))
    scores["concat_template"] = concat_accuracy[best_template]
    scores["concat_all"] = concat(blocks_of(range(len(cands))))
    # How an implementation would pick: the concatenated candidates under the library's one-SE rule, alone
    # (template only, the instruction first), after the 12 (prior to the single blocks), or before them.
    scores["concat_cv"] = concat_accuracy[one_se_choice(concat_means, concat_ses)]
    after = one_se_choice(np.r_[means, concat_means], np.r_[ses, concat_ses])
    scores["concat_after_one_se"] = accuracy[after] if after < len(cands) else concat_accuracy[after - len(cands)]
    before = one_se_choice(np.r_[concat_means, means], np.r_[concat_ses, ses])
    n = len(templates)
    scores["concat_before_one_se"] = concat_accuracy[before] if before < n else accuracy[before - n]
    logger.info("%s k=%d seed=%d: %s (best candidate %.3f)", task_name, k, seed,
                " ".join(f"{r} {v:.3f}" for r, v in scores.items()), max(accuracy))
    return {"shots": k, "seed": seed, "accuracy": scores, "best_candidate": max(accuracy),
            "concat_accuracy": concat_accuracy, "concat_cv_mean": concat_means.round(5).tolist(),
            "candidate_accuracy": accuracy, "cv_mean": means.round(5).tolist(), "cv_se": ses.round(5).tolist(),
            "picks": picks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sst2,nsmc_ko,ag_news,sms_spam,trec",
                        help="benchmark tasks and/or held-out ones: " + ",".join(HELD_OUT))
    parser.add_argument("--shots", default="32,64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "classify_selection.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("SLMKIT_NUM_THREADS"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(os.environ["SLMKIT_NUM_THREADS"]))
    cache = EmbeddingCache("default")
    result = json.loads(args.out.read_text()) if args.out.is_file() else {"tasks": {}}
    start = time.perf_counter()
    for name in args.tasks.split(","):
        if name in result["tasks"]:
            continue
        texts, y, test_texts, y_test = load_study_task(name, args.seed)
        # One forward pass per template fills every pooling and layer the candidates read (as LMClassifier's own
        # search does); without it each candidate would embed the texts again (the audit fills it otherwise).
        for template in dict.fromkeys(c.template for c in single_candidates(np.unique(y))):
            LMEmbedder("gemma3-270m", template=template, layers=(0.5, -1), cache=cache).fit().fill_cache(
                list(dict.fromkeys(texts + test_texts)), POOLINGS)
        rows = [study_draw(name, cache, texts, y, test_texts, y_test, int(k), args.seed + d)
                for k in args.shots.split(",") for d in range(args.draws)]
        result["tasks"][name] = {"rows": rows, "mean": {r: round(float(np.mean([row["accuracy"][r] for row in rows])),
                                                                 4) for r in RULES}}
        write_json(args.out, result)
    result["summary"] = {r: round(float(np.mean([t["mean"][r] for t in result["tasks"].values()])), 4) for r in RULES}
    result["meta"] = {"config": {k: str(v) for k, v in vars(args).items()},
                      "seconds": round(time.perf_counter() - start), "threads": os.environ.get("SLMKIT_NUM_THREADS")}
    write_json(args.out, result)
    for name, task in result["tasks"].items():
        print(name, task["mean"])
    print("average", result["summary"])


if __name__ == "__main__":
    main()
