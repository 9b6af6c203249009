"""`slmkit quality train | score | select | report`: data quality by reverse modeling (S = forward - reverse loss)."""

from __future__ import annotations

from pathlib import Path

import typer

from slmkit.cli._common import OVERWRITE_OPTION, SEED_OPTION, Typer, handle_errors, output_policy
from slmkit.errors import ConfigError

app = Typer(
    no_args_is_help=True,
    help="Score text quality by reverse modeling: train a forward/reverse scorer pair, score, select, report.",
)

TEXT_COLUMN = typer.Option("text", "--text-column", help="Column with the documents.")
SCORES = typer.Argument(..., help="A `quality score` output folder, or a table with its columns.")


@app.command("train")
@handle_errors
def train_cmd(
    corpus: Path = typer.Argument(..., help="Reference corpus of clean documents (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help="Scorer folder (an unfinished one there resumes)."),
    route: str = typer.Option("scratch", "--route", help="scratch (train both from zero) | adapted (fine-tune)."),
    model: str = typer.Option("gemma3-270m", "--model", help="Pretrained base of the adapted route."),
    text_column: str = TEXT_COLUMN,
    method: str = typer.Option(None, "--method", help="full | lora (default: full for scratch, lora adapted)."),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the corpus (route default: 2 / 1)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimiser steps (> 0 overrides --epochs)."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate (route default)."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Scratch route: BPE vocabulary."),
    hidden_size: int = typer.Option(256, "--hidden-size", help="Scratch route: model width."),
    num_layers: int = typer.Option(4, "--num-layers", help="Scratch route: decoder layers."),
    num_heads: int = typer.Option(4, "--num-heads", help="Scratch route: attention heads."),
    config: Path = typer.Option(None, "--config", help="A quality_config.json to start from (options win)."),
    set_: list[str] = typer.Option(
        None, "--set", help="Any TrainConfig field of both sides, e.g. --set batch_size=8."
    ),
    seed: int = SEED_OPTION,
) -> None:
    """Train a forward/reverse scorer pair with matched training (same data, steps, method and seed)."""
    import json
    from dataclasses import asdict, fields

    from slmkit.cli._common import option_given
    from slmkit.cli.train import build_train_config
    from slmkit.data import read_table
    from slmkit.quality import QualityConfig, train_scorer
    from slmkit.quality._config import default_training
    from slmkit.train import ScratchConfig

    output_policy([corpus, config], False).folder(output)
    # Both sides' TrainConfig: the route's defaults, then --config's "training" section, then the options.
    saved: dict = {}
    if config:
        try:
            saved = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--config {config}: not a readable JSON file ({exc})") from exc
    # The file's values stand unless the option is typed (the options' defaults silently replaced them).
    def chosen(name: str, value, saved_value):
        return value if saved_value is None or option_given(name) else saved_value

    route = chosen("route", route, saved.get("route"))
    model = chosen("model", model, saved.get("base_model"))
    seed = chosen("seed", seed, saved.get("seed"))
    shape = saved.get("scratch") or {}
    vocab_size = chosen("vocab_size", vocab_size, shape.get("vocab_size"))
    hidden_size = chosen("hidden_size", hidden_size, shape.get("hidden_size"))
    num_layers = chosen("num_layers", num_layers, shape.get("num_layers"))
    num_heads = chosen("num_heads", num_heads, shape.get("num_heads"))
    training = asdict(default_training(route))
    training.update(saved.get("training") or {})
    if max_steps is not None:
        training["max_steps"] = max_steps
    train_config = build_train_config(
        method or training["method"],
        epochs if epochs is not None else training["epochs"],
        learning_rate if learning_rate is not None else training["learning_rate"],
        None,
        set_,
        seed,
        **{k: v for k, v in training.items() if k not in ("method", "epochs", "learning_rate", "seed")},
    )
    intermediate = int(hidden_size * 8 / 3 + 63) // 64 * 64
    if shape.get("intermediate_size") and not option_given("hidden_size"):
        intermediate = shape["intermediate_size"]
    scratch = ScratchConfig(
        **{k: v for k, v in shape.items() if k in {f.name for f in fields(ScratchConfig)}}
        | {"vocab_size": vocab_size, "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
           "intermediate_size": intermediate}
    )
    quality_config = QualityConfig(route=route, base_model=model, scratch=scratch, training=train_config, seed=seed)
    texts = list(read_table(corpus, text_columns=[text_column])[text_column])
    info = train_scorer(texts, output, quality_config, source=str(corpus))
    sides = info.get("sides", {})
    for side, facts in sides.items():
        loss = facts.get("metrics", {}).get("train_loss")
        typer.echo(f"{side}: {facts.get('steps')} steps, train loss {loss:.4f}, {facts.get('seconds')} s")
    typer.echo(f"scorer pair: {output} (score with: slmkit quality score CORPUS --scorer {output} --output DIR)")


@app.command("score")
@handle_errors
def score_cmd(
    input: Path = typer.Argument(..., help="Documents to score (CSV/TSV/JSONL/Parquet, read in chunks)."),
    scorer: Path = typer.Option(..., "--scorer", help="Scorer folder from `quality train`."),
    output: Path = typer.Option(..., "--output", help="Output folder (an unfinished run there resumes)."),
    text_column: str = TEXT_COLUMN,
    id_column: str = typer.Option(None, "--id-column", help="Row id column (default: 'id' if present, else row)."),
    chunk_rows: int = typer.Option(1000, "--chunk-rows", help="Rows per chunk (unit of resume and memory)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Documents per forward pass."),
    max_tokens: int = typer.Option(None, "--max-tokens",
                                   help="Reject longer documents (default: the context the scorer was trained on)."),
    output_format: str = typer.Option("parquet", "--format", help="parquet | jsonl part files."),
    engine: str = typer.Option("local", "--engine", help="local | ray (Ray Data, one scorer pair per worker)."),
    workers: int = typer.Option(1, "--workers", help="Ray workers (engine ray)."),
    max_chunks: int = typer.Option(None, "--max-chunks", help="Stop after this many chunks; rerun to continue."),
) -> None:
    """Per document: forward loss, reverse loss, S, token count and perplexities; bad rows go to rejects/."""
    from slmkit.quality import ScoreConfig, score_file

    config = ScoreConfig(
        text_column=text_column,
        id_column=id_column,
        chunk_rows=chunk_rows,
        batch_size=batch_size,
        max_tokens=max_tokens,
        output_format=output_format,
        engine=engine,
        workers=workers,
    )
    output_policy([input, scorer], False).folder(output)
    if max_chunks is not None and max_chunks < 1:
        raise ConfigError(f"--max-chunks must be >= 1 (leave it out to score everything), got {max_chunks}")
    manifest = score_file(input, scorer, output, config, max_chunks=max_chunks)
    state = "done" if manifest["finished"] else "stopped at --max-chunks; run again to continue (or to reach the end)"
    typer.echo(
        f"{manifest['rows_scored']} rows scored, {manifest['rows_rejected']} rejected "
        f"({manifest['rows_read']} read, {state}) -> {output}"
    )
    if manifest["rows_rejected"]:
        typer.echo(f"rejected rows and reasons: {output / 'rejects'}", err=True)


@app.command("select")
@handle_errors
def select_cmd(
    scores: Path = SCORES,
    output: Path = typer.Option(..., "--output", help="Selected rows (CSV/TSV/JSONL/Parquet by suffix)."),
    rest: Path = typer.Option(None, "--rest", help="Also write the rows not selected here."),
    by: str = typer.Option("S", "--by", help="Score column: S, forward_ppl (the perplexity filter), combined..."),
    mode: str = typer.Option("top", "--mode", help="top | bottom | random"),
    k: int = typer.Option(None, "--k", help="Keep this many rows (per stratum with --stratify)."),
    fraction: float = typer.Option(None, "--fraction", help="Keep this share of rows (per stratum)."),
    threshold: float = typer.Option(None, "--threshold", help="Keep rows >= (top) or <= (bottom) this value."),
    stratify: str = typer.Option(None, "--stratify", help="Select within each value of this column (a domain)."),
    combined: bool = typer.Option(False, "--combined", help="Fit the combined score on labelled rows; select by it."),
    label_column: str = typer.Option("label", "--label-column", help="good/bad labels for --combined."),
    good: str = typer.Option("good", "--good", help="The label value of good rows."),
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Write a subset: top-k / top-fraction / threshold / bottom / random, optionally per domain."""
    from slmkit.data import write_table
    from slmkit.quality import CombinedScore, read_scores, select

    outputs = output_policy([scores], overwrite)
    outputs.file(output)
    if rest:
        outputs.file(rest, option="--rest")
    frame = read_scores(scores).reset_index(drop=True)  # --rest is the complement by row
    if combined:
        model = CombinedScore.fit(frame, label_column=label_column, good=good, seed=seed)
        frame["combined"] = model.score(frame)
        by = "combined"
        typer.echo(f"combined score weights (standardised): {model.weights()}")
    chosen = select(frame, by=by, mode=mode, k=k, fraction=fraction, threshold=threshold, stratify=stratify, seed=seed)
    write_table(output, chosen)
    if rest:
        write_table(rest, frame.loc[~frame.index.isin(chosen.index)])
    outputs.record()
    typer.echo(f"{len(chosen)} of {len(frame)} rows selected by {mode} {by} -> {output}")


@app.command("report")
@handle_errors
def report_cmd(
    scores: Path = SCORES,
    output: Path = typer.Option(..., "--output", help="Folder for histograms.png, report.html, report.json."),
    by: str = typer.Option("S", "--by", help="Score column to show."),
    domain_column: str = typer.Option(None, "--domain-column", help="One histogram per value of this column."),
    text_column: str = TEXT_COLUMN,
    examples: int = typer.Option(5, "--examples", help="Highest- and lowest-scoring rows shown."),
    compare: Path = typer.Option(None, "--compare", help="A second scorer's scores of the same corpus."),
    fraction: float = typer.Option(0.5, "--fraction", help="Top share compared with --compare."),
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """S histograms per domain (PNG + self-contained HTML), the extremes, and two scorers' top-set overlap."""
    from slmkit.quality import read_scores, write_report

    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {fraction}")
    if examples < 0:
        raise ConfigError(f"--examples must be >= 0, got {examples}")
    outputs = output_policy([scores, compare], overwrite)
    outputs.folder(output, files=("report.html", "report.json", "histograms.png"))

    other = read_scores(compare) if compare else None
    summary = write_report(
        read_scores(scores),
        output,
        by=by,
        domain_column=domain_column,
        text_column=text_column,
        n_examples=examples,
        other=other,
        fraction=fraction,
    )
    if "top_overlap" in summary:
        overlap = summary["top_overlap"]
        typer.echo(f"top {fraction:.0%} overlap with {compare}: {overlap['overlap']:.1%} of {overlap['n_top']} rows")
    outputs.record()
    typer.echo(f"report: {output / 'report.html'}")
