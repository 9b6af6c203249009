"""What a new user meets: seconds to the first visible line and the first progress bar of the default commands,
and few-shot pool embedding on a first and a second (cached) run.

    SLMKIT_NUM_THREADS=1 python bench/first_use.py          # -> bench/results/first_use.{json,png}

Each command runs as a user would run it (a subprocess of the installed `slmkit`, default options, a fresh
output folder); stderr is read as it arrives and every line is timestamped. The model-conversion cache is
assumed warm (`slmkit models prepare gemma3-270m`); the embedding cache is a fresh folder per run, so the
first pool embedding is really the first. The pool timing uses the Korean dev rows in ../shared/data when
present (399 dialogues, the size of a real example table) and the built-in pool otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SLMKIT = str(Path(sys.executable).with_name("slmkit"))
DATA = ROOT.parent / "shared" / "data" / "summarization" / "ko_dialogsum" / "dev.csv"
PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar


def timed_command(args: list[str], env: dict) -> dict:
    """Run `slmkit args...`; seconds to the first stderr/stdout line, the first progress bar, and the end."""
    tic = time.perf_counter()
    proc = subprocess.Popen([SLMKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    first_line = first_bar = None
    lines = []
    while chunk := proc.stdout.read1(4096):
        now = round(time.perf_counter() - tic, 2)
        for line in re.split(rb"[\r\n]", chunk):
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            first_line = first_line if first_line is not None else now
            if first_bar is None and PROGRESS.search(text):
                first_bar = now
            lines.append(f"{now:7.2f} {text[:160]}")
    code = proc.wait()
    return {
        "command": "slmkit " + " ".join(args),
        "exit_code": code,
        "seconds_to_first_line": first_line,
        "seconds_to_first_progress_bar": first_bar,
        "seconds_total": round(time.perf_counter() - tic, 2),
        "first_lines": lines[:12],
    }


def pool_embedding(tmp: Path) -> dict:
    """Fit the few-shot retriever twice on one pool with one on-disk cache: the second run embeds nothing."""
    from slmkit.classify import EmbeddingCache
    from slmkit.models import load_model
    from slmkit.summarize import FewShotRetriever, builtin_examples, load_dialogues

    if DATA.is_file():
        pool = load_dialogues(DATA, require_summary=True, strict=False)
        pool = pool.assign(n=pool["fname"].str.extract(r"(\d+)$")[0].astype(int)).sort_values("n").iloc[:399]
        source = f"{DATA.relative_to(ROOT.parent)} (first 399 rows by fname)"
    else:
        pool, source = load_dialogues(builtin_examples("ko"), require_summary=True), "built-in Korean pool"
    lm = load_model("gemma3-270m")
    runs = []
    for attempt in ("first", "second"):
        cache = EmbeddingCache(tmp / "embeddings")  # a new handle each time: nothing kept in memory
        tic = time.perf_counter()
        FewShotRetriever(lm, k=2, cache=cache).fit(list(pool["dialogue"]), list(pool["summary"]), list(pool["fname"]))
        runs.append({"run": attempt, "seconds": round(time.perf_counter() - tic, 2), "cache_hits": cache.hits})
    return {"pool": source, "n_dialogues": len(pool), "model": "gemma3-270m", "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--limit", type=int, default=4, help="dialogues per summarize command (time is per row)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"
        cache.mkdir()
        # Share the converted model with the user's cache, but start with an empty embedding cache.
        user_cache = Path(os.environ.get("SLMKIT_CACHE", Path.home() / ".cache" / "slmkit"))
        for part in ("converted", "gguf", "checksums.json"):
            if (user_cache / part).exists():
                (cache / part).symlink_to(user_cache / part)
        env = {**os.environ, "SLMKIT_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
        commands = []
        for lang in ("en", "ko"):
            commands.append(
                timed_command(
                    [
                        "summarize",
                        "predict",
                        f"examples/data/dialogues_{lang}.csv",
                        "--output",
                        str(tmp / f"{lang}.csv"),
                        "--limit",
                        str(args.limit),
                        "--seed",
                        str(args.seed),
                    ],
                    env,
                )
            )
        commands.append(
            timed_command(
                [
                    "classify",
                    "fit",
                    "--train",
                    "examples/data/sentences_en.csv",
                    "--out",
                    str(tmp / "clf"),
                    "--seed",
                    str(args.seed),
                ],
                env,
            )
        )
        os.environ["SLMKIT_CACHE"] = str(cache)
        pool = pool_embedding(tmp)
    import slmkit

    results = {
        "meta": {
            "command": "python bench/first_use.py",
            "slmkit": slmkit.__version__,
            "threads": os.environ.get("SLMKIT_NUM_THREADS"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "limit": args.limit,
        },
        "commands": commands,
        "pool_embedding": pool,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "first_use.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    _plot(results, out / "first_use.png")
    for c in commands:
        print(
            f"{c['command']}: first line {c['seconds_to_first_line']} s, first bar "
            f"{c['seconds_to_first_progress_bar']} s, total {c['seconds_total']} s (exit {c['exit_code']})"
        )
    print("pool embedding:", pool)


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    commands = results["commands"]
    names = [
        " ".join(c["command"].split()[1:3])
        + (" (en)" if "_en" in c["command"] else " (ko)" if "_ko" in c["command"] else "")
        for c in commands
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
    y = range(len(commands))
    left.barh(y, [c["seconds_total"] for c in commands], color="#ddd", label="finished")
    left.barh(y, [c["seconds_to_first_progress_bar"] or 0 for c in commands], color="#8ab", label="first progress bar")
    left.barh(y, [c["seconds_to_first_line"] or 0 for c in commands], color="#246", label="first line")
    left.set_yticks(list(y), names)
    left.set_xlabel("seconds")
    left.legend(fontsize=8)
    runs = results["pool_embedding"]["runs"]
    right.bar([r["run"] for r in runs], [r["seconds"] for r in runs], color=["#246", "#8ab"])
    right.set_ylabel("seconds")
    right.set_title(f"embedding a {results['pool_embedding']['n_dialogues']}-dialogue few-shot pool", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
