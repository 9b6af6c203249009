"""Which rule should pick between automatic configuration's two candidates? (issue 10, selection robustness)

The library's automatic configuration (slmkit/classify/_auto.py) scores two candidates by repeated stratified
5-fold CV (2 repeats) on the training rows: the instruction template (label-aware, or generic for labels that are
not words) and the bare text, each with both poolings of the middle and last layer. This study runs the library's
own `select` on the same draws as bench/classify_selection.py (5 draws x 32 and 64 per class, the five shared
tasks, seeds 0 and 1, plus the held-out Enron e-mails) and scores three rules on the test rows, which no rule sees:

- `one_se`: the first candidate (instruction first) within one standard error of the best CV mean (the rule
  since 29c47c2);
- `argmax`: the candidate with the best CV mean (no prior);
- `paired`: the bare text replaces the instruction only when it wins by more than one standard error of the
  *paired* per-fold difference (both candidates are scored on the same folds, so fold-to-fold difficulty
  cancels; the unpaired standard error counts it as noise and keeps the prior even when every fold disagrees).
  Encoder adaptation already picks this way (slmkit/classify/_adapt.py, `paired_choice`).

Embeddings come back from the cache bench/classify_selection.py filled (any missing are embedded).

A second held-out task, which of six Gutenberg novels a paragraph comes from (`--tasks gutenberg_books`), was
added later and run for seed 0 only, on another machine (AVX2-only EPYC, gemma in float32; recorded in the run's
`machine`), and its seed 1 in a later session. Each run records its machine and seconds; the file's `summary` is
recomputed from every finished run on each write: per seed, the five shared tasks together and each held-out task.
Each rule's pick is re-derived from the stored CV tables on every invocation (a rerun with every pair finished
only rescores); `meta` describes the last invocation.

    SLMKIT_NUM_THREADS=1 python bench/classify_selection_rule.py   # -> bench/results/classify_selection_rule.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score

from slmkit.classify import EmbeddingCache, LMEmbedder, PLRClassifier, sample_per_class
from slmkit.classify._adapt import paired_choice
from slmkit.classify._auto import candidates, one_se_choice, select
from slmkit.classify._embedder import BOTH
from slmkit.data import write_json

from classify import TASKS, run_machine
from classify_selection import load_study_task

logger = logging.getLogger("bench.classify_selection_rule")
RULES = ("one_se", "argmax", "paired", "instruction", "bare_text", "oracle")


def summarize(runs: dict) -> dict:
    """Mean test accuracy per rule over the finished runs, per seed: the five shared tasks together (only once all
    five are in) and each held-out task alone; each run's mean is over its budgets (32 and 64 per class)."""
    groups: dict[str, list] = {}
    for key, run in runs.items():
        task, _, seed = key.partition("/")
        groups.setdefault(f"five_tasks/{seed}" if task in TASKS else key, []).append(run)
    return {group: {rule: round(float(np.mean([m[rule] for run in members for m in run["mean"].values()])), 4)
                    for rule in RULES}
            for group, members in sorted(groups.items())
            if not group.startswith("five_tasks/") or len(members) == len(TASKS)}


def study_draw(cache, texts, y, test_texts, y_test, k: int, seed: int) -> dict:
    idx = sample_per_class(y, k, seed)
    train, y_train = [texts[i] for i in idx], y[idx]
    cands = candidates("auto", "auto", "auto", np.unique(y_train))

    def embedder(cand):
        return LMEmbedder("gemma3-270m", template=cand.template, pooling=BOTH, layers=cand.layer_values,
                          cache=cache).fit()

    report = select(lambda c: embedder(c).transform(train), cands, y_train, seed=0)  # the estimator's seed, 0
    accuracy = [float(accuracy_score(y_test, PLRClassifier(random_state=0).fit(embedder(c).transform(train), y_train)
                                     .predict(embedder(c).transform(test_texts)))) for c in cands]
    table = [{key: row[key] for key in ("template", "cv_mean", "cv_se", "n_folds", "fold_scores")}
             for row in report.table]
    return {"shots": k, "seed": seed, "accuracy": rule_accuracy(table, accuracy), "candidate_accuracy": accuracy,
            "table": table}


def rule_accuracy(table: list[dict], accuracy: list[float]) -> dict:
    """Each rule's pick from one draw's CV table, as its test accuracy. Every rule is computed here from the table
    (not taken from `select`'s own choice, which is whatever the library's rule is now: since ce3ee32 that is the
    best CV mean, so `one_se` read from it was the best CV mean too). Only candidates scored on every repetition
    compete, as in `select`."""
    full = np.array([row["n_folds"] == max(r["n_folds"] for r in table) for row in table])
    means = np.where(full, [row["cv_mean"] for row in table], -np.inf)
    ses = np.array([row["cv_se"] for row in table])
    picks = {"one_se": one_se_choice(means, ses), "argmax": int(np.argmax(means)),
             "paired": int(np.flatnonzero(full)[0]) if full.sum() == 1 else
             int(paired_choice({i: np.array(row["fold_scores"]) for i, row in enumerate(table)})),
             "instruction": 0, "bare_text": len(table) - 1, "oracle": int(np.argmax(accuracy))}
    return {rule: accuracy[i] for rule, i in picks.items()}


def run_means(rows: list[dict]) -> dict:
    return {str(k): {r: round(float(np.mean([row["accuracy"][r] for row in rows if row["shots"] == k])), 4)
                     for r in RULES} for k in sorted({row["shots"] for row in rows})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="sst2,nsmc_ko,ag_news,sms_spam,trec,enron_spam,gutenberg_books")
    parser.add_argument("--seeds", default="0,1", help="each seed draws other test rows and training examples")
    parser.add_argument("--shots", default="32,64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "classify_selection_rule.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("SLMKIT_NUM_THREADS"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(os.environ["SLMKIT_NUM_THREADS"]))
    cache = EmbeddingCache("default")
    result = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
    for run in result["runs"].values():  # finished runs: every rule re-derived from the stored CV tables
        for row in run["rows"]:
            row["accuracy"] = rule_accuracy(row["table"], row["candidate_accuracy"])
        run["mean"] = run_means(run["rows"])
    start = time.perf_counter()
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.tasks.split(","):
            key = f"{name}/seed{seed}"
            if key in result["runs"]:  # resume: finished (task, seed) pairs are kept
                continue
            texts, y, test_texts, y_test = load_study_task(name, seed)
            run_start, rows = time.perf_counter(), []
            for k in (int(v) for v in args.shots.split(",")):
                for d in range(args.draws):
                    rows.append(study_draw(cache, texts, y, test_texts, y_test, k, seed + d))
                    logger.info("%s k=%d draw=%d %s", key, k, d,
                                " ".join(f"{r} {v:.3f}" for r, v in rows[-1]["accuracy"].items()))
            result["runs"][key] = {"rows": rows, "mean": run_means(rows),
                # per run: a resumed study spans sessions, and their machines differ (bf16 embeddings where the
                # CPU has native bf16, float32 elsewhere)
                "machine": {**run_machine(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")},
                "seconds": round(time.perf_counter() - run_start)}
            result["summary"] = summarize(result["runs"])
            write_json(args.out, result)
    result["summary"] = summarize(result["runs"])
    result["meta"] = {"config": {k: str(v) for k, v in vars(args).items()},
                      "seconds": round(time.perf_counter() - start), "threads": os.environ.get("SLMKIT_NUM_THREADS")}
    write_json(args.out, result)
    for key, run in result["runs"].items():
        print(key, run["mean"])
    for group, mean in result["summary"].items():
        print(group, mean)


if __name__ == "__main__":
    main()
