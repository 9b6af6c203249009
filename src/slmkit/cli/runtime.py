"""`slmkit lm ...`: the shared runtime from the command line (embed, score, generate, demo)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import typer

from slmkit.cli._common import DTYPE_OPTION, OVERWRITE_OPTION, Typer, handle_errors, output_policy
from slmkit.errors import ConfigError

app = Typer(no_args_is_help=True, help="Run the shared LM runtime: embeddings, token losses, generation.")
EXAMPLE_TEXTS = Path(__file__).resolve().parents[3] / "examples" / "data" / "texts.jsonl"

MODEL = typer.Option("gemma3-270m", "--model", help="Registry name, directory, .gguf file or Hugging Face id.")
BACKEND = typer.Option("transformers", "--backend", help="transformers | llamacpp")
TEXT_COLUMN = typer.Option("text", "--text-column", help="Column holding the texts.")


def _load(model: str, backend: str, dtype: str | None):
    """load_model with --dtype passed on only where it means something (the transformers backend)."""
    from slmkit.models import load_model
    from slmkit.models._precision import DTYPES, requested_dtype

    if dtype is None:
        return load_model(model, backend=backend)
    try:
        requested_dtype(dtype)
    except ConfigError:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)} (or fp32/bf16/fp16), got {dtype!r}") from None
    if backend != "transformers":
        raise ConfigError(f"--dtype applies to the transformers backend, not {backend} (it runs its own precision)")
    return load_model(model, backend=backend, dtype=dtype)


def _read_texts(path: Path, text_column: str) -> tuple[list[str], list[str]]:
    from slmkit.data import read_table

    frame = read_table(path, text_columns=[text_column])
    ids = frame["id"].astype(str).tolist() if "id" in frame.columns else [str(i) for i in range(len(frame))]
    return ids, frame[text_column].tolist()


@app.command("demo")
@handle_errors
def demo_cmd(
    input: Path = typer.Option(EXAMPLE_TEXTS, "--input", help="Texts to run (CSV/TSV/JSONL/Parquet)."),
    text_column: str = TEXT_COLUMN,
    model: str = MODEL,
    backend: str = BACKEND,
    dtype: str = DTYPE_OPTION,
    output: Path = typer.Option(Path("out/runtime_demo.json"), "--output", help="Where the JSON report goes."),
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Load a model and embed, score and generate for a few texts (the project's examples by default)."""
    from rich.console import Console
    from rich.table import Table

    import slmkit
    from slmkit.data import fingerprint_file, write_json
    from slmkit.models import runtime_report

    outputs = output_policy([input], overwrite)
    outputs.file(output)
    ids, texts = _read_texts(input, text_column)
    lm = _load(model, backend, dtype)
    report = runtime_report(lm, ids, texts)  # greedy decoding: no seed can change the report
    report["config"] = {"input": str(input), "input_sha256": fingerprint_file(input)}
    report["versions"] = {"slmkit": slmkit.__version__, "python": platform.python_version()}
    write_json(output, report)
    outputs.record()
    table = Table(title=f"{lm.spec.name} on {input.name}")
    for column in ("id", "perplexity", "nearest", "continuation"):
        table.add_column(column, overflow="fold")
    for row in report["texts"]:
        shown = " ".join(row.get("continuation", "-").replace("\u200b", " ").split())  # one line per row
        table.add_row(row["id"], str(row.get("perplexity", "-")), row["nearest"], shown[:80])
    Console().print(table)
    typer.echo(f"report written to {output}")


@app.command("embed")
@handle_errors
def embed_cmd(
    input: Path = typer.Argument(..., help="Texts (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help=".npy file for the (n_texts, dim) float32 array."),
    text_column: str = TEXT_COLUMN,
    model: str = MODEL,
    backend: str = BACKEND,
    dtype: str = DTYPE_OPTION,
    pooling: str = typer.Option("mean", "--pooling", help="mean | last"),
    layers: str = typer.Option("-1", "--layers", help="Comma-separated layer indices, e.g. -1 or 9,-1."),
    template: str = typer.Option("{text}", "--template", help="Wraps each text; must contain {text}."),
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Embed texts and save the array as .npy."""
    import numpy as np

    from slmkit.data import atomic_open

    try:
        layer_list = [int(x) for x in layers.split(",")]
    except ValueError as exc:
        raise ConfigError(f"--layers must be comma-separated layer indices (e.g. -1 or 9,-1), got {layers!r}") from exc
    if pooling not in ("mean", "last"):
        raise ConfigError(f"--pooling must be mean or last, got {pooling!r}")
    if template.count("{text}") != 1:
        raise ConfigError(f"--template must contain {{text}} exactly once, got {template!r}")
    outputs = output_policy([input], overwrite)
    outputs.file(output)
    _, texts = _read_texts(input, text_column)
    lm = _load(model, backend, dtype)
    vectors = lm.embed(texts, pooling=pooling, layers=layer_list, template=template, progress=True)
    with atomic_open(output, "wb") as handle:
        np.save(handle, vectors)
    outputs.record()
    typer.echo(f"{vectors.shape[0]} x {vectors.shape[1]} embeddings written to {output}")


@app.command("losses")
@handle_errors
def losses_cmd(
    input: Path = typer.Argument(..., help="Texts (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help="JSONL: id, n_tokens, mean_loss, perplexity per text."),
    text_column: str = TEXT_COLUMN,
    model: str = MODEL,
    backend: str = BACKEND,
    dtype: str = DTYPE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Per-text mean token loss and perplexity."""
    import numpy as np

    from slmkit.data import atomic_open

    outputs = output_policy([input], overwrite)
    outputs.file(output)
    ids, texts = _read_texts(input, text_column)
    losses = _load(model, backend, dtype).token_losses(texts, progress=True)
    with atomic_open(output) as handle:
        for text_id, loss in zip(ids, losses):
            mean = float(loss.mean()) if len(loss) else float("nan")
            row = {"id": text_id, "n_tokens": len(loss), "mean_loss": mean, "perplexity": float(np.exp(mean))}
            handle.write(json.dumps(row) + "\n")
    outputs.record()
    typer.echo(f"{len(texts)} texts scored, written to {output}")


@app.command("generate")
@handle_errors
def generate_cmd(
    prompt: list[str] = typer.Argument(..., help="One or more prompts."),
    model: str = MODEL,
    backend: str = BACKEND,
    dtype: str = DTYPE_OPTION,
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Most new tokens per prompt."),
    num_beams: int = typer.Option(1, "--num-beams", help="Beam width (1 = no beam search)."),
    do_sample: bool = typer.Option(False, "--do-sample/--greedy", help="Sample the next token, or take the likeliest."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling: <1 sharper, >1 flatter."),
    top_k: int = typer.Option(50, "--top-k", help="Sampling: only the k likeliest tokens (0 = all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Sampling: the smallest set of tokens with this much mass."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help=">1 discourages repeated tokens."),
    no_repeat_ngram_size: int = typer.Option(
        0, "--no-repeat-ngram-size", help="Never repeat an n-gram this long (0 = off)."
    ),
    stop: list[str] = typer.Option(None, "--stop", help="Stop string (repeatable); the text ends before it."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (--do-sample); greedy and beam search ignore it."),
) -> None:
    """Continue each prompt and print the new text."""
    from slmkit.models import GenerationParams

    params = GenerationParams(
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        stop=tuple(stop or ()),
        seed=seed,
    )
    for text in _load(model, backend, dtype).generate(prompt, params):
        typer.echo(text)
