"""How CTranslate2 should use the CPU's threads for decoding: one engine on every thread, or one single-thread
replica per thread, each decoding its own batch (what the ctranslate2 backend does since this benchmark).

For each layout, the same work as bench/runtime.py's engine rows: prompts of 100-token WikiText texts cut to 300
characters, 48 new tokens forced (greedy), single-stream (4 prompts, one call each, one after another: "single")
and 8 prompts in one call ("batched 8"), plus 16 prompts in batches of 8 in one call ("16 in 8s", what
`summarize predict` does). Layouts:

- `one engine, N threads`: the backend before: one engine, intra-op threads = N, batches one after another;
- `one thread`: one engine on one thread (the other cores idle);
- `N replicas`: N single-thread replicas (inter_threads = N) sharing one copy of the weights, the batches
  submitted asynchronously, a batch of 8 split in N parts;
- `slmkit generate`: `CTranslate2LM.generate` with num_threads = N, the library path (should match `N replicas`).

Medians of `--repeats` runs, tokens/s of new tokens (prompt processing included), measured side by side in one
process; writes bench/results/ct2_decoding.json and .png. Run it alone on an idle machine:

    HF_HUB_OFFLINE=1 python bench/ct2_decoding.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from runtime import TRIM_CORPUS, _source_paragraphs, _texts_of_n_tokens  # bench/runtime.py

from slmkit.data import atomic_open, write_json

RESULTS = Path(__file__).parent / "results"
NEW_TOKENS = 48


def measure(args) -> dict:
    import ctranslate2

    import slmkit
    from slmkit.models import GenerationParams, load_model

    paragraphs = _source_paragraphs()
    n_texts = 32
    options = {"quantize": args.quantize}
    if args.trimmed:  # the output layer keeps the tokens of paragraphs the measured texts never come from
        options["keep_tokens"] = paragraphs[n_texts : n_texts + TRIM_CORPUS]
    lm = load_model(args.model, backend="ctranslate2", num_threads=args.threads, **options)
    texts = _texts_of_n_tokens(lm._twin(), n_texts, 100)
    prompts = [t[:300] for t in texts[:16]]
    starts = [lm._tokens(lm._ids(p)) for p in prompts]
    kw = dict(max_length=NEW_TOKENS, min_length=NEW_TOKENS, sampling_topk=1, include_prompt_in_result=False)

    def engine(intra, inter):
        return ctranslate2.Generator(str(lm.model_dir), device="cpu", compute_type=args.quantize,
                                     intra_threads=intra, inter_threads=inter)

    def run_sync(gen, rows, size):
        done = [gen.generate_batch([starts[i] for i in rows[k : k + size]], max_batch_size=size, **kw)
                for k in range(0, len(rows), size)]
        return sum(len(r.sequences_ids[0]) for batch in done for r in batch)

    def run_async(gen, rows, size):
        size = min(size, -(-len(rows) // args.threads))  # every replica gets a batch, as the backend splits
        pending = [gen.generate_batch([starts[i] for i in rows[k : k + size]], max_batch_size=size,
                                      asynchronous=True, **kw) for k in range(0, len(rows), size)]
        return sum(len(r.result().sequences_ids[0]) for batch in pending for r in batch)

    params = GenerationParams(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)

    def run_library(rows, size):
        return sum(lm.count_tokens(lm.generate([prompts[i] for i in rows], params, batch_size=size)))

    n = args.threads
    layouts = {
        f"one engine, {n} threads": (lambda rows, size, g=engine(n, 1): run_sync(g, rows, size)),
        "one thread": (lambda rows, size, g=engine(1, 1): run_sync(g, rows, size)),
        f"{n} replicas": (lambda rows, size, g=engine(1, n): run_async(g, rows, size)),
        "slmkit generate": run_library,
    }
    # "single" is single-stream: one prompt per call, 4 calls one after another (a latency-bound user); the others
    # are one call each, whose batches the replicas may share
    workloads = {"single": (list(range(4)), 1), "batched 8": (list(range(8)), 8), "16 in 8s": (list(range(16)), 8)}
    for fn in layouts.values():  # warm-up: first calls allocate
        fn([0, 1], 2)
    times: dict[str, dict[str, list[float]]] = {name: {w: [] for w in workloads} for name in layouts}
    tokens: dict[str, dict[str, int]] = {name: {} for name in layouts}
    for _ in range(args.repeats):  # layouts interleaved, so a slow moment of the machine hits all of them
        for workload, (rows, size) in workloads.items():
            for name, fn in layouts.items():
                start = time.perf_counter()
                if workload == "single":
                    tokens[name][workload] = sum(fn([i], 1) for i in rows)
                else:
                    tokens[name][workload] = fn(rows, size)
                times[name][workload].append(time.perf_counter() - start)
                print(f"{name:24s} {workload:10s} {tokens[name][workload] / times[name][workload][-1]:7.1f} tok/s",
                      flush=True)
    rows_out = []
    for name in layouts:
        row = {"layout": name}
        for workload in workloads:
            row[f"{workload} tokens/s"] = round(tokens[name][workload] / statistics.median(times[name][workload]), 1)
            row[f"{workload} runs s"] = [round(t, 3) for t in times[name][workload]]
        rows_out.append(row)
    base = rows_out[0]
    for row in rows_out:
        row["ratio to one engine"] = {w: round(row[f"{w} tokens/s"] / base[f"{w} tokens/s"], 2) for w in workloads}
    from classify import cpu_name  # bench/classify.py

    return {
        "config": vars(args) | {"out": str(args.out), "new_tokens": NEW_TOKENS},
        "model": {"name": args.model, "checksum": lm.info["checksum"], "kept_tokens": lm.info.get("kept_tokens")},
        "versions": {"slmkit": slmkit.__version__, "ctranslate2": ctranslate2.__version__,
                     "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name()},
        "rows": rows_out,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [k.removesuffix(" tokens/s") for k in result["rows"][0] if k.endswith(" tokens/s")]
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.2))
    for ax, workload in zip(axes, workloads):
        ax.barh([r["layout"] for r in result["rows"]], [r[f"{workload} tokens/s"] for r in result["rows"]])
        ax.set_title(f"{workload} (tokens/s)")
        ax.invert_yaxis()
    fig.suptitle(f"CTranslate2 {result['config']['quantize']} decoding layouts, {result['model']['name']}")
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--quantize", default="int8", choices=["int8", "float32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-trim", dest="trimmed", action="store_false", help="keep the whole output layer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="recorded; greedy decoding draws nothing")
    parser.add_argument("--out", type=Path, default=RESULTS / "ct2_decoding.json")
    args = parser.parse_args()
    start = time.perf_counter()
    result = measure(args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
