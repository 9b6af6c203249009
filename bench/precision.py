"""Inference precision benchmark (issue 9, item 1): float32, bfloat16 and int8 side by side, one run.

For one model (gemma3-270m, the built-in default) and each setting — `load_model(dtype="float32")`,
`load_model(dtype="bfloat16")` (the model cast to bf16) and `load_model(quantize="int8")` (torch dynamic int8
quantisation of every Linear layer) — it measures:

* speed: embeddings tokens/s (100-token texts, batch 8) and token-loss tokens/s (batch 8), the repeats of the
  settings interleaved (float32, bf16, int8, float32, ...) so a change in the machine's load hits them alike;
  greedy generation tokens/s on one prompt (a check that generation runs in the setting);
* fidelity to float32 on the same texts: cosine of mean-pooled last-layer embeddings, and token losses as the
  relative difference of each document's mean loss (|mean loss - float32's| / float32's, averaged over the
  documents; the per-token mean |difference| is reported beside it);
* accuracy: PLR (`slmkit.classify.LMClassifier`) at 64 training examples per class on the five shared tasks
  (/work/shared/data/classification, read in place), one FIXED configuration so each task is one embedding
  pass per setting: the task's instruction template (bench/classify.py), mean pooling, middle + last layer,
  no configuration search, no adaptation; one draw (seed 0), test rows subsampled to `--test-size` per task.
  Every setting sees the same training and test rows, so accuracy differences are paired.

Then the rule the runtime's `dtype="auto"` should follow: the fastest setting (embeddings tokens/s) whose
accuracy is at most 0.5 points below float32's on EVERY task and whose document losses differ from float32's by
at most 1% relative on average. The JSON records what the rule picks here and what `auto` resolves to here.

Writes bench/results/precision.json after every step (a cut-off run keeps what it finished) and
precision.png. One thread on one core, beside other work:

    taskset -c 1 env SLMKIT_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/precision.py

On the project's AVX2-only CPU that took 1 h 53 min, 1 h 16 min of it bf16's classification (torch emulates
bf16 there); `--settings float32,int8` leaves bf16 out. The 4-bit GGUF on llama.cpp (`q4_k_m`, the optional extra)
embeds from its last layer only, so it is compared at that layer:

    python bench/precision.py --settings float32,bfloat16,q4_k_m --layers -1 --out bench/results/precision_last_layer.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from slmkit.data import atomic_open

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # reuse the other benchmarks' helpers (bench/ is not a package)

from classify import TASKS, cpu_name, load_task  # bench/classify.py: task templates, data split, CPU name
from runtime import _texts_of_n_tokens  # bench/runtime.py: texts cut to exactly n tokens

RESULTS = HERE / "results"
SETTINGS = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "int8": {"quantize": "int8"},
    # the package's own 4-bit GGUF executed by llama.cpp (the optional extra, which compiles). llama.cpp hands out
    # the last layer only, so this setting runs with `--layers -1` (beside float32 at the same layer).
    "q4_k_m": {"backend": "llamacpp"},
}
ACCURACY_TOLERANCE = 0.005  # at most 0.5 points below float32, on every task
LOSS_TOLERANCE = 0.01  # document mean losses within 1% relative of float32's, on average
LAYERS = (0.5, -1)
BF16_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile")


def machine(note: str | None = None) -> dict:
    import torch

    from slmkit.models._precision import auto_dtype, cpu_flags, cpu_native_bf16

    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": {f: f in flags for f in BF16_FLAGS},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_native_bf16(),
        "auto_dtype_here": auto_dtype("cpu"),
        "note": note or "one thread on one core; another job shared that core during the run, so absolute speeds "
        "are lower than on a quiet machine; the settings' repeats were interleaved so their ratios are comparable",
    }


def versions() -> dict:
    import sklearn
    import torch
    import transformers

    import slmkit

    return {
        "slmkit": slmkit.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def loss_fidelity(losses: list[np.ndarray], reference: list[np.ndarray]) -> dict:
    doc = [abs(x.mean() - r.mean()) / r.mean() for x, r in zip(losses, reference) if len(r)]
    tok = [np.abs(x - r).mean() / r.mean() for x, r in zip(losses, reference) if len(r)]
    return {
        "doc_mean_loss_rel_diff_mean": round(float(np.mean(doc)), 6),
        "doc_mean_loss_rel_diff_max": round(float(np.max(doc)), 6),
        "token_abs_diff_over_mean_loss": round(float(np.mean(tok)), 6),
    }


def throughput(lms: dict, texts: list[str], repeats: int, result: dict, save) -> dict:
    """Embeddings and token losses, the settings' repeats interleaved; returns the outputs of the last repeat."""
    n_tokens = len(texts) * 100
    times = {name: {"embed": [], "losses": []} for name in lms}
    outputs = {}
    for lm in lms.values():  # warm-up: one-off allocations
        lm.embed(texts[:2], batch_size=8)
        lm.token_losses(texts[:1], batch_size=8)
    for rep in range(repeats):
        for name, lm in lms.items():
            start = time.perf_counter()
            vectors = lm.embed(texts, batch_size=8)
            times[name]["embed"].append(time.perf_counter() - start)
            start = time.perf_counter()
            losses = lm.token_losses(texts, batch_size=8)
            times[name]["losses"].append(time.perf_counter() - start)
            outputs[name] = (vectors, losses)
            n_scored = sum(len(x) for x in losses)
            embed_s, loss_s = float(np.median(times[name]["embed"])), float(np.median(times[name]["losses"]))
            result["settings"][name]["speed"] = {
                "repeats_done": rep + 1,
                "embed_seconds": [round(t, 2) for t in times[name]["embed"]],
                "embed_tokens_per_s": round(n_tokens / embed_s, 1),
                "embed_texts_per_s": round(len(texts) / embed_s, 2),
                "losses_seconds": [round(t, 2) for t in times[name]["losses"]],
                "loss_tokens_scored": n_scored,
                "loss_tokens_per_s": round(n_scored / loss_s, 1),
            }
            save()
            print(f"[speed] rep {rep + 1}/{repeats} {name}: {result['settings'][name]['speed']}", flush=True)
    base = result["settings"]["float32"]["speed"] if "float32" in lms else None
    for name in lms:
        speed = result["settings"][name]["speed"]
        if base:
            speed["embed_vs_float32"] = round(speed["embed_tokens_per_s"] / base["embed_tokens_per_s"], 3)
            speed["loss_vs_float32"] = round(speed["loss_tokens_per_s"] / base["loss_tokens_per_s"], 3)
    save()
    return outputs


def generation(lm, prompt: str, new_tokens: int) -> dict:
    from slmkit.models import GenerationParams

    start = time.perf_counter()
    text = lm.generate([prompt], GenerationParams(max_new_tokens=new_tokens, min_new_tokens=new_tokens))[0]
    seconds = time.perf_counter() - start
    n = lm.count_tokens([text])[0]
    return {"new_tokens": n, "seconds": round(seconds, 2), "tokens_per_s": round(n / seconds, 2), "text": text}


def classify_task(lm, task, data, seed: int, layers=LAYERS) -> tuple[dict, np.ndarray]:
    from sklearn.metrics import accuracy_score, f1_score

    from slmkit.classify import EmbeddingCache, LMClassifier

    train_x, train_y, test_x, test_y, _info = data
    cache = EmbeddingCache(None)  # in memory: nothing is shared between settings or runs
    cache.add_model("bench-model", lm)
    clf = LMClassifier("bench-model", template=task.template, pooling="mean", layers=layers, cache=cache,
                       random_state=seed, adapt_budget_s=0)
    start = time.perf_counter()
    clf.fit(train_x, train_y)
    pred = clf.predict(test_x)
    seconds = time.perf_counter() - start
    features = clf.embedder_.transform(test_x)  # from the in-memory cache: no second forward pass
    return {
        "accuracy": round(float(accuracy_score(test_y, pred)), 4),
        "macro_f1": round(float(f1_score(test_y, pred, average="macro")), 4),
        "n_train": len(train_x),
        "n_test": len(test_x),
        "seconds": round(seconds, 1),
        "embed_seconds": round(clf.embed_seconds_, 1) if hasattr(clf, "embed_seconds_") else None,
    }, features


def apply_rule(result: dict) -> dict:
    """The fastest setting within tolerance of float32: on every task (the rule) and on average (for contrast)."""
    settings = result["settings"]
    base = settings.get("float32", {})
    tasks = list(base.get("classification", {}))
    verdicts = {}
    for name, entry in settings.items():
        acc = entry.get("classification", {})
        slower = "speed" in entry and name != "float32" and (
            entry["speed"]["embed_tokens_per_s"] <= base.get("speed", {}).get("embed_tokens_per_s", 0))
        if "speed" not in entry or any(t not in acc for t in tasks) or not tasks:
            verdicts[name] = {"complete": False, "tasks_done": sorted(acc), "slower_than_float32": slower}
            continue
        drops = {t: round(base["classification"][t]["accuracy"] - acc[t]["accuracy"], 4) for t in tasks}
        loss = entry.get("loss_fidelity", {}).get("doc_mean_loss_rel_diff_mean", 0.0)
        verdicts[name] = {
            "complete": True,
            "accuracy_drop_points": {t: round(100 * d, 2) for t, d in drops.items()},
            "mean_accuracy_drop_points": round(100 * float(np.mean(list(drops.values()))), 2),
            "within_on_every_task": all(d <= ACCURACY_TOLERANCE + 1e-9 for d in drops.values()),
            "within_on_average": float(np.mean(list(drops.values()))) <= ACCURACY_TOLERANCE + 1e-9,
            "losses_within_1pct": loss <= LOSS_TOLERANCE,
            "embed_tokens_per_s": entry["speed"]["embed_tokens_per_s"],
            "slower_than_float32": slower,  # never the pick here, whatever its accuracy
        }

    def fastest(key: str):
        ok = [n for n, v in verdicts.items()
              if v.get("complete") and v[key] and v["losses_within_1pct"] and not v["slower_than_float32"]]
        return max(ok, key=lambda n: verdicts[n]["embed_tokens_per_s"]) if ok else None

    return {
        "rule": "fastest (embeddings tokens/s) setting whose accuracy is at most 0.5 points below float32 on every "
        "task and whose document mean losses are within 1% relative of float32 on average; a setting slower "
        "than float32 is never picked, and an incomplete one (classification unfinished) is not considered",
        "verdicts": verdicts,
        "pick_every_task": fastest("within_on_every_task"),
        "pick_on_average": fastest("within_on_average"),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = {n: e for n, e in result["settings"].items() if "speed" in e}
    names = list(settings)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, [settings[n]["speed"]["embed_tokens_per_s"] for n in names], 0.4, label="embeddings")
    axes[0].bar(x + 0.2, [settings[n]["speed"]["loss_tokens_per_s"] for n in names], 0.4, label="token losses")
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel("tokens/s (1 thread)")
    axes[0].set_title(f"{result['model']}: speed")
    axes[0].legend()
    tasks = list(result["settings"].get("float32", {}).get("classification", {}))
    width = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        acc = settings[n].get("classification", {})
        axes[1].bar(np.arange(len(tasks)) + i * width, [100 * acc.get(t, {}).get("accuracy", np.nan) for t in tasks],
                    width, label=n)
    axes[1].set_xticks(np.arange(len(tasks)) + width * (len(names) - 1) / 2, tasks, rotation=20)
    axes[1].set_ylabel("accuracy (%)")
    axes[1].set_ylim(40, 100)
    axes[1].set_title("PLR, 64 per class")
    axes[1].legend(fontsize=8)
    cos = [settings[n].get("embedding_cosine", {}).get("mean", np.nan) for n in names]
    rel = [100 * settings[n].get("loss_fidelity", {}).get("doc_mean_loss_rel_diff_mean", np.nan) for n in names]
    axes[2].bar(x - 0.2, [1 - c for c in cos], 0.4, label="1 - embedding cosine")
    axes[2].bar(x + 0.2, rel, 0.4, label="loss rel. diff (%)")
    axes[2].set_yscale("symlog", linthresh=1e-4)
    axes[2].set_xticks(x, names)
    axes[2].set_title("distance to float32 (lower is better)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="subset of " + ",".join(SETTINGS))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--n-texts", type=int, default=8, help="100-token texts for the speed and fidelity runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--gen-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "precision.json")
    parser.add_argument("--note", help="how the run was made (threads, what else ran), recorded with the machine")
    parser.add_argument("--layers", default=",".join(map(str, LAYERS)),
                        help="PLR's layers (depth fractions or indices); -1 alone for a llama.cpp setting")
    args = parser.parse_args()
    layers = tuple(float(x) if "." in x else int(x) for x in args.layers.split(","))

    from slmkit.data import write_json
    from slmkit.models import load_model

    names = [n for n in args.settings.split(",") if n]
    if names[0] != "float32":
        raise SystemExit("float32 must be the first setting: it is the reference")
    started = time.perf_counter()
    result = {
        "model": args.model,
        "config": vars(args) | {"out": str(args.out), "layers": list(layers), "pooling": "mean",
                                "template": "the task's instruction (bench/classify.py TASKS)",
                                "classifier": "LMClassifier, fixed configuration, adapt_budget_s=0, one draw",
                                "test_rows": f"subsampled to {args.test_size} per task (seed {args.seed})",
                                "settings": {n: SETTINGS[n] for n in names}},
        "versions": versions(),
        "machine": machine(args.note),
        "settings": {n: {} for n in names},
    }

    def save() -> None:
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
        result["decision"] = apply_rule(result)
        write_json(args.out, result)
        if any("speed" in e for e in result["settings"].values()):
            plot(result, args.out.with_suffix(".png"))

    lms = {}
    for name in names:
        start = time.perf_counter()
        lms[name] = load_model(args.model, **SETTINGS[name])
        info = lms[name].info
        result["settings"][name]["load"] = {"seconds": round(time.perf_counter() - start, 2),
                                            **{k: info.get(k) for k in ("dtype", "quantize", "checksum")}}
        if name == "float32":  # the reference's weights (the other settings' checksums are in their "load")
            result["model_checksum"] = info.get("weights_checksum", info.get("checksum"))
        save()
    texts = _texts_of_n_tokens(lms["float32"], args.n_texts, 100)
    outputs = throughput(lms, texts, args.repeats, result, save)
    ref_vectors, ref_losses = outputs["float32"]
    for name, (vectors, losses) in outputs.items():
        sims = cosine(vectors, ref_vectors)
        result["settings"][name]["embedding_cosine"] = {"mean": round(float(sims.mean()), 6),
                                                        "min": round(float(sims.min()), 6)}
        result["settings"][name]["loss_fidelity"] = loss_fidelity(losses, ref_losses)
    prompt = texts[0][:300]
    for name, lm in lms.items():
        result["settings"][name]["generate"] = generation(lm, prompt, args.gen_tokens)
        save()
    ref_gen = result["settings"]["float32"]["generate"]["text"]
    for name in names:
        result["settings"][name]["generate"]["same_text_as_float32"] = result["settings"][name]["generate"][
            "text"] == ref_gen
    save()
    for n in names:
        print(f"[fidelity] {n}: {result['settings'][n]['embedding_cosine']} {result['settings'][n]['loss_fidelity']}",
              flush=True)

    # Classification: one setting at a time, float32 (the reference) first, then the others fastest first (so a
    # cut-off run has the cheap ones), each model freed after its turn.
    order = ["float32", *sorted(names[1:], key=lambda n: -result["settings"][n]["speed"]["embed_tokens_per_s"])]
    tasks = [TASKS[t] for t in args.tasks.split(",") if t]
    data = {task.name: load_task(task, args.test_size, args.per_class, args.seed) for task in tasks}
    result["data"] = {t: d[4] for t, d in data.items()}
    reference = {}
    for name in order:
        lm = lms.pop(name)
        entry = result["settings"][name]
        entry["classification"], entry["classification_feature_cosine"] = {}, {}
        for task in tasks:
            scores, features = classify_task(lm, task, data[task.name], args.seed, layers)
            entry["classification"][task.name] = scores
            if name == "float32":
                reference[task.name] = features
            sims = cosine(features, reference[task.name])
            entry["classification_feature_cosine"][task.name] = {"mean": round(float(sims.mean()), 6),
                                                                 "min": round(float(sims.min()), 6)}
            save()
            print(f"[classify] {name} {task.name}: {scores}", flush=True)
        entry["classification_mean_accuracy"] = round(
            float(np.mean([v["accuracy"] for v in entry["classification"].values()])), 4)
        save()
        del lm
    save()
    print(f"[decision] {result['decision']}", flush=True)


if __name__ == "__main__":
    main()
