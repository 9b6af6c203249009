"""Quantisation study (issue 9): what each precision the engines offer does to the three jobs, in one table.

Measured here: zero-shot accuracy (bench/classify.py's prompts and label words, raw, no calibration) on the five
shared tasks, `--test-size` seeded test rows each, with gemma3-270m on transformers float32, bfloat16 and torch's
dynamic int8, on the CTranslate2 engine at int8, and on llama.cpp with the package's own Q4_K_M GGUF (4-bit; the
optional extra, which compiles: left out where it is not installed). `--settings` measures some of them again and
keeps the others' scores from the previous run. Gathered from the other benchmarks' results files, so the table has
one row per precision (nothing is re-measured or typed in by hand):

- PLR accuracy at 64 per class: bench/results/precision.json (transformers float32 / bfloat16 / int8-dynamic;
  the ctranslate2 backend serves embeddings from its transformers float32 twin, so its PLR is float32's); llama.cpp's
  from bench/results/precision_last_layer.json, beside float32's at the same (last) layer;
- summarization ROUGE on the 100 Korean eval rows: bench/results/summarize_train.json, one trained summarizer
  (`--summarizer`, default ko_lora) decoded in each precision: stages NAME (float32), NAME_bf16, NAME_int8,
  NAME_ct2_float32, NAME_ct2_int8, NAME_bf16_trimmed_inputs, NAME_q4_k_m_adapter (llama.cpp: the Q4_K_M base file
  with the run's LoRA adapter) and NAME_q4_k_m (the run merged and written as a Q4_K_M GGUF by bench/gguf_q4.py),
  where measured; and bench/results/engine_candidates.json (ONNX Runtime
  GenAI int8 / int4, on ko_lora);
- time per generated token: `--engines-file` (default bench/results/runtime_engines.json; one prompt at a time,
  48 tokens, every row from one run on one machine). Several files: a row is taken from the first that has it, and
  the table records which file gave each row (compare rows from different runs through their float32 rows).

Writes bench/results/quantization.json; prints the README table.

    SLMKIT_NUM_THREADS=1 taskset -c 1 python bench/quantization.py --test-size 100
    python bench/quantization.py --test-size 100 --engines-file runtime_engines_zen5.json --summarizer ko_lora_vnni
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
# The engine at float32 is left out: it carries transformers float32's checksum (its numbers are equal, tested),
# so its scores would come back from the same cache and measure nothing.
SETTINGS = {  # name -> load_model options
    "transformers float32": {},
    "ctranslate2 int8": {"backend": "ctranslate2", "quantize": "int8"},
    "transformers bfloat16": {"dtype": "bfloat16"},
    "transformers int8 dynamic": {"dtype": "float32", "quantize": "int8"},
    "llamacpp q4_k_m": {"backend": "llamacpp"},  # the GGUF's own 4-bit weights, executed by llama.cpp
}


def zero_shot(args) -> dict:
    from classify import TASKS, load_task

    from slmkit.classify import ZeroShotClassifier
    from slmkit.classify._cache import EmbeddingCache
    from slmkit.models import load_model

    import importlib.util
    import os

    from classify import cpu_name  # bench/classify.py

    out = {}
    for setting, options in SETTINGS.items():
        if args.settings and setting not in args.settings:
            continue
        if options.get("backend") == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
            print(setting, "skipped: llama-cpp-python is not installed (optional extra slmkit[llamacpp])")
            continue
        lm = load_model("gemma3-270m", **options)
        cache = EmbeddingCache()
        cache.add_model("gemma3-270m", lm)
        row = {}
        for name, task in TASKS.items():
            _, _, test_texts, y_test, _ = load_task(task, args.test_size, 0, args.seed)
            clf = ZeroShotClassifier("gemma3-270m", prompt=task.prompt, label_words=task.label_words,
                                     cache=cache).fit()
            start = time.perf_counter()
            predicted = clf.predict(test_texts)
            row[name] = {"accuracy": round(float(np.mean(np.asarray(predicted) == y_test)), 4),
                         "seconds": round(time.perf_counter() - start, 1)}
            print(setting, name, row[name], flush=True)
        out[setting] = {"tasks": row, "mean": round(float(np.mean([r["accuracy"] for r in row.values()])), 4),
                        "checksum": lm.info["checksum"], "cpu": cpu_name(),
                        "threads": os.environ.get("SLMKIT_NUM_THREADS", "default")}
    return out


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else {}


def gather(zs: dict, engines_files=("runtime_engines.json",), summarizer: str = "ko_lora") -> list[dict]:
    if isinstance(engines_files, str):
        engines_files = (engines_files,)
    precision, engines = _load("precision.json"), {name: _load(name) for name in engines_files}
    last_layer = _load("precision_last_layer.json")
    summarize, candidates = _load("summarize_train.json"), _load("engine_candidates.json")

    def plr(setting: str, source: dict = precision):  # mean over the five tasks; None until all five are measured
        tasks = (source.get("settings", {}).get(setting, {}) or {}).get("classification", {})
        return round(float(np.mean([t["accuracy"] for t in tasks.values()])), 4) if len(tasks) == 5 else None

    def plr_last_layer(setting: str):  # llama.cpp embeds from its last layer only: compared with float32's there
        own, reference = plr(setting, last_layer), plr("float32", last_layer)
        return None if own is None else f"{own} (last layer; float32 {reference})"

    def rouge(stage: str):
        return (summarize.get("runs", {}).get(stage, {}).get("scores") or {}).get("final")

    def gen(backend: str, quantize: str):
        for i, (name, runs) in enumerate(engines.items()):
            for row in runs.get("rows", []):
                if row["model"] == "gemma3-270m" and row["backend"] == backend and row["quantize"] == quantize:
                    ms = round(1000 / row["generate_single_tokens_per_s"], 1)
                    return ms if i == 0 else f"{ms} ({name})"
        return None

    cand = candidates.get("rows", {})
    return [
        {"precision": "float32 (transformers)", "plr_64": plr("float32"),
         "zero_shot": zs.get("transformers float32", {}).get("mean"), "rouge": rouge(summarizer),
         "ms_per_token": gen("transformers", "float32")},
        {"precision": "bfloat16 (transformers)", "plr_64": plr("bfloat16"),
         "zero_shot": zs.get("transformers bfloat16", {}).get("mean"), "rouge": rouge(f"{summarizer}_bf16"),
         "ms_per_token": gen("transformers", "bfloat16")},
        # trimming changes no arithmetic: the same bf16 model projecting onto the kept tokens only (embeddings
        # unchanged, so PLR is bf16's; a trimmed model cannot score choices, so no zero-shot)
        {"precision": "bfloat16, output layer trimmed (transformers)", "plr_64": plr("bfloat16"), "zero_shot": None,
         "rouge": rouge(f"{summarizer}_bf16_trimmed_inputs"), "ms_per_token": gen("transformers", "bfloat16-trimmed")},
        {"precision": "int8 dynamic (transformers)", "plr_64": plr("int8"),
         "zero_shot": zs.get("transformers int8 dynamic", {}).get("mean"), "rouge": rouge(f"{summarizer}_int8"),
         "ms_per_token": gen("transformers", "int8")},
        {"precision": "float32 (ctranslate2)", "plr_64": plr("float32"),
         "zero_shot": None, "rouge": rouge(f"{summarizer}_ct2_float32"),
         "ms_per_token": gen("ctranslate2", "float32")},
        {"precision": "int8 (ctranslate2)", "plr_64": plr("float32"),
         "zero_shot": zs.get("ctranslate2 int8", {}).get("mean"), "rouge": rouge(f"{summarizer}_ct2_int8"),
         "ms_per_token": gen("ctranslate2", "int8")},
        {"precision": "int8 weights (ONNX Runtime GenAI)", "plr_64": None, "zero_shot": None,
         "rouge": _other_model((cand.get("ort_int8") or {}).get("final"), summarizer, rouge("ko_lora")),
         "ms_per_token": None},
        {"precision": "int4 weights (ONNX Runtime GenAI)", "plr_64": None, "zero_shot": None,
         "rouge": _other_model((cand.get("ort_int4") or {}).get("final"), summarizer, rouge("ko_lora")),
         "ms_per_token": None},
        # ROUGE: the trained summarizer as the llama.cpp backend serves a LoRA run (the Q4_K_M base file, the adapter
        # applied in float32); below, merged and re-quantised to Q4_K_M instead (bench/gguf_q4.py)
        {"precision": "Q4_K_M (llama.cpp, the package's GGUF)", "plr_64": plr_last_layer("q4_k_m"),
         "zero_shot": zs.get("llamacpp q4_k_m", {}).get("mean"), "rouge": rouge(f"{summarizer}_q4_k_m_adapter"),
         "ms_per_token": gen("llamacpp", "q4_k_m")},
        {"precision": "Q4_K_M, fine-tune merged and re-quantised (llama.cpp)", "plr_64": None, "zero_shot": None,
         "rouge": rouge(f"{summarizer}_q4_k_m"), "ms_per_token": None},
    ]


def _other_model(score, summarizer: str, ko_lora_float32):
    """engine_candidates.py decoded ko_lora: beside another summarizer's column, name it and its float32 score."""
    if score is None or summarizer == "ko_lora":
        return score
    return f"{score} (on ko_lora, float32 {ko_lora_float32})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "quantization.json")
    parser.add_argument("--gather-only", action="store_true", help="rebuild the table from the JSON files")
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS),
                        help="measure only these zero-shot settings; the others keep the previous run's scores")
    parser.add_argument("--engines-file", nargs="+", default=["runtime_engines.json"],
                        help="bench/results file with bench/runtime.py --engines rows (time per token)")
    parser.add_argument("--summarizer", default="ko_lora",
                        help="summarize_train.json stage whose precision variants give the ROUGE column")
    args = parser.parse_args()
    from slmkit.data import write_json

    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = {k: v for k, v in previous.get("zero_shot", {}).items() if k in SETTINGS}
    zs = kept if args.gather_only else ({**kept, **zero_shot(args)} if args.settings else zero_shot(args))
    import os

    import ctranslate2
    from classify import cpu_name  # bench/classify.py
    from precision import versions  # bench/precision.py

    from slmkit.models._precision import cpu_native_bf16

    meta = {"versions": versions() | {"ctranslate2": ctranslate2.__version__},
            "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "native_bf16": cpu_native_bf16(),
                        "threads": os.environ.get("SLMKIT_NUM_THREADS", "default")}}
    if args.gather_only or args.settings:  # (some) zero-shot scores come from the previous run: keep its record
        meta = {k: previous.get(k, meta[k]) for k in meta}
    result = {**meta, "config": {"test_size": args.test_size, "seed": args.seed, "model": "gemma3-270m",
                                 "engines_file": args.engines_file, "summarizer": args.summarizer},
              "zero_shot": zs, "table": gather(zs, args.engines_file, args.summarizer)}
    write_json(args.out, result)
    print("| precision | PLR accuracy, 64/class | zero-shot accuracy | ROUGE (Korean eval) | ms per token |")
    print("|---|---|---|---|---|")
    for row in result["table"]:
        cells = [row["precision"]] + ["-" if row[k] is None else str(row[k])
                                      for k in ("plr_64", "zero_shot", "rouge", "ms_per_token")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
