"""Runtime benchmark for one model on this CPU: load times, embeddings/s, token-loss and generation throughput.

Each measurement runs in its own subprocess so load time and peak RSS are not polluted by earlier phases.
Writes bench/results/runtime.json and runtime.png. Quote medians from one run; these machines are noisy.

    python bench/runtime.py --model gemma3-270m --seed 0

`--engines` compares the backends side by side instead (bench/results/runtime_engines.json + .png): for each
backend x precision in ENGINES, on the built-in model and on a fine-tuned run (`--finetuned`, a LoRA run is
merged by the engine's conversion): conversion and load time, token-loss tokens/s, generation tokens/s one
prompt at a time and batched by 8, teacher-forced top-1 agreement with transformers float32, peak memory; and
ratios to transformers float32. Embedding tokens/s (batch 1/8/32) are measured on the transformers rows only:
the ctranslate2 backend serves embeddings from its float32 transformers twin (bench/precision.py compares the
precisions' embedding accuracy).

    SLMKIT_NUM_THREADS=1 taskset -c 0 python bench/runtime.py --engines --finetuned out/bench_train/ko_lora
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slmkit._files import peak_rss_mb
from slmkit.data import atomic_open

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quality" / "wikitext2" / "wiki.test.raw"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "texts.jsonl"


def _source_paragraphs() -> list[str]:
    """Long WikiText-2 paragraphs if the shared data is there, else the project's examples joined."""
    if SHARED.is_file():
        return [p.strip() for p in SHARED.read_text(encoding="utf-8").split("\n") if len(p.split()) > 150]
    return [" ".join(json.loads(line)["text"] for line in EXAMPLES.read_text().splitlines()) * 8]


def _texts_of_n_tokens(lm, n_texts: int, n_tokens: int) -> list[str]:
    """Texts cut to exactly `n_tokens` model tokens, from WikiText-2 if present, else the project's examples."""
    source = _source_paragraphs()
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


# transformers:None is float32 (the reference every ratio is taken against); bfloat16 is what dtype="auto" picks on
# a CPU with native bf16 (AVX-512 BF16 or AMX), so on such a CPU it is the default path's speed.
ENGINES = [("transformers", None), ("transformers", "bfloat16-unpacked"), ("transformers", "bfloat16"),
           ("transformers", "bfloat16-trimmed"), ("ctranslate2", "float32"), ("ctranslate2", "float32-trimmed"),
           ("ctranslate2", "int8"), ("ctranslate2", "int8-trimmed"), ("transformers", "int8"), ("llamacpp", "q4_k_m")]
# ("transformers", "int8"): torch's dynamic int8 quantisation of the Linear layers (`quantize="int8"` on the
# transformers backend), for the quantisation study's time per token.
# ("llamacpp", "q4_k_m"): the package's own 4-bit GGUF on llama.cpp (the optional extra, which compiles: the row
# is left out where it is not installed); a LoRA run runs on that file with its adapter applied by llama.cpp.
# "-trimmed": the output layer keeps the tokens of TRIM_CORPUS source paragraphs (English WikiText paragraphs
# after the ones measured, so the measured texts never choose them); see load_model(..., keep_tokens=).
# "-unpacked": bf16 with plain F.linear layers (SLMKIT_PACK_BF16=0), what bf16 ran before the oneDNN-prepacked
# layers (`PackedLinear`), to show their gain in the same run.
TRIM_CORPUS = 300


def _engine_options(backend: str, quantize: str | None, n_texts: int) -> dict:
    """load_model options for one ENGINES row."""
    precision = (quantize or "float32").removesuffix("-trimmed").removesuffix("-unpacked")
    if backend == "llamacpp":  # the GGUF's own Q4_K_M weights: nothing to choose
        options = {}
    elif backend == "transformers" and precision == "int8":  # torch dynamic int8 over float32 weights
        options = {"dtype": "float32", "quantize": "int8"}
    elif backend == "transformers":  # explicit, so the reference stays float32 whatever "auto" means on this CPU
        options = {"dtype": precision}
    else:
        options = {"quantize": precision}
    if quantize and quantize.endswith("-trimmed"):
        options["keep_tokens"] = _source_paragraphs()[n_texts : n_texts + TRIM_CORPUS]
    return options


def phase_convert(model: str, backend: str, quantize: str | None, n_texts: int) -> dict:
    """Load one ENGINES row once, so its conversion is in the cache before a measuring process loads it."""
    from slmkit.models import load_model

    lm = load_model(model, backend=backend, **_engine_options(backend, quantize, n_texts))
    return {"converted_s": lm.info.get("converted_seconds")}


def phase_engine(model: str, backend: str, quantize: str | None, n_texts: int, repeats: int, seed: int) -> dict:
    """One backend x precision: conversion + load, token losses, generation single and batched, agreement."""
    import numpy as np
    import torch

    from slmkit.models import GenerationParams, load_model

    options = _engine_options(backend, quantize, n_texts)
    start = time.perf_counter()
    lm = load_model(model, backend=backend, **options)
    out = {"backend": backend, "quantize": quantize or "float32", "load_s": round(time.perf_counter() - start, 2),
           "converted_s": lm.info.get("converted_seconds"), "checksum": lm.info["checksum"],
           "kept_tokens": lm.info.get("kept_tokens"), "packed_linears": lm.info.get("packed_linears")}
    if backend == "transformers":
        ref = lm
    elif backend == "llamacpp":  # the float32 transformers model of the same GGUF, for texts and agreement
        ref = load_model(model, dtype="float32")
    else:
        ref = lm._twin()  # a transformers copy of the same weights (float32)
    texts = _texts_of_n_tokens(ref, n_texts, 100)
    if backend == "transformers":  # the ctranslate2 backend serves embeddings from its float32 twin: not measured
        lm.embed(texts[:4])  # warm-up
        for batch in (1, 8, 32):
            seconds = _median_time(lambda: lm.embed(texts, batch_size=batch), repeats)
            out[f"embed_batch_{batch}_tokens_per_s"] = round(n_texts * 100 / seconds, 1)
        # the middle layer alone: the forward pass stops after it (`_layer_states`)
        seconds = _median_time(lambda: lm.embed(texts, batch_size=8, layers=(lm.n_layers // 2,)), repeats)
        out["embed_middle_batch_8_tokens_per_s"] = round(n_texts * 100 / seconds, 1)
    elif backend == "llamacpp":  # one text at a time whatever the batch size, last layer only (all llama.cpp gives)
        lm.embed(texts[:2])  # warm-up
        seconds = _median_time(lambda: lm.embed(texts), repeats)
        out["embed_batch_1_tokens_per_s"] = round(n_texts * 100 / seconds, 1)
    if not lm.info.get("kept_tokens"):  # a trimmed engine generates only
        lm.token_losses(texts[:4])  # warm-up
        n_scored = sum(len(x) for x in lm.token_losses(texts))
        seconds = _median_time(lambda: lm.token_losses(texts, batch_size=8), repeats)
        out["token_losses_tokens_per_s"] = round(n_scored / seconds, 1)
    params = GenerationParams(max_new_tokens=48, min_new_tokens=48, seed=seed)  # equal work for every engine
    prompts = [t[:300] for t in texts[:8]]
    # warm-up, untimed: an engine's first call pays its set-up (a trimmed ctranslate2 engine has scored nothing
    # before: cold, float32 trimmed decoded 41 tokens/s single-stream, warm 74), for one prompt and for a batch
    lm.generate(prompts[-1:], GenerationParams(max_new_tokens=8, min_new_tokens=8, seed=seed), batch_size=1)
    lm.generate(prompts, GenerationParams(max_new_tokens=4, min_new_tokens=4, seed=seed), batch_size=8)
    for name, batch, chosen in (("single", 1, prompts[:4]), ("batched_8", 8, prompts)):
        start = time.perf_counter()
        if name == "single":  # single-stream: one call per prompt (an engine could otherwise decode 2 at once)
            generated = [text for p in chosen for text in lm.generate([p], params, batch_size=1)]
        else:
            generated = lm.generate(chosen, params, batch_size=batch)
        seconds = time.perf_counter() - start
        n_new = sum(ref.count_tokens(generated))
        out[f"generate_{name}_tokens_per_s"] = round(n_new / seconds, 2)
    reduced = backend != "transformers" or quantize not in (None, "float32")
    if reduced:  # teacher-forced top-1 agreement with transformers float32 (a trimmed head: over its kept tokens)
        twin = ref if backend != "transformers" else load_model(model, dtype="float32")
        if backend == "llamacpp":
            _ = lm._logits(twin._encode(texts[:1])[0])  # open the scorer before counting
        agree = total = 0
        for text in texts[:8]:
            ids = twin._encode([text])[0]
            with torch.no_grad():
                if backend == "transformers":
                    fast = lm.model(torch.tensor([ids])).logits[0].float().argmax(-1).numpy()
                elif backend == "llamacpp":  # the GGUF's vocabulary is the tokenizer's: ids are shared
                    fast = lm._logits(ids).argmax(-1)
                else:
                    fast = np.asarray(lm._generator.forward_batch([lm._tokens(ids)]))[0].argmax(-1)
                    fast = np.asarray(lm._own_ids(fast.tolist()))  # a trimmed engine's ids -> the tokenizer's
                slow = twin.model(torch.tensor([ids])).logits[0].argmax(-1).numpy()
            agree, total = agree + int((fast == slow).sum()), total + len(ids)
        out["top1_agreement"] = round(agree / total, 4)
        out["top1_positions"] = total
    return out


def _engines(args, env: dict) -> dict:
    """Every backend x precision on the built-in model and the fine-tuned one; ratios to transformers float32."""
    models = [args.model] + ([args.finetuned] if args.finetuned else [])
    rows = []
    for model in models:
        for backend, quantize in [e for e in ENGINES if not args.engine_set or f"{e[0]}:{e[1]}" in args.engine_set]:
            if backend == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
                continue  # not installed (optional extra)
            unpacked = {"SLMKIT_PACK_BF16": "0"} if quantize and quantize.endswith("-unpacked") else {}
            row_args = ["--model", model, "--n-texts", str(args.n_texts), "--repeats", str(args.repeats),
                        "--seed", str(args.seed), "--backend", backend, *(["--quantize", quantize] if quantize else [])]
            phase = [*row_args, "--phase", "engine"]
            if args.warm_cache:  # the user's cache: a conversion made by an earlier process, as every later load is
                if backend == "ctranslate2":  # convert first, in a process of its own, if the cache lacks it
                    _run_phase([*row_args, "--phase", "convert"], env)
                row = _run_phase(phase, {**env, **unpacked})
                rows.append({**row, "model": model})
                print(json.dumps(rows[-1]), flush=True)
                continue
            # a fresh engine cache (the GGUF conversion linked in), so the engine's own conversion is timed
            with tempfile.TemporaryDirectory() as fresh:
                user = Path(env.get("SLMKIT_CACHE") or Path.home() / ".cache" / "slmkit")
                for entry in ("gguf", "converted", "checksums.json"):
                    if (user / entry).exists():
                        (Path(fresh) / entry).symlink_to((user / entry).resolve())
                row = _run_phase(phase, {**env, "SLMKIT_CACHE": fresh, **unpacked})
            row["model"] = model
            rows.append(row)
            print(json.dumps(row), flush=True)
    for row in rows:
        base = next((r for r in rows if r["model"] == row["model"] and r["backend"] == "transformers"
                     and r["quantize"] == "float32"), None)
        if base is None:  # --engine-set left the reference out
            continue
        row["ratios_to_transformers_float32"] = {
            k: round(row[k] / base[k], 2)
            for k in ("token_losses_tokens_per_s", "generate_single_tokens_per_s", "generate_batched_8_tokens_per_s",
                      "embed_batch_1_tokens_per_s", "embed_batch_8_tokens_per_s", "embed_batch_32_tokens_per_s",
                      "embed_middle_batch_8_tokens_per_s")
            if k in row and k in base
        }
    return {"rows": rows}


def _plot_engines(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("token_losses_tokens_per_s", "token losses"), ("generate_single_tokens_per_s", "generate, 1 prompt"),
            ("generate_batched_8_tokens_per_s", "generate, 8 prompts")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, title) in zip(axes, keys):
        labels = [f"{Path(r['model']).name}\n{r['backend']} {r['quantize']}" for r in result["rows"]]
        ax.barh(labels, [r.get(key, 0) for r in result["rows"]])
        ax.set_title(f"{title} (tokens/s)")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)


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
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--n-texts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "runtime.json")
    parser.add_argument("--engines", action="store_true", help="compare backends x precisions instead")
    parser.add_argument("--finetuned", help="with --engines: a fine-tuned run folder or merged model to add")
    parser.add_argument("--warm-cache", action="store_true",
                        help="with --engines: load conversions from the user's cache (made by an earlier process) "
                        "instead of converting each engine afresh in the measuring process")
    parser.add_argument("--engine-set", nargs="*", help="with --engines: only these backend:precision rows "
                        "(e.g. transformers:None ctranslate2:int8-trimmed)")
    parser.add_argument("--phase", choices=["load", "throughput", "llamacpp", "engine", "convert"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="transformers", help=argparse.SUPPRESS)
    parser.add_argument("--quantize", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = {
            "engine": lambda: phase_engine(args.model, args.backend, args.quantize, args.n_texts, args.repeats,
                                           args.seed),
            "convert": lambda: phase_convert(args.model, args.backend, args.quantize, args.n_texts),
            "load": lambda: phase_load(args.model),
            "throughput": lambda: phase_throughput(args.model, args.n_texts, args.repeats, args.seed),
            "llamacpp": lambda: phase_llamacpp(args.model, args.n_texts, args.seed),
        }[args.phase]()
        result["peak_rss_mb"] = peak_rss_mb()
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
    if args.engines:
        import ctranslate2
        from classify import cpu_name  # bench/classify.py

        from slmkit.models._precision import cpu_native_bf16

        out = args.out if args.out != RESULTS / "runtime.json" else RESULTS / "runtime_engines.json"
        result = {
            "model": args.model,
            "finetuned": args.finetuned,
            "config": vars(args) | {"out": str(out), "phase": None},
            "versions": {"slmkit": slmkit.__version__, "torch": torch.__version__,
                         "transformers": transformers.__version__, "ctranslate2": ctranslate2.__version__,
                         "python": platform.python_version()},
            "machine": {"cpus": os.cpu_count(), "threads": os.environ.get("SLMKIT_NUM_THREADS", "default"),
                        "processor": platform.processor(), "cpu": cpu_name(), "native_bf16": cpu_native_bf16()},
            **_engines(args, env),
        }
        from slmkit.data import write_json

        write_json(out, result)
        _plot_engines(result, out.with_suffix(".png"))
        return
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
