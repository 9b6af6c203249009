"""Runtime benchmark for one model on this CPU: load times, embeddings/s, token-loss and generation throughput.

Each measurement runs in its own subprocess so load time and peak RSS are not polluted by earlier phases.
Writes bench/results/runtime.json and runtime.png. Quote medians from one run; these machines are noisy.

    python bench/runtime.py --model gemma3-270m --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quality" / "wikitext2" / "wiki.test.raw"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "texts.jsonl"


def _texts_of_n_tokens(lm, n_texts: int, n_tokens: int) -> list[str]:
    """Texts cut to exactly `n_tokens` model tokens, from WikiText-2 if present, else the project's examples."""
    if SHARED.is_file():
        source = [p.strip() for p in SHARED.read_text(encoding="utf-8").split("\n") if len(p.split()) > 150]
    else:
        source = [" ".join(json.loads(line)["text"] for line in EXAMPLES.read_text().splitlines()) * 8]
    texts = []
    for i in range(n_texts):
        ids = lm.tokenizer(source[i % len(source)], add_special_tokens=False).input_ids[i % 7 : i % 7 + n_tokens]
        texts.append(lm.tokenizer.decode(ids))
    return texts


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def phase_load(model: str) -> dict:
    from slmkit.models import load_model

    start = time.perf_counter()
    lm = load_model(model)
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "converted_cached": lm.info.get("converted_cached"),
        "checksum": lm.info["checksum"],
        "n_parameters": lm.info["n_parameters"],
    }


def phase_throughput(model: str, n_texts: int, repeats: int, seed: int) -> dict:
    from slmkit.models import GenerationParams, load_model

    lm = load_model(model)
    texts = _texts_of_n_tokens(lm, n_texts, 100)
    out = {"n_texts": n_texts, "tokens_per_text": 100, "repeats": repeats, "embed": {}}
    lm.embed(texts[:4])  # warm-up: first call pays one-off allocation costs
    for batch_size in (1, 8, 32):
        seconds = _median_time(lambda: lm.embed(texts, batch_size=batch_size), repeats)
        out["embed"][f"batch_{batch_size}"] = {
            "median_s": round(seconds, 3),
            "texts_per_s": round(n_texts / seconds, 2),
        }
    n_scored = sum(len(x) for x in lm.token_losses(texts))
    seconds = _median_time(lambda: lm.token_losses(texts, batch_size=8), repeats)
    out["token_losses"] = {"median_s": round(seconds, 3), "tokens_per_s": round(n_scored / seconds, 1)}
    params = GenerationParams(max_new_tokens=48, seed=seed)
    prompts = [t[:200] for t in texts[:4]]
    start = time.perf_counter()
    generated = lm.generate(prompts, params, batch_size=1)
    seconds = time.perf_counter() - start
    n_new = sum(lm.count_tokens(generated))
    out["generate"] = {
        "prompts": len(prompts),
        "batch_size": 1,
        "new_tokens": n_new,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(n_new / seconds, 2),
    }
    return out


def phase_llamacpp(model: str, n_texts: int, seed: int) -> dict:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return {"skipped": "llama-cpp-python not installed (optional extra slmkit[llamacpp])"}
    from slmkit.models import GenerationParams, load_model

    hf = load_model(model)
    texts = _texts_of_n_tokens(hf, n_texts, 100)
    lm = load_model(model, backend="llamacpp", n_ctx=256)
    start = time.perf_counter()
    n_scored = sum(len(x) for x in lm.token_losses(texts))
    loss_s = time.perf_counter() - start
    start = time.perf_counter()
    generated = lm.generate([t[:200] for t in texts[:4]], GenerationParams(max_new_tokens=48, seed=seed))
    gen_s = time.perf_counter() - start
    n_new = sum(hf.count_tokens(generated))
    return {"token_losses_tokens_per_s": round(n_scored / loss_s, 1), "generate_tokens_per_s": round(n_new / gen_s, 2)}


def _run_phase(args: list[str], env: dict) -> dict:
    cmd = [sys.executable, __file__, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    embed = result["throughput"]["embed"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].bar([k.replace("batch_", "bs ") for k in embed], [v["texts_per_s"] for v in embed.values()])
    axes[0].set_title(f"{result['model']}: embeddings/s (100-token texts)")
    loads = {"first load": result["first_load"]["seconds"], "cached load": result["cached_load"]["seconds"]}
    axes[1].bar(list(loads), list(loads.values()), color="tab:orange")
    axes[1].set_title("load time (s)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--n-texts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "runtime.json")
    parser.add_argument("--phase", choices=["load", "throughput", "llamacpp"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = {
            "load": lambda: phase_load(args.model),
            "throughput": lambda: phase_throughput(args.model, args.n_texts, args.repeats, args.seed),
            "llamacpp": lambda: phase_llamacpp(args.model, args.n_texts, args.seed),
        }[args.phase]()
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    import torch
    import transformers

    import slmkit

    env = dict(os.environ)
    common = [
        "--model",
        args.model,
        "--n-texts",
        str(args.n_texts),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
    ]
    with tempfile.TemporaryDirectory() as fresh:
        first = _run_phase([*common, "--phase", "load"], {**env, "SLMKIT_CACHE": fresh})
    result = {
        "model": args.model,
        "config": vars(args) | {"out": str(args.out), "phase": None},
        "versions": {
            "slmkit": slmkit.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "processor": platform.processor()},
        "first_load": first,
        "cached_load": _run_phase([*common, "--phase", "load"], env),
        "throughput": _run_phase([*common, "--phase", "throughput"], env),
        "llamacpp": _run_phase([*common, "--phase", "llamacpp"], env),
    }
    from slmkit.data import write_json

    write_json(args.out, result)
    _plot(result, args.out.with_suffix(".png"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
