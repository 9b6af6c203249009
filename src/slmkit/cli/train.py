"""`slmkit train pairs | docs | merge | scratch`: the shared trainer from the command line.

TrainConfig has many fields; the commands expose the common ones as options and every other one through
`--set field=value` (repeatable) or `--config train_config.json`, so the CLI never lags behind the dataclass.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import typer

from slmkit.cli._common import SEED_OPTION, Typer, handle_errors, option_given, output_policy
from slmkit.errors import ConfigError

app = Typer(no_args_is_help=True, help="Fine-tune causal / encoder-decoder LMs (full, LoRA, P-tuning).")

METHOD = typer.Option("lora", "--method", help="full | lora | ptuning")
EPOCHS = typer.Option(None, "--epochs", help="Passes over the training data (TrainConfig default: 3).")
LEARNING_RATE = typer.Option(None, "--learning-rate", help="Peak learning rate (default per TrainConfig).")
CONFIG = typer.Option(None, "--config", help="A train_config.json to start from (e.g. a previous run's).")
SET = typer.Option(None, "--set", help="Any TrainConfig field, e.g. --set lora_r=16 --set max_length=2048.")


def build_train_config(method, epochs, learning_rate, config_file, sets, seed, **fixed):
    """TrainConfig from a JSON file, then the explicit options, then `--set field=value` pairs."""
    from slmkit.train import TrainConfig

    values: dict = {}
    if config_file:
        try:
            values.update(json.loads(Path(config_file).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--config {config_file}: not a readable JSON file ({exc})") from exc
    # A file's method and seed stand unless the option is typed: the options' defaults (lora, 0) silently
    # replaced them, so "start from a previous run's config" trained another method with another seed.
    for name, value in (("method", method), ("seed", seed)):
        if name not in values or option_given(name):
            values[name] = value
    values.update(fixed)
    if epochs is not None:
        values["epochs"] = epochs
    if learning_rate is not None:
        values["learning_rate"] = learning_rate
    types = {f.name: f.type for f in fields(TrainConfig)}
    for item in sets or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise ConfigError(f"--set {item!r}: expected field=value with a TrainConfig field ({', '.join(types)})")
        values[key] = _coerce(key, raw.strip(), types[key])
    return TrainConfig.from_dict(values)


def _coerce(key: str, raw: str, kind: str):
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("list"):
            return [x.strip() for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"--set {key}={raw}: not a valid {kind}") from exc
    return raw


def print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    info = result.info
    table = Table(title=f"run {result.run_dir}")
    table.add_column("measure")
    table.add_column("value")
    rows = {
        "method": info.get("method"),
        "steps / epochs": f"{info.get('steps')} / {info.get('epochs')}",
        "train loss": info.get("metrics", {}).get("train_loss"),
        "best eval metric": info.get("metrics", {}).get("best_metric"),
        "time": f"{info.get('seconds')} s ({info.get('tokens_per_second')} tokens/s)",
        "peak RSS": f"{info.get('peak_rss_mb')} MB",
    }
    for key, value in rows.items():
        if value is not None:
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    typer.echo(f"model: {result.model_dir} (serve it with --model {result.run_dir})")


@app.command("pairs")
@handle_errors
def pairs_cmd(
    train: Path = typer.Argument(..., help="Table with prompt and target columns (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help="Run folder (an unfinished run there resumes)."),
    model: str = typer.Option("gemma3-270m", "--model", help="Base model: registry name, folder or hub id."),
    dev: Path = typer.Option(None, "--dev", help="Held-out table of the same shape: eval loss, best checkpoint."),
    prompt_column: str = typer.Option("prompt", "--prompt-column", help="Column with the model's input."),
    target_column: str = typer.Option(
        "target", "--target-column", help="Column with the text to learn (the loss is on these tokens only)."
    ),
    method: str = METHOD,
    epochs: float = EPOCHS,
    learning_rate: float = LEARNING_RATE,
    config: Path = CONFIG,
    set_: list[str] = SET,
    seed: int = SEED_OPTION,
) -> None:
    """Fine-tune on (prompt, target) pairs; the loss falls on the target tokens only."""
    from slmkit.data import read_table
    from slmkit.train import train as run_training

    train_config = build_train_config(method, epochs, learning_rate, config, set_, seed, objective="pairs")
    output_policy([train, dev, config], False).folder(output)
    frame = read_table(train, text_columns=[prompt_column, target_column])
    held = read_table(dev, text_columns=[prompt_column, target_column]) if dev else None
    result = run_training(
        model,
        train_config,
        output,
        train_pairs=(list(frame[prompt_column]), list(frame[target_column])),
        eval_pairs=(list(held[prompt_column]), list(held[target_column])) if held is not None else None,
        source=str(train),
    )
    print_result(result)


@app.command("docs")
@handle_errors
def docs_cmd(
    train: Path = typer.Argument(..., help="Table of documents (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help="Run folder (an unfinished run there resumes)."),
    model: str = typer.Option("gemma3-270m", "--model", help="Base model, or a folder from `train scratch`."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the documents."),
    reverse: bool = typer.Option(False, "--reverse", help="Train on token-reversed documents (a reverse LM)."),
    dev: Path = typer.Option(None, "--dev", help="Held-out documents: eval loss and best checkpoint."),
    method: str = typer.Option("full", "--method", help="full | lora | ptuning"),
    epochs: float = EPOCHS,
    learning_rate: float = LEARNING_RATE,
    config: Path = CONFIG,
    set_: list[str] = SET,
    seed: int = SEED_OPTION,
) -> None:
    """Plain next-token training over whole documents (packed into max_length blocks)."""
    from slmkit.data import read_table
    from slmkit.train import train as run_training

    train_config = build_train_config(method, epochs, learning_rate, config, set_, seed, objective="documents")
    output_policy([train, dev, config], False).folder(output)
    texts = list(read_table(train, text_columns=[text_column])[text_column])
    held = list(read_table(dev, text_columns=[text_column])[text_column]) if dev else None
    result = run_training(
        model, train_config, output, documents=texts, eval_documents=held, reverse=reverse, source=str(train)
    )
    print_result(result)


@app.command("merge")
@handle_errors
def merge_cmd(
    run: Path = typer.Argument(..., help="A finished LoRA (or full) run folder."),
    output: Path = typer.Option(..., "--output", help="New folder for the merged transformers model."),
) -> None:
    """Fold a LoRA adapter into its base and save a plain transformers model folder."""
    from slmkit.train import merge

    output_policy([run], False).folder(output)
    typer.echo(f"merged model: {merge(run, output)}")


@app.command("scratch")
@handle_errors
def scratch_cmd(
    corpus: Path = typer.Argument(..., help="Table of documents to train the tokenizer on."),
    output: Path = typer.Option(..., "--output", help="New folder for the random-weight model + tokenizer."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the documents."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="BPE vocabulary size."),
    hidden_size: int = typer.Option(256, "--hidden-size", help="Model width."),
    num_layers: int = typer.Option(4, "--num-layers", help="Decoder layers."),
    num_heads: int = typer.Option(4, "--num-heads", help="Attention heads (must divide --hidden-size)."),
    seed: int = SEED_OPTION,
) -> None:
    """Build a small causal LM from scratch: BPE tokenizer trained on the corpus, random weights."""
    from slmkit.data import read_table
    from slmkit.train import ScratchConfig, build_from_scratch

    config = ScratchConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_size=int(hidden_size * 8 / 3 + 63) // 64 * 64,
        seed=seed,
    )
    output_policy([corpus], False).folder(output)
    texts = list(read_table(corpus, text_columns=[text_column])[text_column])
    path = build_from_scratch(texts, output, config)
    typer.echo(f"model: {path} (train it with: slmkit train docs CORPUS --model {path} --output RUN)")
