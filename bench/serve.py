"""Load test of `slmkit serve`: 1, 8 and 32 concurrent clients on /v1/classify and /v1/summarize.

The server runs as its own process (`python -m slmkit serve`), twice in the same run: with micro-batching
(the default) and one request per model call (`--max-micro-batch 1`), so the gain is a ratio measured under
the same conditions. Each client is a thread with a keep-alive connection that sends one request after the
other for `--duration` seconds. Writes bench/results/serve.json and serve.png.

    HF_HUB_OFFLINE=1 python bench/serve.py --seed 0                  # the built-in gemma3-270m, 60 s per cell
    HF_HUB_OFFLINE=1 python bench/serve.py --tiny --duration 2       # smoke test on tiny random-weight models
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
EXAMPLES = ROOT / "examples" / "data"
TEMPLATE = "Review: {text}\nIs the review positive or negative? Answer:"


def build_served_dir(folder: Path, model: str, tiny: bool, seed: int) -> str:
    """A served folder with one classifier artifact on `model` (fitted on the project's example sentences)."""
    import pandas as pd

    from slmkit.classify import EmbeddingCache, LMClassifier

    if tiny:
        from slmkit.testing import make_tiny_model_dir

        model = str(make_tiny_model_dir(folder / "tiny", kind="causal", seed=seed))
    frame = pd.read_csv(EXAMPLES / "sentences_en.csv")
    clf = LMClassifier(model, template=TEMPLATE, pooling="mean", layers=(-1,), cv=3, cache=EmbeddingCache(None),
                       random_state=seed).fit(frame["text"].tolist(), frame["label"])
    clf.save(folder / "clf")
    return "tiny" if tiny else model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, served: Path, model: str, micro_batch: int, seed: int, log: Path) -> None:
        self.port = free_port()
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slmkit", "serve", str(served), "--port", str(self.port), "--model", model,
             "--max-micro-batch", str(micro_batch), "--seed", str(seed)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + 120
        while True:
            try:
                if request(self.port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.2)

    def stats(self) -> dict:
        return json.loads(request(self.port, "GET", "/v1/stats")[1])["batching"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def request(port: int, method: str, path: str, body: dict | None = None, conn=None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def _fresh(body: dict, i: int) -> dict:
    """Classification texts made unique per request: the server keeps embeddings of texts it has seen, and a
    benchmark that repeats 40 sentences would measure that cache, not the model."""
    if "texts" not in body:
        return body
    return {**body, "texts": [f"{text} (request {i})" for text in body["texts"]]}


def load(port: int, path: str, bodies: list[dict], clients: int, duration: float) -> dict:
    """`clients` threads, each sending requests back to back for `duration` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        i = k
        while time.monotonic() < stop_at:
            tic = time.perf_counter()
            try:
                status, data = request(port, "POST", path, _fresh(bodies[i % len(bodies)], i), conn=conn)
            except OSError as exc:
                status, data = -1, str(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            elapsed = time.perf_counter() - tic
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors.append(f"{status}: {data[:200].decode(errors='replace')}")
            i += clients
        conn.close()

    tic = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - tic
    ordered = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else None

    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "seconds": round(wall, 2), "req_per_s": round(len(latencies) / wall, 3),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = list(results["runs"]["batched"])
    fig, axes = plt.subplots(1, len(endpoints), figsize=(5 * len(endpoints), 3.6), squeeze=False)
    for ax, endpoint in zip(axes[0], endpoints):
        for mode, style in (("batched", "-o"), ("one_at_a_time", "--s")):
            rows = results["runs"][mode][endpoint]
            ax.plot([r["clients"] for r in rows], [r["req_per_s"] for r in rows], style, label=mode.replace("_", " "))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("requests / s")
        ax.set_title(f"{endpoint} ({results['model']})")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m", help="built-in model behind both endpoints")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight model instead (smoke test)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per (mode, endpoint, clients) cell")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="summary length budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "serve.json")
    parser.add_argument("--cases", default="classify,summarize",
                        help="endpoints to measure; the others' results are kept from an existing --output")
    args = parser.parse_args()

    import pandas as pd

    from slmkit.data import write_json

    clients = [int(c) for c in args.clients.split(",")]
    sentences = pd.read_csv(EXAMPLES / "sentences_en.csv")["text"].tolist()
    dialogues = pd.read_csv(EXAMPLES / "dialogues_en.csv")["dialogue"].tolist()
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-serve-") as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        model = build_served_dir(served, args.model, args.tiny, args.seed)
        cases = {
            "classify": ("/v1/classify", [{"model": "clf", "texts": [t]} for t in sentences]),
            # zero-shot: the prompting method that needs no second (retrieval) model; one dialogue per request.
            "summarize": ("/v1/summarize", [{"model": model, "method": "zero-shot", "language": "en",
                                             "max_new_tokens": args.max_new_tokens, "dialogues": [d]}
                                            for d in dialogues]),
        }
        cases = {name: case for name, case in cases.items() if name in args.cases.split(",")}
        runs: dict = {}
        for mode, micro in (("batched", 32), ("one_at_a_time", 1)):
            server = Server(served, model, micro, args.seed, Path(tmp) / f"server-{mode}.log")
            try:
                runs[mode] = {}
                for name, (path, bodies) in cases.items():
                    status, data = request(server.port, "POST", path, bodies[0])  # load the model, warm up
                    if status != 200:
                        raise RuntimeError(f"{path} warm-up failed: {status} {data[:300]!r}")
                    runs[mode][name] = []
                    for n in clients:
                        before = server.stats()
                        row = load(server.port, path, bodies, n, args.duration)
                        after = server.stats()
                        kind = name
                        calls = after["model_calls"].get(kind, 0) - before["model_calls"].get(kind, 0)
                        row["model_calls"] = calls
                        row["requests_per_model_call"] = round(row["requests"] / calls, 2) if calls else None
                        runs[mode][name].append(row)
                        print(f"{mode:14s} {name:9s} clients={n:3d} {row['req_per_s']:8.2f} req/s  "
                              f"p50={row['p50_ms']} ms p95={row['p95_ms']} ms errors={row['errors']}  "
                              f"req/call={row['requests_per_model_call']}", flush=True)
            finally:
                server.stop()
    kept = json.loads(args.output.read_text())["runs"] if args.output.is_file() else {}
    for mode, measured in runs.items():
        runs[mode] = {**{k: v for k, v in kept.get(mode, {}).items() if k not in cases}, **measured}
    gain = {name: {str(b["clients"]): round(b["req_per_s"] / o["req_per_s"], 2) if o["req_per_s"] else None
                   for b, o in zip(runs["batched"][name], runs["one_at_a_time"][name])} for name in runs["batched"]}
    import slmkit

    results = {
        "command": " ".join(["python", "bench/serve.py", *sys.argv[1:]]),
        "model": "tiny (random weights)" if args.tiny else args.model, "duration_s": args.duration,
        "clients": clients, "seed": args.seed, "max_new_tokens": args.max_new_tokens,
        "summarize_method": "zero-shot", "threads": os.environ.get("SLMKIT_NUM_THREADS", "all"),
        "cpu": platform.processor() or platform.machine(), "cpus_available": len(os.sched_getaffinity(0)),
        "slmkit": slmkit.__version__, "runs": runs, "micro_batching_gain": gain,
        "total_errors": sum(r["errors"] for m in runs.values() for rows in m.values() for r in rows),
    }
    write_json(args.output, results)
    plot(results, args.output.with_suffix(".png"))
    print(f"gain (batched / one-at-a-time req/s): {json.dumps(gain)}")
    print(f"-> {args.output}, {args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
